"""tinylm.compress (B8): magnitude pruning and symmetric quantisation, by hand and as
properties, and the storage they are counted at."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylm import compress
from tinylm.errors import ShapeError, TinyLMError
from tinylm.models import GPT, GPTConfig
from tinylm.nn import Embedding, Linear, Module

pytestmark = pytest.mark.ch17


def _gpt():
    return GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=8), seed=0)


def test_prunable_weights_are_the_linear_matrices_not_the_tied_embedding():
    model = _gpt()
    names = [name for name, _ in compress.prunable_weights(model)]
    assert names == [f"transformer.h.{i}.{m}.weight" for i in range(2)
                     for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    with_emb = [name for name, _ in compress.prunable_weights(model, include_embeddings=True)]
    assert "transformer.wte.weight" in with_emb and "transformer.wpe.weight" in with_emb
    assert "lm_head.weight" not in with_emb          # the tied head is the embedding: once
    assert len(with_emb) == len(names) + 2

    class Untied(Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = Embedding(5, 3, seed=0), Linear(3, 5, seed=1)
    assert [n for n, _ in compress.prunable_weights(Untied())] == ["out.weight"]
    with pytest.raises(TinyLMError, match="no Linear weight"):
        compress.prunable_weights(Embedding(4, 2, seed=0))
    with pytest.raises(TinyLMError, match="expected a tinylm Module"):
        compress.prunable_weights(np.ones((2, 2)))


def test_magnitude_masks_by_hand_global_vs_per_layer():
    a = np.array([[0.1, -2.0], [0.3, 0.05]], dtype=np.float32)    # small weights
    b = np.array([[5.0, -4.0, 0.2]], dtype=np.float32)            # large weights
    glob = compress.magnitude_masks([a, b], 3 / 7)                 # 3 of 7 go: 0.05, 0.1, 0.2
    np.testing.assert_array_equal(glob[0], [[False, True], [True, False]])
    np.testing.assert_array_equal(glob[1], [[True, True, False]])
    per = compress.magnitude_masks([a, b], 0.5, scope="layer")     # 2 of 4, then 2 of 3 go
    np.testing.assert_array_equal(per[0], [[False, True], [True, False]])
    np.testing.assert_array_equal(per[1], [[True, False, False]])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.floats(0, 0.99), st.sampled_from(["global", "layer"]))
def test_magnitude_masks_keep_the_largest_exactly(seed, sparsity, scope):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s).astype(np.float32) for s in ((3, 5), (7,), (2, 2, 2))]
    masks = compress.magnitude_masks(arrays, sparsity, scope)
    groups = [(arrays, masks)] if scope == "global" else [([a], [m]) for a, m in
                                                          zip(arrays, masks)]
    for arrs, ms in groups:
        w = np.concatenate([a.ravel() for a in arrs])
        k = np.concatenate([m.ravel() for m in ms])
        assert (~k).sum() == round(sparsity * w.size)
        if k.any() and (~k).any():
            assert np.abs(w[k]).min() >= np.abs(w[~k]).max()
    assert [m.shape for m in masks] == [a.shape for a in arrays]


def test_random_masks_count_seed_and_apply():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(6, 5)), rng.normal(size=(10,))]
    m1 = compress.random_masks(arrays, 0.4, seed=3)
    m2 = compress.random_masks(arrays, 0.4, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(m1, m2))
    assert sum((~m).sum() for m in m1) == 16
    copies = [a.copy() for a in arrays]
    share = compress.apply_masks_(copies, m1)
    assert share == pytest.approx(16 / 40)
    for c, a, m in zip(copies, arrays, m1):
        np.testing.assert_array_equal(c, np.where(m, a, 0.0))
    with pytest.raises(ShapeError, match="mask of shape"):
        compress.apply_masks_([arrays[0]], [m1[1]])
    with pytest.raises(TinyLMError, match="2 weights but 1 masks"):
        compress.apply_masks_(arrays, m1[:1])


def test_quantize_by_hand():
    # scales that are powers of two keep the hand arithmetic exact in float32
    w = np.array([[127.0, -63.5, 31.75], [0.0, 0.0, 0.0]], dtype=np.float32)
    q, s = compress.quantize_symmetric(w, bits=8)
    assert q.dtype == np.int8 and s.shape == (2, 1)
    np.testing.assert_array_equal(s.ravel(), [1.0, 1.0])             # zero row: scale 1
    np.testing.assert_array_equal(q, [[127, -64, 32], [0, 0, 0]])     # -63.5 -> -64 (to even)
    w4 = np.array([[7.0, -3.5, 1.75], [0.5, 0.0, -14.0]], dtype=np.float32)
    q4, s4 = compress.quantize_symmetric(w4, bits=4, per_channel=False)
    assert s4.shape == () and s4 == 2.0                               # 14 / 7
    np.testing.assert_array_equal(q4, [[4, -2, 1], [0, 0, -7]])       # 3.5 -> 4, 0.875 -> 1
    np.testing.assert_array_equal(compress.dequantize(q4, s4), 2.0 * q4)
    q4c, s4c = compress.quantize_symmetric(w4, bits=4)                # per row: 1 and 2
    np.testing.assert_array_equal(s4c.ravel(), [1.0, 2.0])
    np.testing.assert_array_equal(q4c, [[7, -4, 2], [0, 0, -7]])      # 0.25 -> 0
    assert compress.quantize_symmetric(w, bits=12)[0].dtype == np.int16


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.integers(2, 8), st.booleans())
def test_quantization_error_is_at_most_half_a_step(seed, bits, per_channel):
    rng = np.random.default_rng(seed)
    w = (rng.standard_t(3, size=(6, 9)) * rng.uniform(0.01, 10)).astype(np.float32)
    q, s = compress.quantize_symmetric(w, bits, per_channel)
    Q = 2 ** (bits - 1) - 1
    assert np.abs(q).max() <= Q
    assert np.all(np.abs(w - compress.dequantize(q, s)) <= s / 2 * (1 + 1e-5))
    # the largest weight of each row (or of the matrix) is represented exactly, up to rounding
    top = np.abs(w).max(axis=1) if per_channel else np.abs(w).max()
    np.testing.assert_allclose(np.abs(q).max(axis=1) if per_channel else np.abs(q).max(), Q)
    np.testing.assert_allclose(np.ravel(s) * Q, np.ravel(top), rtol=1e-6)


def test_fake_quantize_in_place_and_storage():
    model = _gpt()
    weights = [w for _, w in compress.prunable_weights(model)]
    before = [w.data.copy() for w in weights]
    nbytes = compress.fake_quantize_(weights, bits=8)
    assert nbytes == sum(w.size + 4 * w.shape[0] for w in weights)
    for w, b in zip(weights, before):
        q, s = compress.quantize_symmetric(b, 8)
        np.testing.assert_array_equal(w.data, compress.dequantize(q, s))
        assert w.data.dtype == np.float32
    again = [w.data.copy() for w in weights]
    compress.fake_quantize_(weights, bits=8)          # quantising w^ again changes nothing
    for w, a in zip(weights, again):
        np.testing.assert_allclose(w.data, a, rtol=0, atol=1e-7)


def test_storage_bytes():
    assert compress.dense_bytes((10, 20)) == 800
    assert compress.quantized_bytes((10, 20), 8) == 200 + 40
    assert compress.quantized_bytes((10, 20), 4, per_channel=False) == 100 + 4
    assert compress.quantized_bytes((10, 3), 3) == 12 + 40          # 90 bits -> 12 bytes
    mask = np.zeros((10, 20), dtype=bool)
    mask[:, :5] = True
    assert compress.sparse_bytes(mask) == 25 + 200
    assert compress.sparse_bytes(mask, value_bits=8) == 25 + 50
    assert compress.sparse_bytes(np.ones((8, 8), bool)) > compress.dense_bytes((8, 8))


def test_bad_input_is_named():
    w = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(TinyLMError, match="sparsity must be a number in"):
        compress.magnitude_masks([w], 1.0)
    with pytest.raises(TinyLMError, match="scope must be"):
        compress.magnitude_masks([w], 0.5, scope="row")
    with pytest.raises(TinyLMError, match="non-empty list"):
        compress.random_masks([], 0.5, seed=0)
    with pytest.raises(TinyLMError, match="bits must be an integer"):
        compress.quantize_symmetric(w, bits=1)
    with pytest.raises(ShapeError, match="per-channel scales need a 2-D"):
        compress.quantize_symmetric(np.ones(4, np.float32))
    with pytest.raises(TinyLMError, match="non-empty float array"):
        compress.quantize_symmetric(np.ones((2, 2), dtype=np.int64))
