"""Gradient-check cases of attention and the Transformer layers (A8, A9, D4, D5, D6, E4, E5).

All are composed of tinylm ops (matmul, softmax, masked_fill, layer norm, ...), so their
second derivatives are checked too. Shapes are tiny: a layer's check perturbs every weight.
"""
import numpy as np

from .. import functional as F
from ..nn.attention import MultiheadAttention
from ..nn.layers import LayerNorm
from ..nn.positional import PositionalEncoding
from ..nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                              TransformerEncoder, TransformerEncoderLayer)
from . import GradCase
from .builders import leaf, module_case

_CAUSAL_FLOAT = np.triu(np.full((3, 4), -np.inf), 2)          # (L=3, S=4), top-left + 1
_ALLOWED = np.array([[True, True, False, True],
                     [False, True, True, True],
                     [True, False, False, False]])


def _sdpa(shape_q, shape_kv, **kw):
    def build(rng):
        q, k, v = leaf(rng, *shape_q), leaf(rng, *shape_kv), leaf(rng, *shape_kv)
        return (lambda: F.scaled_dot_product_attention(q, k, v, **kw)), [q, k, v]
    return build


def _fused(shape_q, shape_kv, causal_offset, streaming):
    """FusedAttention itself, its streaming path forced on or off (by size, SDPA streams
    only beyond a tile of scores)."""
    def build(rng):
        q, k, v = leaf(rng, *shape_q), leaf(rng, *shape_kv), leaf(rng, *shape_kv)
        return (lambda: F.FusedAttention.apply(q, k, v, scale=0.4, causal_offset=causal_offset,
                                               streaming=streaming)), [q, k, v]
    return build


def _perturbed(module, seed=5):
    """Layers start with zero biases and unit LayerNorm weights; move every parameter a
    little so a wrong gradient cannot hide behind a special value."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data = p.data + 0.3 * rng.standard_normal(p.shape).astype(p.dtype)
    return module


def _mha_case(cross=False, key_padding=False, causal=False, per_head=False):
    def build(rng):
        mha = _perturbed(MultiheadAttention(4, 2, seed=0).to(np.float64))
        x = leaf(rng, 3, 2, 4)
        mem = leaf(rng, 4, 2, 4) if cross else x
        kpm = np.array([[False, False, False, True], [False, True, False, False]]) \
            if key_padding else None
        if key_padding and not cross:
            kpm = kpm[:, :3]

        def fn():
            out, w = mha(x, mem, mem, key_padding_mask=kpm, is_causal=causal,
                         average_attn_weights=not per_head)
            return out if not per_head else out.sum() + (w * w).sum()
        return fn, [x] + ([mem] if cross else []) + list(mha.parameters())
    return build


def _decoder_case(variant="standard", norm_first=False):
    def build(rng):
        layer = _perturbed(TransformerDecoderLayer(4, 2, dim_feedforward=3, dropout=0.0,
                                                   norm_first=norm_first, variant=variant,
                                                   seed=0).to(np.float64))
        tgt = leaf(rng, 3, 2, 4)
        mem = leaf(rng, 3 if variant == "D6" else 4, 2, 4)
        return (lambda: layer(tgt, mem, tgt_is_causal=True)), [tgt, mem] + \
            list(layer.parameters())
    return build


def _encoder(**kw):
    return lambda: _perturbed(TransformerEncoderLayer(4, 2, dim_feedforward=3, dropout=0.0,
                                                      seed=0, **kw))


def _stack_case(kind):
    """Two layers stacked with a final LayerNorm, or the whole encoder-decoder (D2/D7).

    Their layers are checked to second order above; the stacks only compose them, so their
    (slow) second-order checks are left out."""
    def build(rng):
        src, tgt = leaf(rng, 4, 2, 4), leaf(rng, 3, 2, 4)
        if kind == "transformer":
            model = Transformer(4, 2, num_encoder_layers=2, num_decoder_layers=2,
                                dim_feedforward=3, dropout=0.0, seed=0)
            fn = lambda: model(src, tgt, tgt_is_causal=True)          # noqa: E731
        elif kind == "encoder":
            model = TransformerEncoder(_encoder(norm_first=True)(), 2, norm=LayerNorm(4))
            fn = lambda: model(src)                                   # noqa: E731
        else:
            model = TransformerDecoder(TransformerDecoderLayer(
                4, 2, dim_feedforward=3, dropout=0.0, seed=0), 2, norm=LayerNorm(4))
            fn = lambda: model(tgt, src, tgt_is_causal=True)          # noqa: E731
        _perturbed(model.to(np.float64))
        inputs = [src] if kind == "encoder" else [src, tgt]
        return fn, inputs + list(model.parameters())
    return build


def _cases():
    return [
        GradCase("sdpa", _sdpa((2, 3, 4), (2, 4, 4))),
        GradCase("sdpa[causal]", _sdpa((2, 4, 3), (2, 4, 3), is_causal=True)),
        GradCase("sdpa[bool mask]", _sdpa((2, 3, 4), (2, 4, 4), attn_mask=_ALLOWED)),
        GradCase("sdpa[float -inf mask]", _sdpa((3, 2), (4, 2), attn_mask=_CAUSAL_FLOAT)),
        GradCase("sdpa[scale, heads]", _sdpa((1, 2, 3, 2), (1, 2, 4, 2), scale=0.3)),
        GradCase("FusedAttention[streaming, causal]", _fused((2, 5, 3), (2, 6, 3), 1, True)),
        GradCase("FusedAttention[streaming]", _fused((2, 4, 3), (2, 6, 3), None, True)),
        GradCase("FusedAttention[weights kept, causal]", _fused((2, 5, 3), (2, 6, 3), 1,
                                                                False)),
        GradCase("nn.MultiheadAttention[self]", _mha_case()),
        GradCase("nn.MultiheadAttention[self, causal, per-head weights]",
                 _mha_case(causal=True, per_head=True)),
        GradCase("nn.MultiheadAttention[cross]", _mha_case(cross=True)),
        GradCase("nn.MultiheadAttention[cross, key_padding_mask]",
                 _mha_case(cross=True, key_padding=True)),
        GradCase("nn.PositionalEncoding[learned]",
                 module_case(lambda: PositionalEncoding(4, max_len=5, kind="learned", seed=0),
                             (3, 2, 4))),
        GradCase("nn.PositionalEncoding[sinusoidal, batch_first]",
                 module_case(lambda: PositionalEncoding(4, max_len=5, batch_first=True),
                             (2, 3, 4))),
        GradCase("nn.TransformerEncoderLayer[post-LN]", module_case(_encoder(), (3, 2, 4))),
        GradCase("nn.TransformerEncoderLayer[pre-LN, gelu]",
                 module_case(_encoder(norm_first=True, activation="gelu"), (3, 2, 4))),
        GradCase("nn.TransformerEncoderLayer[A9 as written]",
                 module_case(_encoder(variant="A9"), (3, 2, 4))),
        GradCase("nn.TransformerEncoderLayer[D5 as written]",
                 module_case(_encoder(variant="D5"), (3, 2, 4))),
        GradCase("nn.TransformerDecoderLayer[post-LN]", _decoder_case()),
        GradCase("nn.TransformerDecoderLayer[pre-LN]", _decoder_case(norm_first=True)),
        GradCase("nn.TransformerDecoderLayer[D6 as written]", _decoder_case("D6")),
        GradCase("nn.TransformerEncoder[2 pre-LN layers + norm]", _stack_case("encoder"),
                 second_order=False),
        GradCase("nn.TransformerDecoder[2 layers + norm]", _stack_case("decoder"),
                 second_order=False),
        GradCase("nn.Transformer[encoder-decoder, D2/D7]", _stack_case("transformer"),
                 second_order=False),
    ]


CASES = _cases()
