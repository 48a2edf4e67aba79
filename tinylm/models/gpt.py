"""GPT: a decoder-only Transformer language model (E1, E2, E6), as nanoGPT writes it.

The same configuration, module names, parameter shapes and calls as Karpathy's nanoGPT
``model.py``, so its checkpoints map one to one (``transformer.h.0.attn.c_attn.weight``...)
and results compare:

    logits, loss = model(idx, targets)          # idx, targets: (B, T) token ids
    idx = model.generate(idx, max_new_tokens, temperature=1.0, top_k=None, seed=0)
    optimizer = model.configure_optimizers(weight_decay, learning_rate, betas)

Per block (pre-LN, GPT-2):

    x = x + attn(ln_1(x))       causal multi-head self-attention, one fused c_attn for q, k, v
    x = x + mlp(ln_2(x))        Linear(E, 4E) -> GELU -> Linear(4E, E)

Token embedding + learned position embedding in, a final LayerNorm, and a head that shares
its weight with the token embedding ("weight tying": the same matrix reads tokens in and
scores them out). Initialisation: N(0, 0.02), and N(0, 0.02 / sqrt(2 n_layer)) for the
projections that write into the residual stream, so its variance does not grow with depth.
"""
import math
from dataclasses import asdict, dataclass

import numpy as np

from .. import functional as F
from ..errors import ShapeError, TinyLMError
from ..generate import check_max_new_tokens, sample_next_token
from ..nn import (Dropout, Embedding, LayerNorm, Linear, Module, ModuleDict, ModuleList,
                  make_rng)
from ..optim import AdamW, decay_groups
from ..tensor import Tensor, no_grad
from ._ids import check_token_ids

__all__ = ["GPTConfig", "GPT"]


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise TinyLMError(f"GPTConfig: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise TinyLMError(f"GPTConfig: n_embd={self.n_embd} must be divisible by "
                              f"n_head={self.n_head}")
        if not 0 <= self.dropout < 1:
            raise TinyLMError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")


class CausalSelfAttention(Module):
    """Multi-head causal self-attention; q, k, v from one Linear(E, 3E) (``c_attn``)."""

    def __init__(self, config, rng):
        super().__init__()
        E = config.n_embd
        self.n_head, self.n_embd, self.dropout = config.n_head, E, config.dropout
        self.c_attn = Linear(E, 3 * E, bias=config.bias, seed=rng)
        self.c_proj = Linear(E, E, bias=config.bias, seed=rng)
        self.resid_dropout = Dropout(config.dropout, seed=rng)
        self.rng = np.random.default_rng(rng.integers(2 ** 63))   # attention-weight dropout

    def forward(self, x, cache=None):
        """``cache``: None, or a dict holding this layer's past keys and values (generation):
        only the new positions of ``x`` are computed, attending to the past ones too."""
        B, T, E = x.shape
        H = self.n_head
        # q, k, v from the three row blocks of c_attn's weight: slicing the (3E, E) weight
        # rather than the (B, T, 3E) output keeps the backward's scatter and sums small
        weight, bias = self.c_attn.weight, self.c_attn.bias
        q, k, v = (F.linear(x, weight[i * E:(i + 1) * E],
                            None if bias is None else bias[i * E:(i + 1) * E])
                   for i in range(3))
        q, k, v = (t.reshape(B, T, H, E // H).transpose(1, 2) for t in (q, k, v))  # (B,H,T,hd)
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k = Tensor(np.concatenate([cache["k"], k.data], axis=2))
                v = Tensor(np.concatenate([cache["v"], v.data], axis=2))
            cache["k"], cache["v"] = k.data, v.data
        if past == 0:
            mask, causal = None, True
        else:    # new query i sits at absolute position past + i: it sees keys 0..past + i
            mask = F.causal_mask(T, past + T, offset=past)
            causal = False
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=p, generator=self.rng if p else None)
        y = y.transpose(1, 2).reshape(B, T, E)                     # concatenate the heads
        return self.resid_dropout(self.c_proj(y))


class MLP(Module):
    def __init__(self, config, rng):
        super().__init__()
        E = config.n_embd
        self.c_fc = Linear(E, 4 * E, bias=config.bias, seed=rng)
        self.c_proj = Linear(4 * E, E, bias=config.bias, seed=rng)
        self.dropout = Dropout(config.dropout, seed=rng)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(Module):
    def __init__(self, config, rng):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, rng)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config, rng)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(Module):
    """``GPT(GPTConfig(...), seed=0)``; see the module docstring."""

    def __init__(self, config, seed=None):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TinyLMError(f"GPT: expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        rng = make_rng(seed)
        self.transformer = ModuleDict(dict(
            wte=Embedding(config.vocab_size, config.n_embd, seed=rng),
            wpe=Embedding(config.block_size, config.n_embd, seed=rng),
            drop=Dropout(config.dropout, seed=rng),
            h=ModuleList([Block(config, rng) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias)))
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False, seed=rng)
        self.lm_head.weight = self.transformer.wte.weight          # weight tying
        for name, p in self.named_parameters():
            if p.ndim == 2:                                          # Linear, Embedding
                std = 0.02 / math.sqrt(2 * config.n_layer) if name.endswith(
                    "c_proj.weight") else 0.02
                p.data = rng.normal(0.0, std, p.shape).astype(p.dtype)
            elif ".ln_" not in name:                                 # Linear biases
                p.data = np.zeros_like(p.data)

    def get_num_params(self, non_embedding=True):
        """Parameters, counted once (the tied head is the token embedding); nanoGPT leaves
        out the position embedding by default."""
        n = self.num_parameters()
        return n - self.transformer.wpe.weight.size if non_embedding else n

    def forward(self, idx, targets=None, caches=None, start_pos=0):
        """(logits, loss). With ``targets`` (B, T) ids (-1 = ignore): logits (B, T, V) and the
        mean cross-entropy; without: logits of the LAST position only, (B, 1, V), and None
        (all generation needs). ``caches``/``start_pos`` are for cached generation."""
        idx = self._check_ids(idx, "idx")
        B, T = idx.shape
        if start_pos + T > self.config.block_size:
            raise ShapeError(f"GPT: sequence of length {start_pos + T} is longer than "
                             f"block_size={self.config.block_size}")
        pos = np.arange(start_pos, start_pos + T)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if caches is None else caches[i])
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None
        targets = self._check_ids(targets, "targets", allow_ignore=True)
        if targets.shape != idx.shape:
            raise ShapeError(f"GPT: targets {targets.shape} must have the shape of idx "
                             f"{idx.shape}")
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits, targets, ignore_index=-1)

    def _check_ids(self, ids, name, allow_ignore=False):
        return check_token_ids(ids, self.config.vocab_size, f"GPT: {name}", allow_ignore)

    def crop_block_size(self, block_size):
        """Shrink the context (as nanoGPT's, e.g. to fine-tune a smaller block)."""
        if not 0 < block_size <= self.config.block_size:
            raise TinyLMError(f"GPT.crop_block_size: need 0 < {block_size} <= "
                              f"{self.config.block_size}")
        self.config.block_size = block_size
        self.transformer.wpe.weight.data = self.transformer.wpe.weight.data[:block_size].copy()
        self.transformer.wpe.num_embeddings = block_size

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type=None):
        """AdamW with weight decay on the matrices (2-D: linear weights, embeddings) and none
        on biases and LayerNorm parameters, as nanoGPT's."""
        return AdamW(decay_groups(self.parameters(), weight_decay), lr=learning_rate,
                     betas=tuple(betas))

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 seed=None, use_cache=True):
        """Append ``max_new_tokens`` sampled tokens to ``idx`` (B, T) (E6: each new token is
        fed back in). With ``use_cache`` the keys and values of earlier positions are kept
        (one new position per step instead of the whole context); when the context fills
        ``block_size`` it falls back to cropping, as nanoGPT. ``temperature=0``: greedy."""
        idx = self._check_ids(idx, "idx")
        check_max_new_tokens(max_new_tokens, "GPT.generate")
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                caches, start = None, 0
                for _ in range(max_new_tokens):
                    if use_cache and idx.shape[1] <= self.config.block_size:
                        if caches is None:
                            caches, start, feed = [{} for _ in self.transformer.h], 0, idx
                        else:
                            feed = idx[:, -1:]
                        logits, _ = self(feed, caches=caches, start_pos=start)
                        start += feed.shape[1]
                    else:
                        logits, _ = self(idx[:, -self.config.block_size:])
                    nxt = sample_next_token(logits.data[:, -1, :], rng, temperature, top_k,
                                            top_p)
                    idx = np.concatenate([idx, nxt[:, None].astype(idx.dtype)], axis=1)
        finally:
            self.train(was_training)
        return idx

    def config_dict(self):
        return asdict(self.config)
