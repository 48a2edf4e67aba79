"""Multi-head attention (A8, B4, D1, D4, E4) and a key/value cache for generation.

One head is scaled dot-product attention (``functional.scaled_dot_product_attention``):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                      (D4, E4)

A8's ERRATUM: the document names that one-head formula "MultiHeadAttention". Multi-head
attention runs h heads side by side on learned projections and mixes them:

    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V),   d_k = embed_dim / h
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O

``MultiheadAttention`` follows ``torch.nn.MultiheadAttention``: names, shapes, masks,
initialisation and state dict, so a student's code moves between the two by changing the
import.
"""
import math

import numpy as np

from .. import functional as F
from ..backend import DEFAULT_DTYPE
from ..errors import ShapeError, TinyLMError
from ..tensor import as_tensor
from .layers import Linear
from .module import Module, Parameter, make_rng


def xavier_uniform(rng, shape, dtype=DEFAULT_DTYPE):
    """Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), as PyTorch's
    ``xavier_uniform_`` for a 2-D (fan_out, fan_in) weight."""
    fan_out, fan_in = shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return Parameter(rng.uniform(-bound, bound, size=shape).astype(dtype))


class KVCache:
    """Keys and values seen so far, for step-by-step generation.

    Generating token t with a causal model needs attention over tokens 0..t; the keys and
    values of tokens 0..t-1 do not change, so they are kept here and only the new token's
    are computed: one step costs O(t) instead of recomputing O(t^2). ``update`` appends
    the new projected keys/values (batch, heads, new, head_dim) along the time axis and
    returns everything cached. Pass one cache per attention layer:
    ``mha(x_t, x_t, x_t, kv_cache=cache)``.
    """

    def __init__(self):
        self.key = None
        self.value = None

    def __len__(self):
        return 0 if self.key is None else self.key.shape[-2]

    def update(self, key, value):
        if self.key is None:
            self.key, self.value = key, value
        else:
            if key.shape[:-2] != self.key.shape[:-2] or key.shape[-1] != self.key.shape[-1]:
                raise ShapeError(f"KVCache: new keys of shape {key.shape} do not match the "
                                 f"cached {self.key.shape} (batch, heads, time, head_dim)")
            self.key = F.concatenate([self.key, key], axis=-2)
            self.value = F.concatenate([self.value, value], axis=-2)
        return self.key, self.value

    def reset(self):
        self.key = self.value = None


class MultiheadAttention(Module):
    """Multi-head attention, as ``torch.nn.MultiheadAttention`` (A8's standard form).

    ``forward(query, key, value)``: query (L, N, E) and key/value (S, N, kdim/vdim), or
    (N, L, E) with ``batch_first=True``, or unbatched (L, E). Self-attention passes the
    same tensor three times; cross-attention (the decoder reading the encoder, D2) passes
    the decoder state as query and the encoder output as key and value.

    Parameters (PyTorch's names): ``in_proj_weight`` (3E, E) stacking W^Q, W^K, W^V (or
    ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` when kdim/vdim differ from E),
    ``in_proj_bias`` (3E,), and ``out_proj`` (a Linear: W_O). Initialised as PyTorch:
    Xavier-uniform projections, zero biases, out_proj.weight the default Linear init.

    Masks, as PyTorch's MultiheadAttention (NOT its SDPA): boolean ``attn_mask`` (L, S) or
    (N*num_heads, L, S) with True = may NOT attend, or float, added to the scores;
    ``key_padding_mask`` (N, S), True = this key is padding, ignore it (float: added).
    ``is_causal=True`` with no ``attn_mask`` builds the causal mask itself (PyTorch requires
    attn_mask and treats is_causal as a hint; with an attn_mask, tinylm does the same and
    uses the mask as given).

    Returns ``(attn_output, attn_weights)``: weights (N, L, S) averaged over the heads, or
    (N, num_heads, L, S) with ``average_attn_weights=False``, or None if not
    ``need_weights``. As in PyTorch the returned weights are after attention dropout.

    ``kv_cache=KVCache()`` (tinylm's addition) appends this call's keys/values to the cache
    and attends over everything cached; with ``is_causal`` the mask is aligned to the end
    (new query i sees cached keys up to its own position), so decoding one token at a time
    equals full causal attention. A query whose every key is masked raises ``TinyLMError``
    (PyTorch returns NaN there).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, seed=None,
                 dtype=DEFAULT_DTYPE):
        super().__init__()
        for name, n in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(n, (int, np.integer)) or n <= 0:
                raise TinyLMError(f"MultiheadAttention: {name} must be a positive integer, "
                                  f"got {n!r}")
        if embed_dim % num_heads:
            raise TinyLMError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible "
                              f"by num_heads ({num_heads}): each head gets embed_dim / "
                              f"num_heads features")
        if not 0 <= dropout <= 1:
            raise TinyLMError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        if add_bias_kv or add_zero_attn:
            raise TinyLMError("MultiheadAttention: add_bias_kv and add_zero_attn are not "
                              "supported in tinylm")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        rng = make_rng(seed)
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = xavier_uniform(rng, (3 * E, E), dtype)
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = xavier_uniform(rng, (E, E), dtype)
            self.k_proj_weight = xavier_uniform(rng, (E, self.kdim), dtype)
            self.v_proj_weight = xavier_uniform(rng, (E, self.vdim), dtype)
        self.in_proj_bias = Parameter(np.zeros(3 * E, dtype)) if bias else None
        self.out_proj = Linear(E, E, bias=bias, seed=rng, dtype=dtype)
        if bias:
            self.out_proj.bias.data[...] = 0
        self.rng = make_rng(int(rng.integers(2 ** 63)))   # attention dropout

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, " \
               f"dropout={self.dropout}, batch_first={self.batch_first}"

    # --- projections --------------------------------------------------------------
    def _weights(self):
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            ws = (w[:E], w[E:2 * E], w[2 * E:])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        bs = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        return ws, bs

    def _heads(self, x):
        """(N, T, E) -> (N, heads, T, head_dim)."""
        N, T, _ = x.shape
        return x.reshape(N, T, self.num_heads, self.head_dim).transpose(1, 2)

    # --- masks --------------------------------------------------------------------
    def _masks(self, attn_mask, key_padding_mask, is_causal, N, L, S, past):
        """Combine the masks into (allowed: bool or None, additive: float or None), each
        broadcastable to (N, heads, L, S_total)."""
        H, name = self.num_heads, "MultiheadAttention"
        blocked, additive = None, None

        def add(mask):
            nonlocal blocked, additive
            if mask.dtype == bool:
                blocked = mask if blocked is None else (blocked | mask)
            else:
                additive = mask if additive is None else additive + mask

        total = past + S
        if attn_mask is not None:
            mask = F._mask_array(attn_mask, f"{name}: attn_mask")
            if mask.shape == (L, total):
                add(mask)
            elif mask.shape == (N * H, L, total):
                add(mask.reshape(N, H, L, total))
            else:
                raise ShapeError(f"{name}: attn_mask must have shape (L, S) = {(L, total)} or "
                                 f"(N * num_heads, L, S) = {(N * H, L, total)}, got "
                                 f"{mask.shape}")
        elif is_causal:
            add(~F.causal_mask(L, total, offset=total - L))
        if key_padding_mask is not None:
            mask = F._mask_array(key_padding_mask, f"{name}: key_padding_mask")
            if mask.shape != (N, S) and not (past and mask.shape == (N, total)):
                raise ShapeError(f"{name}: key_padding_mask must have shape (N, S) = "
                                 f"{(N, S)} (True = padding), got {mask.shape}")
            if mask.shape == (N, S) and past:   # the cached keys are not padding
                pad = np.zeros((N, past), mask.dtype)
                mask = np.concatenate([pad, mask], axis=1)
            add(mask[:, None, None, :])
        return (None if blocked is None else ~blocked), additive

    # --- forward ------------------------------------------------------------------
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False, kv_cache=None):
        name = "MultiheadAttention"
        query, key, value = as_tensor(query), as_tensor(key), as_tensor(value)
        unbatched = query.ndim == 2
        for arg, t in (("query", query), ("key", key), ("value", value)):
            if t.ndim != query.ndim or t.ndim not in (2, 3):
                raise ShapeError(f"{name}: query, key and value must all be 3-D "
                                 f"({'(N, L, E)' if self.batch_first else '(L, N, E)'}) or all "
                                 f"2-D (L, E) unbatched; got query {query.shape}, key "
                                 f"{key.shape}, value {value.shape}")
        for arg, t, d in (("query", query, self.embed_dim), ("key", key, self.kdim),
                          ("value", value, self.vdim)):
            if t.shape[-1] != d:
                raise ShapeError(f"{name}: {arg} has {t.shape[-1]} features (shape {t.shape}), "
                                 f"expected {d}")
        if unbatched:   # (T, E) -> (1, T, E)
            query, key, value = (t.reshape((1,) + t.shape) for t in (query, key, value))
            if key_padding_mask is not None:
                kpm = F._mask_array(key_padding_mask, f"{name}: key_padding_mask")
                key_padding_mask = kpm.reshape((1,) + kpm.shape)
        elif not self.batch_first:   # (T, N, E) -> (N, T, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if key.shape[:2] != value.shape[:2]:
            raise ShapeError(f"{name}: key and value must have the same batch and length, "
                             f"got key {key.shape} and value {value.shape} (batch-first)")
        if key.shape[0] != query.shape[0]:
            raise ShapeError(f"{name}: query and key have different batch sizes "
                             f"({query.shape[0]} and {key.shape[0]})")
        N, L, _ = query.shape
        S = key.shape[1]

        (wq, wk, wv), (bq, bk, bv) = self._weights()
        q = self._heads(F.linear(query, wq, bq))
        k = self._heads(F.linear(key, wk, bk))
        v = self._heads(F.linear(value, wv, bv))
        past = 0
        if kv_cache is not None:
            past = len(kv_cache)
            k, v = kv_cache.update(k, v)
        total = past + S
        if (not need_weights and attn_mask is None and key_padding_mask is None
                and not (self.dropout > 0 and self.training)):
            # nothing to mask but the causal line, nothing to drop or return: one fused node,
            # streaming beyond one tile of scores (the causal line bottom-right aligned, as
            # the mask below, so cached keys stay visible)
            out, weights = F.FusedAttention.apply(
                q, k, v, scale=1 / math.sqrt(self.head_dim),
                causal_offset=total - L if is_causal else None), None
        else:
            allowed, additive = self._masks(attn_mask, key_padding_mask, is_causal, N, L, S,
                                            past)
            out, weights = F.attention(q, k, v, allowed, additive, self.dropout,
                                       self.training, self.rng, name=name)
        # Concat(head_1..head_h): (N, H, L, d) -> (N, L, H*d), then W_O
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, self.embed_dim))
        if unbatched:
            out = out.reshape(out.shape[1:])
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        if unbatched:
            weights = weights.reshape(weights.shape[1:])
        return out, weights
