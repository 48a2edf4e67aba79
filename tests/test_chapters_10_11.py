"""Chapters 10 (attention) and 11 (the Transformer): each runs end to end (``--quick``) and
passes its own checks, and the formulas they derive are tested here directly."""
import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm import nn

from chapter_tools import assert_chapter_passes, load_definitions


@pytest.fixture(scope="module")
def ch10():
    return load_definitions("10_attention.py")


@pytest.fixture(scope="module")
def ch11():
    return load_definitions("11_transformer.py")


# --- chapter 10 -----------------------------------------------------------------------
@pytest.mark.ch10
def test_chapter_10_runs(tmp_path):
    out = assert_chapter_passes("10_attention.py", tmp_path,
                                ["10_attention_weights.png", "10_scaling.png"])
    assert "same weights, different functions" in out


@pytest.mark.ch10
def test_d1_steps_give_convex_combinations(ch10):
    X = np.array([ch10.WORD_VECTORS[w] for w in ch10.SENTENCE])
    S, A, Y = ch10.self_attention_d1(X)
    np.testing.assert_allclose(S, X @ X.T)
    np.testing.assert_allclose(A.sum(axis=1), 1.0)
    np.testing.assert_allclose(Y, A @ X)


@pytest.mark.ch10
@pytest.mark.parametrize("causal", [False, True])
def test_step_by_step_attention_equals_library(ch10, causal):
    rng = np.random.default_rng(0)
    Q, K, V = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 4)), \
        rng.standard_normal((2, 5, 3))
    mask = np.tril(np.ones((5, 5), dtype=bool)) if causal else None
    out, w = ch10.attention_step_by_step(tl.Tensor(Q), tl.Tensor(K), tl.Tensor(V), mask)
    lib = F.scaled_dot_product_attention(tl.Tensor(Q), tl.Tensor(K), tl.Tensor(V),
                                         is_causal=causal)
    np.testing.assert_allclose(out.numpy(), lib.numpy(), atol=1e-12)
    np.testing.assert_allclose(out.numpy(), ch10.attention_np(Q, K, V, mask)[0], atol=1e-12)


@pytest.mark.ch10
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("causal", [False, True])
def test_hand_attention_backward_equals_autograd(ch10, seed, causal):
    rng = np.random.default_rng(seed)
    Q, K, V = (rng.standard_normal(s) for s in ((3, 6, 4), (3, 6, 4), (3, 6, 5)))
    dO = rng.standard_normal((3, 6, 5))
    mask = np.tril(np.ones((6, 6), dtype=bool)) if causal else None
    leaves = [tl.Tensor(a.copy(), requires_grad=True) for a in (Q, K, V)]
    ch10.attention_step_by_step(*leaves, mask)[0].backward(dO)
    for hand, leaf in zip(ch10.attention_backward(Q, K, V, dO, mask), leaves):
        np.testing.assert_allclose(hand, leaf.grad, atol=1e-12)


@pytest.mark.ch10
def test_hand_attention_backward_equals_finite_differences(ch10):
    rng = np.random.default_rng(3)
    Q, K, V, dO = (rng.standard_normal(s) for s in ((4, 3), (5, 3), (5, 2), (4, 2)))
    dQ, dK, dV = ch10.attention_backward(Q, K, V, dO)

    def loss():
        return float(np.sum(ch10.attention_np(Q, K, V)[0] * dO))

    for hand, arr in ((dQ, Q), (dK, K), (dV, V)):
        np.testing.assert_allclose(hand, ch10.numerical_gradient(loss, arr), atol=1e-8)


@pytest.mark.ch10
def test_softmax_jacobian_and_its_vector_product(ch10):
    s = np.array([0.5, -1.0, 2.0, 0.0, 1.0])
    y = ch10.softmax_np(s)
    J = ch10.softmax_jacobian(y)
    fd = np.column_stack([(ch10.softmax_np(s + 1e-6 * e) - ch10.softmax_np(s - 1e-6 * e)) / 2e-6
                          for e in np.eye(5)])
    np.testing.assert_allclose(J, fd, atol=1e-9)
    g = np.arange(5.0)
    np.testing.assert_allclose(ch10.softmax_backward(y, g), J.T @ g, atol=1e-15)


@pytest.mark.ch10
def test_sqrt_dk_variance_claim(ch10):
    rng = np.random.default_rng(0)
    for d in (4, 64, 512):
        raw, scaled = ch10.score_statistics(d, 40000, rng)
        assert raw / d == pytest.approx(1.0, rel=0.05)
        assert scaled == pytest.approx(1.0, rel=0.05)
    m_raw, j_raw = ch10.softmax_saturation(256, 16, 300, rng, scaled=False)
    m_scaled, j_scaled = ch10.softmax_saturation(256, 16, 300, rng, scaled=True)
    assert m_raw > 0.8 > 0.5 > m_scaled
    assert j_raw < j_scaled / 2


@pytest.mark.ch10
def test_multi_head_by_hand_equals_nn_multihead_attention(ch10):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 8))
    mine = ch10.MultiHeadByHand(8, 2, seed=1)
    lib = nn.MultiheadAttention(8, 2, batch_first=True, dtype=np.float64)
    lib.load_state_dict(ch10.by_hand_state_as_pytorch(mine))
    causal = np.tril(np.ones((5, 5), dtype=bool))
    y, w = mine(tl.Tensor(x), causal)
    y_lib, w_lib = lib(x, x, x, attn_mask=~causal, average_attn_weights=False)
    np.testing.assert_allclose(y.numpy(), y_lib.numpy(), atol=1e-12)
    np.testing.assert_allclose(w.numpy(), w_lib.numpy(), atol=1e-12)


@pytest.mark.ch10
def test_a8_one_head_is_not_h_heads(ch10):
    x = tl.Tensor(np.random.default_rng(6).standard_normal((1, 6, 16)))
    four, one = ch10.MultiHeadByHand(16, 4, seed=2), ch10.MultiHeadByHand(16, 1, seed=2)
    one.load_state_dict(four.state_dict())
    assert four.num_parameters() == one.num_parameters() == 4 * 16 * 16 + 4 * 16
    assert np.max(np.abs(four(x)[0].numpy() - one(x)[0].numpy())) > 1e-2
    assert four(x)[1].shape == (1, 4, 6, 6) and one(x)[1].shape == (1, 1, 6, 6)


# --- chapter 11 -----------------------------------------------------------------------
@pytest.mark.ch11
def test_chapter_11_runs(tmp_path):
    out = assert_chapter_passes("11_transformer.py", tmp_path,
                                ["11_positional_encoding.png", "11_encoder_variants.png",
                                 "11_grad_norms.png"])
    assert "7 output layer" in out


@pytest.mark.ch11
@pytest.mark.parametrize("k", [1, 2, 7, 25])
def test_sinusoidal_relative_position_is_a_linear_map(ch11, k):
    pe = ch11.sinusoidal_pe(60, 16)
    M = ch11.relative_shift_matrix(k, 16)
    np.testing.assert_allclose(pe[:-k] @ M, pe[k:], atol=1e-10)
    np.testing.assert_allclose(M @ M.T, np.eye(16), atol=1e-12)


@pytest.mark.ch11
def test_sinusoidal_table_equals_positional_encoding(ch11):
    layer = nn.PositionalEncoding(12, max_len=30, batch_first=True, dtype=np.float64)
    np.testing.assert_allclose(layer.pe, ch11.sinusoidal_pe(30, 12), atol=1e-12)
    x = np.random.default_rng(0).standard_normal((2, 7, 12))
    np.testing.assert_allclose(layer(x).numpy(), x + ch11.sinusoidal_pe(7, 12), atol=1e-12)


@pytest.mark.ch11
def test_layer_norm_backward_by_hand_equals_autograd(ch11):
    rng = np.random.default_rng(1)
    x, gamma, beta = rng.standard_normal((4, 6)) * 3, rng.standard_normal(6), \
        rng.standard_normal(6)
    dy = rng.standard_normal((4, 6))
    y, cache = ch11.layer_norm_forward(x, gamma, beta)
    leaves = [tl.Tensor(a.copy(), requires_grad=True) for a in (x, gamma, beta)]
    out = F.layer_norm(leaves[0], 6, leaves[1], leaves[2])
    out.backward(dy)
    np.testing.assert_allclose(y, out.numpy(), atol=1e-12)
    for hand, leaf in zip(ch11.layer_norm_backward(dy, cache), leaves):
        np.testing.assert_allclose(hand, leaf.grad, atol=1e-12)


@pytest.mark.ch11
@pytest.mark.parametrize("variant,kwargs", [("post-LN", {}), ("pre-LN", {"norm_first": True}),
                                            ("A9", {"variant": "A9"}),
                                            ("D5", {"variant": "D5"})])
def test_encoder_layer_by_hand_equals_library(ch11, variant, kwargs):
    x = tl.Tensor(np.random.default_rng(2).standard_normal((2, 4, 8)))
    mine = ch11.EncoderLayerByHand(8, 2, 16, variant, seed=1)
    lib = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True,
                                     dtype=np.float64, **kwargs)
    lib.load_state_dict(mine.state_dict())
    np.testing.assert_allclose(mine(x).numpy(), lib(x).numpy(), atol=1e-12)


@pytest.mark.ch11
def test_a9_is_the_four_branch_sum(ch11):
    layer = ch11.EncoderLayerByHand(8, 2, 16, "A9", seed=3)
    h = tl.Tensor(np.random.default_rng(4).standard_normal((1, 5, 8)))
    branches = layer.norm1(h) + layer.self_attn(h, h) + layer.norm2(h) + layer.ffn(h)
    np.testing.assert_allclose(layer(h).numpy(), branches.numpy(), atol=1e-14)


@pytest.mark.ch11
@pytest.mark.parametrize("variant", ["standard", "D6"])
def test_decoder_layer_by_hand_equals_library(ch11, variant):
    rng = np.random.default_rng(5)
    y, mem = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 4, 8))
    mine = ch11.DecoderLayerByHand(8, 2, 16, variant, seed=1)
    lib = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True,
                                     dtype=np.float64, variant=variant)
    lib.load_state_dict(mine.state_dict())
    kw = {"tgt_is_causal": True, "tgt_mask": ~np.tril(np.ones((4, 4), dtype=bool))} \
        if variant == "standard" else {}
    np.testing.assert_allclose(mine(tl.Tensor(y), tl.Tensor(mem)).numpy(),
                               lib(y, mem, **kw).numpy(), atol=1e-12)


@pytest.mark.ch11
def test_decoder_is_causal_in_its_own_input(ch11):
    """Changing target word 3 changes no output before position 3 (standard and D6)."""
    rng = np.random.default_rng(6)
    y, mem = rng.standard_normal((1, 5, 8)), rng.standard_normal((1, 5, 8))
    y2 = y.copy()
    y2[0, 3] += 1.0
    for variant in ("standard", "D6"):
        layer = ch11.DecoderLayerByHand(8, 2, 16, variant, seed=2)
        a, b = layer(tl.Tensor(y), tl.Tensor(mem)).numpy(), \
            layer(tl.Tensor(y2), tl.Tensor(mem)).numpy()
        np.testing.assert_allclose(a[0, :3], b[0, :3], atol=1e-14)
        assert np.max(np.abs(a[0, 3:] - b[0, 3:])) > 1e-6


@pytest.mark.ch11
def test_pre_ln_gradient_norms_fall_toward_the_output(ch11):
    pre = ch11.layer_grad_norms("pre-LN", n_layers=4, seed=0)
    post = ch11.layer_grad_norms("post-LN", n_layers=4, seed=0)
    assert pre.shape == post.shape == (4,)
    assert pre[-1] < pre[0]
    assert post[-1] / post[0] > pre[-1] / pre[0]
