"""Chapter 11: positional encoding (E5), the Transformer layers in their standard forms and
as the documents write them (A9, D5, D6), the stacks and the encoder-decoder (D2, D7)."""
import math

import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm.nn.attention import MultiheadAttention
from tinylm.nn.module import Parameter
from tinylm.nn.positional import PositionalEncoding, sinusoidal_table
from tinylm.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                   TransformerEncoder, TransformerEncoderLayer)
from tinylm import nn

pytestmark = pytest.mark.ch11


def perturb(module, seed=3):
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data = p.data + 0.3 * rng.standard_normal(p.shape)
    return module


def close(a, b, rtol=1e-12, atol=1e-13):
    np.testing.assert_allclose(getattr(a, "data", a), getattr(b, "data", b), rtol=rtol, atol=atol)


# --- positional encoding --------------------------------------------------------------
def test_sinusoidal_table_formula():
    table = sinusoidal_table(50, 6, np.float64)
    for pos in (0, 1, 7, 49):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
            assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)
    np.testing.assert_array_equal(table[0], [0, 1, 0, 1, 0, 1])
    odd = sinusoidal_table(4, 5, np.float64)
    assert odd.shape == (4, 5)
    assert odd[1, 3] == pytest.approx(math.cos(1 / 10000 ** (2 / 5)))
    assert odd[1, 4] == pytest.approx(math.sin(1 / 10000 ** (4 / 5)))


def test_positional_encoding_adds_p_e5(rng):
    pe = PositionalEncoding(6, max_len=10, dtype=np.float64)
    x = rng.standard_normal((4, 2, 6))                 # (T, N, d)
    close(pe(x), x + sinusoidal_table(10, 6, np.float64)[:4, None])
    pe_bf = PositionalEncoding(6, max_len=10, batch_first=True, dtype=np.float64)
    close(pe_bf(x.transpose(1, 0, 2)), pe(x).data.transpose(1, 0, 2))
    close(pe(x[:, 0]), pe(x).data[:, 0])                # unbatched (T, d)
    assert "pe" in dict(pe.named_buffers()) and pe.num_parameters() == 0


def test_learned_positional_encoding_is_a_parameter(rng):
    pe = PositionalEncoding(4, max_len=8, kind="learned", seed=0)
    assert isinstance(pe.pe, Parameter) and pe.pe.shape == (8, 4)
    assert list(dict(pe.named_parameters())) == ["pe"]
    x = tl.Tensor(rng.standard_normal((3, 2, 4)).astype(np.float32))
    pe(x).sum().backward()
    assert np.all(pe.pe.grad[:3] == 2) and np.all(pe.pe.grad[3:] == 0)


def test_positional_encoding_errors(rng):
    pe = PositionalEncoding(4, max_len=5)
    with pytest.raises(tl.ShapeError, match="longer than max_len=5"):
        pe(np.zeros((6, 1, 4)))
    with pytest.raises(tl.ShapeError, match="d_model=4"):
        pe(np.zeros((3, 1, 5)))
    with pytest.raises(tl.TinyLMError, match="kind"):
        PositionalEncoding(4, kind="rotary")


def test_positional_dropout_seeded_and_off_in_eval(rng):
    x = rng.standard_normal((4, 2, 6))
    a, b = (PositionalEncoding(6, dropout=0.5, seed=2, dtype=np.float64) for _ in range(2))
    close(a(x), b(x))
    assert np.any(a(x).data == 0)
    a.eval()
    close(a(x), x + sinusoidal_table(5000, 6, np.float64)[:4, None])


# --- encoder layer ------------------------------------------------------------------
def enc(**kw):
    kw.setdefault("dropout", 0.0)
    return perturb(TransformerEncoderLayer(4, 2, dim_feedforward=6, seed=0, dtype=np.float64,
                                           **kw))


def attn(layer, x, mha="self_attn", mem=None, **kw):
    m = x if mem is None else mem
    return getattr(layer, mha)(x, m, m, need_weights=False, **kw)[0]


def ffn(layer, x):
    return layer.linear2(F.relu(layer.linear1(x)))


def test_encoder_layer_post_ln_is_vaswani(rng):
    layer = enc()
    h = rng.standard_normal((3, 2, 4))
    h1 = layer.norm1(h + attn(layer, h))
    close(layer(h), layer.norm2(h1 + ffn(layer, h1)))


def test_encoder_layer_pre_ln_is_gpt2(rng):
    layer = enc(norm_first=True)
    h = rng.standard_normal((3, 2, 4))
    h1 = h + attn(layer, layer.norm1(h))
    close(layer(h), h1 + ffn(layer, layer.norm2(h1)))


def test_encoder_layer_a9_as_written_is_a_four_branch_sum(rng):
    """A9 ERRATUM: EncoderLayer(h) = LN(h) + Attn(h) + LN(h) + FFN(h)."""
    layer = enc(variant="A9")
    h = rng.standard_normal((3, 2, 4))
    close(layer(h), layer.norm1(h) + attn(layer, h) + layer.norm2(h) + ffn(layer, h))
    standard = enc()
    assert not np.allclose(layer(h).data, standard(h).data)


def test_encoder_layer_d5_as_written_has_no_ffn(rng):
    """D5: Encoder(X) = LN(X + MHA(X, X, X))."""
    layer = enc(variant="D5")
    x = rng.standard_normal((3, 2, 4))
    close(layer(x), layer.norm1(x + attn(layer, x)))
    assert set(layer.state_dict()) == {
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
        "self_attn.out_proj.bias", "norm1.weight", "norm1.bias"}


def test_encoder_layer_gelu_and_masks(rng):
    layer = enc(activation="gelu", batch_first=True)
    h = rng.standard_normal((2, 3, 4))
    h1 = layer.norm1(h + attn(layer, h, is_causal=True))
    expected = layer.norm2(h1 + layer.linear2(F.gelu(layer.linear1(h1))))
    close(layer(h, is_causal=True), expected)
    mask = Transformer.generate_square_subsequent_mask(3, dtype=np.float64)
    close(layer(h, src_mask=mask), expected)


def test_encoder_layer_key_padding_keeps_real_tokens_independent_of_padding(rng):
    layer = enc()
    h = rng.standard_normal((4, 2, 4))
    pad = np.array([[False, False, True, True], [False, False, False, False]])
    out = layer(h, src_key_padding_mask=pad).data
    h2 = h.copy()
    h2[2:, 0] = 10.0
    out2 = layer(h2, src_key_padding_mask=pad).data
    close(out[:2, 0], out2[:2, 0])
    close(out[:, 1], out2[:, 1])


def test_encoder_layer_names_match_pytorch():
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=16)
    assert set(n.split(".")[0] for n, _ in layer.named_modules() if n) == {
        "self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2"}
    assert layer.linear1.weight.shape == (16, 8) and layer.linear1.weight.dtype == np.float32


def test_encoder_layer_errors(rng):
    with pytest.raises(tl.TinyLMError, match="variant"):
        TransformerEncoderLayer(4, 2, variant="B4")
    with pytest.raises(tl.TinyLMError, match="activation"):
        TransformerEncoderLayer(4, 2, activation="swish")
    with pytest.raises(tl.TinyLMError, match="divisible"):
        TransformerEncoderLayer(6, 4)
    with pytest.raises(tl.ShapeError, match="d_model=4"):
        enc()(rng.standard_normal((3, 2, 5)))


def test_encoder_layer_dropout_is_seeded(rng):
    h = rng.standard_normal((3, 2, 4))
    a, b = (TransformerEncoderLayer(4, 2, 6, dropout=0.3, seed=4, dtype=np.float64)
            for _ in range(2))
    close(a(h), b(h))
    out_train = a(h).data
    a.eval(), b.eval()
    close(a(h), b(h))
    assert not np.allclose(out_train, a(h).data)


# --- decoder layer ------------------------------------------------------------------
def dec(**kw):
    kw.setdefault("dropout", 0.0)
    return perturb(TransformerDecoderLayer(4, 2, dim_feedforward=6, seed=0, dtype=np.float64,
                                           **kw))


def test_decoder_layer_post_ln(rng):
    layer = dec()
    x, mem = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    h1 = layer.norm1(x + attn(layer, x, is_causal=True))
    h2 = layer.norm2(h1 + attn(layer, h1, "multihead_attn", mem))
    close(layer(x, mem, tgt_is_causal=True), layer.norm3(h2 + ffn(layer, h2)))


def test_decoder_layer_pre_ln(rng):
    layer = dec(norm_first=True)
    x, mem = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    h1 = x + attn(layer, layer.norm1(x), is_causal=True)
    h2 = h1 + attn(layer, layer.norm2(h1), "multihead_attn", mem)
    close(layer(x, mem, tgt_is_causal=True), h2 + ffn(layer, layer.norm3(h2)))


def test_decoder_layer_is_causal_in_the_target(rng):
    layer = dec()
    x, mem = rng.standard_normal((4, 2, 4)), rng.standard_normal((5, 2, 4))
    y = x.copy()
    y[2:] = rng.standard_normal((2, 2, 4))
    mask = Transformer.generate_square_subsequent_mask(4, dtype=np.float64)
    close(layer(x, mem, tgt_mask=mask).data[:2], layer(y, mem, tgt_mask=mask).data[:2])


def test_decoder_layer_d6_as_written(rng):
    """D6 ERRATUM, as written: LN(X + MaskedMHA(X, X, X) + Encoder(X)), Encoder(X) = memory."""
    layer = dec(variant="D6")
    x, mem = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))
    close(layer(x, mem), layer.norm1(x + attn(layer, x, is_causal=True) + mem))
    assert set(n.split(".")[0] for n in layer.state_dict()) == {"self_attn", "norm1"}
    with pytest.raises(tl.ShapeError, match="memory must have tgt's shape"):
        layer(x, rng.standard_normal((5, 2, 4)))
    # with D5's encoder as "Encoder": the document's whole D5 + D6 pair
    encoder = enc(variant="D5")
    close(layer(x, encoder(x)), layer.norm1(x + attn(layer, x, is_causal=True) + encoder(x)))


def test_decoder_layer_names_and_errors(rng):
    layer = TransformerDecoderLayer(8, 2, dim_feedforward=16)
    assert set(n.split(".")[0] for n, _ in layer.named_modules() if n) == {
        "self_attn", "multihead_attn", "linear1", "dropout", "linear2", "norm1", "norm2",
        "norm3", "dropout1", "dropout2", "dropout3"}
    with pytest.raises(tl.ShapeError, match="memory"):
        dec()(rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 6)))
    with pytest.raises(tl.TinyLMError, match="variant"):
        TransformerDecoderLayer(4, 2, variant="A9")


# --- stacks and the full model ------------------------------------------------------
def test_encoder_stack_copies_the_layer(rng):
    layer = enc()
    stack = TransformerEncoder(layer, 3, norm=nn.LayerNorm(4, dtype=np.float64))
    names = list(stack.state_dict())
    assert "layers.0.self_attn.in_proj_weight" in names and "layers.2.norm2.bias" in names
    assert "norm.weight" in names
    a, b = stack.layers[0].linear1.weight, stack.layers[2].linear1.weight
    close(a, b)                        # identical copies, as PyTorch's deepcopy
    assert a is not b and a is not layer.linear1.weight
    h = rng.standard_normal((3, 2, 4))
    x = h
    for lay in stack.layers:
        x = lay(x)
    close(stack(h), stack.norm(x))
    with pytest.raises(tl.TinyLMError, match="num_layers"):
        TransformerEncoder(layer, 0)


def test_stack_dropout_generators_differ_between_layers():
    stack = TransformerEncoder(TransformerEncoderLayer(4, 2, 6, dropout=0.5, seed=0), 2)
    r0 = stack.layers[0].dropout.rng.random(5)
    r1 = stack.layers[1].dropout.rng.random(5)
    assert not np.allclose(r0, r1)


def test_decoder_stack(rng):
    stack = TransformerDecoder(dec(), 2)
    x, mem = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    y = stack.layers[1](stack.layers[0](x, mem, tgt_is_causal=True), mem, tgt_is_causal=True)
    close(stack(x, mem, tgt_is_causal=True), y)


def test_transformer_encoder_decoder(rng):
    model = Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                        dim_feedforward=16, dropout=0.0, seed=0, dtype=np.float64)
    src, tgt = rng.standard_normal((5, 2, 8)), rng.standard_normal((4, 2, 8))
    mask = model.generate_square_subsequent_mask(4, dtype=np.float64)
    out = model(src, tgt, tgt_mask=mask)
    assert out.shape == (4, 2, 8)
    memory = model.encoder(src)
    close(out, model.decoder(tgt, memory, tgt_mask=mask))
    assert sum(1 for n in model.state_dict() if n.startswith("encoder.layers.")) > 0
    with pytest.raises(tl.ShapeError, match="batch size"):
        model(src, tgt[:, :1])
    with pytest.raises(tl.ShapeError, match="d_model=8"):
        model(src[..., :6], tgt)


def test_generate_square_subsequent_mask():
    m = Transformer.generate_square_subsequent_mask(3).data
    assert m.dtype == np.float32
    expected = np.array([[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]], np.float32)
    np.testing.assert_array_equal(m, expected)


def test_multihead_attention_in_a_layer_is_the_same_class():
    assert isinstance(TransformerEncoderLayer(4, 2).self_attn, MultiheadAttention)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_kv_cache_decodes_one_token_at_a_time(rng, norm_first):
    """A decoder-only (GPT-style) layer: causal self-attention with a KVCache, fed one
    token per call, gives the full causal pass's outputs."""
    from tinylm.nn.attention import KVCache
    layer = enc(norm_first=norm_first, batch_first=True)
    x = rng.standard_normal((2, 5, 4))
    full = layer(x, is_causal=True).data
    cache = KVCache()
    steps = [layer(x[:, t:t + 1], is_causal=True, kv_cache=cache).data for t in range(5)]
    close(np.concatenate(steps, axis=1), full)


def test_decoder_layer_kv_cache(rng):
    from tinylm.nn.attention import KVCache
    layer = dec(norm_first=True)
    x, mem = rng.standard_normal((4, 2, 4)), rng.standard_normal((6, 2, 4))
    full = layer(x, mem, tgt_is_causal=True).data
    cache = KVCache()
    steps = [layer(x[t:t + 1], mem, tgt_is_causal=True, kv_cache=cache).data for t in range(4)]
    close(np.concatenate(steps, axis=0), full)


def test_b7_bert_style_encoder_ignores_padding_tokens(rng):
    """B7: embedding (padding index) + positional encoding + Transformer + linear to the
    vocabulary. Real tokens' outputs do not depend on what the padding positions hold."""
    from tinylm.nn.positional import PositionalEncoding
    vocab, d, pad_id = 11, 8, 0
    emb = nn.Embedding(vocab, d, padding_idx=pad_id, seed=0, dtype=np.float64)
    pos = PositionalEncoding(d, max_len=16, batch_first=True, dtype=np.float64)
    stack = TransformerEncoder(TransformerEncoderLayer(d, 2, 16, 0.0, batch_first=True, seed=1,
                                                       dtype=np.float64), 2)
    head = nn.Linear(d, vocab, seed=2, dtype=np.float64)

    def model(ids, padding=None):
        padding = ids == pad_id if padding is None else padding
        return head(stack(pos(emb(ids)), src_key_padding_mask=padding))

    ids = np.array([[3, 5, 7, 0, 0], [2, 4, 6, 8, 10]])
    logits = model(ids)
    other = ids.copy()
    other[0, 3:] = [9, 1]              # different tokens in the padded slots
    close(model(other, padding=ids == pad_id).data[0, :3], logits.data[0, :3])
    assert logits.shape == (2, 5, vocab)
    loss = F.cross_entropy(logits.reshape(-1, vocab), np.roll(ids, -1, axis=1).reshape(-1),
                           ignore_index=pad_id)
    loss.backward()
    assert np.all(emb.weight.grad[pad_id] == 0)
    assert all(p.grad is not None for p in stack.parameters())
