"""Transformer layers (A9, B4, D2, D5, D6, D7, E2): the standard forms and the documents' own.

The standard encoder layer (Vaswani et al. 2017, "post-LN"), PyTorch's default:

    h'  = LN(h + Dropout(MHA(h, h, h)))
    out = LN(h' + Dropout(FFN(h'))),         FFN(x) = W_2 Dropout(act(W_1 x + b_1)) + b_2

and "pre-LN" (GPT-2; ``norm_first=True``), which trains more stably when deep:

    h'  = h + MHA(LN(h)),    out = h' + FFN(LN(h'))

The documents' forms, as written (``variant=``; see FORMULAS.md):

* A9 (ERRATUM): ``EncoderLayer(h) = LN(h) + Attn(h) + LN(h) + FFN(h)``, a sum of four
  branches that all read h (no residual chain; the FFN never sees the attention output).
* D5: ``Encoder(X) = LN(X + MHA(X, X, X))``: post-LN's first sub-layer only, no FFN.
* D6 (ERRATUM): ``Decoder(X) = LN(X + MaskedMHA(X, X, X) + Encoder(X))``: no
  cross-attention; the encoder output is ADDED to the decoder stream (so it must have the
  decoder input's shape). The standard decoder: masked self-attention, then cross-attention
  with the encoder output as keys and values, then the FFN, each with residual + LN.

Class names, arguments, submodule names and state dicts follow ``torch.nn``.
"""
import copy
import math

import numpy as np

from .. import functional as F
from ..backend import DEFAULT_DTYPE
from ..errors import ShapeError, TinyLMError
from ..tensor import Tensor, as_tensor
from .attention import MultiheadAttention
from .layers import Dropout, LayerNorm, Linear
from .module import Module, ModuleList, make_rng

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _activation(activation, name):
    if callable(activation):
        return activation
    if activation not in _ACTIVATIONS:
        raise TinyLMError(f"{name}: activation must be 'relu', 'gelu' or a function, "
                          f"got {activation!r}")
    return _ACTIVATIONS[activation]


def _check_input(x, d_model, name, arg):
    x = as_tensor(x)
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        raise ShapeError(f"{name}: {arg} must be (T, N, d_model), (N, T, d_model) with "
                         f"batch_first, or (T, d_model), with d_model={d_model}; got shape "
                         f"{x.shape}")
    return x


def _seed(rng):
    return int(rng.integers(2 ** 63))


class _TransformerLayer(Module):
    """What the encoder and decoder layers share: checked arguments, the self-attention
    sub-layer (E2 steps 3-4) and FFN(x) = linear2(dropout(act(linear1(x)))) (E2 step 6)."""

    VARIANTS = ("standard",)

    def _start(self, name, variant, d_model, nhead, dropout, activation, batch_first,
               norm_first, bias, seed, dtype):
        """Check the variant, keep the settings, build ``self_attn``; returns the layer's
        generator, from which every later sub-layer takes its weights in PyTorch's order."""
        if variant not in self.VARIANTS:
            raise TinyLMError(f"{name}: variant must be one of {self.VARIANTS}, got {variant!r}")
        self.d_model, self.variant = d_model, variant
        self.batch_first, self.norm_first = batch_first, norm_first
        self.activation = _activation(activation, name)
        rng = make_rng(seed)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, seed=rng, dtype=dtype)
        return rng

    def extra_repr(self):
        return f"variant={self.variant!r}, norm_first={self.norm_first}"

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal, kv_cache=None):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal, kv_cache=kv_cache)[0]
        return self.dropout1(x)

    def _ff_block(self, x, last_dropout):
        return last_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _build_ffn(self, d_model, dim_feedforward, dropout, bias, rng, dtype):
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, seed=rng, dtype=dtype)
        self.dropout = Dropout(dropout, seed=_seed(rng))
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, seed=rng, dtype=dtype)


class TransformerEncoderLayer(_TransformerLayer):
    """One encoder layer, as ``torch.nn.TransformerEncoderLayer`` (A9's standard form, B4).

    Submodules: ``self_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``,
    ``dropout1``, ``dropout2``. ``norm_first=False``: post-LN (Vaswani);
    ``norm_first=True``: pre-LN (GPT-2). See the module docstring for the formulas.

    ``variant="A9"``: the document's four-branch sum, as written:
        out = norm1(h) + dropout1(self_attn(h, h, h)) + norm2(h) + dropout2(FFN(h))
    (two separate LayerNorms, one per "LayerNorm(h)" term; ``norm_first`` is ignored).
    ``variant="D5"``: out = norm1(X + dropout1(self_attn(X, X, X))); it has no FFN, so no
    ``linear1``/``linear2``/``norm2``/``dropout``/``dropout2`` (and none in the state dict).
    """

    VARIANTS = ("standard", "A9", "D5")

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 seed=None, dtype=DEFAULT_DTYPE, variant="standard"):
        super().__init__()
        rng = self._start("TransformerEncoderLayer", variant, d_model, nhead, dropout,
                          activation, batch_first, norm_first, bias, seed, dtype)
        if variant != "D5":
            self._build_ffn(d_model, dim_feedforward, dropout, bias, rng, dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        if variant != "D5":
            self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout, seed=_seed(rng))
        if variant != "D5":
            self.dropout2 = Dropout(dropout, seed=_seed(rng))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False,
                kv_cache=None):
        """``kv_cache`` (a ``KVCache``, tinylm's addition) is passed to ``self_attn``: with
        ``is_causal=True`` a decoder-only (GPT-style) stack can then run one new token at
        a time and get the same outputs as the full causal pass."""
        x = _check_input(src, self.d_model, "TransformerEncoderLayer", "src")
        masks = (src_mask, src_key_padding_mask, is_causal, kv_cache)
        if self.variant == "A9":
            return (self.norm1(x) + self._sa_block(x, *masks) + self.norm2(x)
                    + self._ff_block(x, self.dropout2))
        if self.variant == "D5":
            return self.norm1(x + self._sa_block(x, *masks))
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), *masks)
            return x + self._ff_block(self.norm2(x), self.dropout2)
        x = self.norm1(x + self._sa_block(x, *masks))
        return self.norm2(x + self._ff_block(x, self.dropout2))


class TransformerDecoderLayer(_TransformerLayer):
    """One decoder layer, as ``torch.nn.TransformerDecoderLayer`` (D2, D6's standard form).

    Post-LN (``norm_first=False``):
        x = norm1(x + SA(x)),  x = norm2(x + CrossAttn(x, memory)),  x = norm3(x + FFN(x))
    Pre-LN: x = x + SA(norm1(x)), x = x + CrossAttn(norm2(x), memory), x = x + FFN(norm3(x)).
    Submodules: ``self_attn``, ``multihead_attn``, ``linear1``, ``dropout``, ``linear2``,
    ``norm1..3``, ``dropout1..3``. The self-attention mask is ``tgt_mask`` (or the causal mask
    when ``tgt_is_causal`` and no tgt_mask), so position t cannot see t+1, t+2, ...

    ``variant="D6"`` (ERRATUM, as written): out = norm1(X + dropout1(MaskedMHA(X,X,X)) + M)
    with M = ``memory``, the encoder's output standing for the document's "Encoder(X)",
    ADDED elementwise (so memory must have tgt's shape). The self-attention is always
    masked: the causal mask unless ``tgt_mask`` is given. It has no cross-attention and
    no FFN: only ``self_attn``, ``norm1``, ``dropout1``.
    """

    VARIANTS = ("standard", "D6")

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 seed=None, dtype=DEFAULT_DTYPE, variant="standard"):
        super().__init__()
        rng = self._start("TransformerDecoderLayer", variant, d_model, nhead, dropout,
                          activation, batch_first, norm_first, bias, seed, dtype)
        full = variant == "standard"
        if full:
            self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                     batch_first=batch_first, seed=rng,
                                                     dtype=dtype)
            self._build_ffn(d_model, dim_feedforward, dropout, bias, rng, dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        if full:
            self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout, seed=_seed(rng))
        if full:
            self.dropout2 = Dropout(dropout, seed=_seed(rng))
            self.dropout3 = Dropout(dropout, seed=_seed(rng))

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=is_causal)[0]
        return self.dropout2(x)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False,
                kv_cache=None):
        """``kv_cache`` (a ``KVCache``, tinylm's addition) caches the SELF-attention's keys
        and values, so the target can be decoded one token at a time."""
        name = "TransformerDecoderLayer"
        x = _check_input(tgt, self.d_model, name, "tgt")
        memory = _check_input(memory, self.d_model, name, "memory")
        if self.variant == "D6":
            if memory.shape != x.shape:
                raise ShapeError(f"{name} (variant D6): D6 adds the encoder output to the "
                                 f"decoder input, so memory must have tgt's shape "
                                 f"{x.shape}, got {memory.shape}")
            sa = self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_mask is None, kv_cache)
            return self.norm1(x + sa + memory)
        sa = (tgt_mask, tgt_key_padding_mask, bool(tgt_is_causal), kv_cache)
        ca = (memory_mask, memory_key_padding_mask, bool(memory_is_causal))
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), *sa)
            x = x + self._mha_block(self.norm2(x), memory, *ca)
            return x + self._ff_block(self.norm3(x), self.dropout3)
        x = self.norm1(x + self._sa_block(x, *sa))
        x = self.norm2(x + self._mha_block(x, memory, *ca))
        return self.norm3(x + self._ff_block(x, self.dropout3))


def _clones(layer, num_layers, name):
    """``num_layers`` deep copies of ``layer``: identical starting weights, as PyTorch's
    ``copy.deepcopy``. Each copy's dropout generators are re-seeded with its index, so the
    layers do not drop the same positions."""
    if not isinstance(num_layers, (int, np.integer)) or num_layers <= 0:
        raise TinyLMError(f"{name}: num_layers must be a positive integer, got {num_layers!r}")
    if not isinstance(layer, Module):
        raise TinyLMError(f"{name}: the layer must be a Module, got {type(layer).__name__}")
    copies = []
    for i in range(num_layers):
        c = copy.deepcopy(layer)
        for m in c.modules():
            rng = getattr(m, "rng", None)
            if isinstance(rng, np.random.Generator):
                m.rng = np.random.default_rng([i, int(rng.integers(2 ** 32))])
        copies.append(c)
    return ModuleList(copies)


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (``layers.0`` ...), then
    ``norm`` if given (pre-LN stacks need that final LayerNorm).

    B7's BERT-style encoder is ``Embedding(vocab, d, padding_idx)`` -> ``PositionalEncoding``
    -> this stack (with ``src_key_padding_mask = ids == padding_idx``) -> ``Linear(d, vocab)``;
    E6's encoder-only LM is the same with the embedding scaled by sqrt(d_model) and a causal
    mask.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers, "TransformerEncoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(Module):
    """A stack of ``num_layers`` copies of ``decoder_layer``, each reading the same
    ``memory`` (the encoder output), then ``norm`` if given."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers, "TransformerDecoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """The encoder-decoder Transformer (D2, D7), as ``torch.nn.Transformer``.

    ``encoder`` (a TransformerEncoder with a final LayerNorm) turns the source into
    ``memory``; ``decoder`` reads the target (shifted right, with a causal ``tgt_mask``) and
    attends to memory. Like PyTorch it has no embeddings or output projection (D7 adds
    those around it), and re-initialises every matrix Xavier-uniform.
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False,
                 bias=True, seed=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        rng = make_rng(seed)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                  layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                  norm_first=norm_first, bias=bias, dtype=dtype)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, seed=rng, **kw)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, LayerNorm(
                d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, seed=rng, **kw)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, LayerNorm(
                d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for p in self.parameters():     # as PyTorch's _reset_parameters
            if p.ndim > 1:
                bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p.data = rng.uniform(-bound, bound, size=p.shape).astype(p.dtype)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        name = "Transformer"
        src = _check_input(src, self.d_model, name, "src")
        tgt = _check_input(tgt, self.d_model, name, "tgt")
        batch_axis = 0 if self.batch_first else 1
        if src.ndim != tgt.ndim or (src.ndim == 3 and
                                    src.shape[batch_axis] != tgt.shape[batch_axis]):
            raise ShapeError(f"{name}: src {src.shape} and tgt {tgt.shape} must have the same "
                             f"batch size (axis {batch_axis})")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """The (sz, sz) float causal mask: 0 on and below the diagonal, -inf above, so
        position i attends to 0..i only (as ``torch.nn.Transformer``'s)."""
        mask = np.triu(np.full((sz, sz), -np.inf), 1)
        return Tensor(mask.astype(dtype or DEFAULT_DTYPE))
