"""Chapter 10: scaled dot-product attention (A8, D1, D4, E4), multi-head attention and the
key/value cache: formulas against hand compositions, masks, shapes and bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylm as tl
from tinylm import functional as F
from tinylm.nn.attention import KVCache, MultiheadAttention
from tinylm.tensor import Tensor

pytestmark = pytest.mark.ch10


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(q, k, v, allowed=None):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    return np_softmax(s) @ v


def qkv(rng, lead=(2,), L=3, S=4, E=5, Ev=6):
    return (rng.standard_normal(lead + (L, E)), rng.standard_normal(lead + (S, E)),
            rng.standard_normal(lead + (S, Ev)))


# --- scaled dot-product attention ---------------------------------------------------
def test_sdpa_is_the_d4_formula(rng):
    q, k, v = qkv(rng)
    out = F.scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 6)
    np.testing.assert_allclose(out.data, np_attention(q, k, v), rtol=1e-12)


def test_sdpa_broadcasts_leading_axes_and_takes_a_scale(rng):
    q = rng.standard_normal((2, 3, 4, 5))
    k, v = rng.standard_normal((1, 3, 6, 5)), rng.standard_normal((1, 3, 6, 2))
    out = F.scaled_dot_product_attention(q, k, v, scale=0.5)
    expected = np_softmax(q @ np.swapaxes(k, -1, -2) * 0.5) @ v
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


def test_sdpa_causal_equals_a_minus_inf_upper_triangle(rng):
    q, k, v = qkv(rng, L=4, S=4)
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    float_mask = np.triu(np.full((4, 4), -np.inf), 1)
    added = F.scaled_dot_product_attention(q, k, v, attn_mask=float_mask)
    boolean = F.scaled_dot_product_attention(q, k, v, attn_mask=np.tril(np.ones((4, 4), bool)))
    np.testing.assert_allclose(causal.data, added.data, rtol=1e-12)
    np.testing.assert_allclose(causal.data, boolean.data, rtol=1e-12)
    np.testing.assert_allclose(causal.data, np_attention(q, k, v, np.tril(np.ones((4, 4), bool))),
                               rtol=1e-12)
    # the first query sees only the first key: its output is the first value
    np.testing.assert_allclose(causal.data[:, 0], v[:, 0], rtol=1e-12)


def test_sdpa_boolean_mask_true_means_attend(rng):
    q, k, v = qkv(rng)
    allowed = np.array([True, False, True, False])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    # same as attention over the allowed keys only
    expected = np_attention(q, k[:, allowed], v[:, allowed])
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


def test_sdpa_float_mask_is_added_to_the_scores(rng):
    q, k, v = qkv(rng)
    bias = rng.standard_normal((3, 4))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    expected = np_softmax(q @ np.swapaxes(k, -1, -2) / math.sqrt(5) + bias) @ v
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)


def test_sdpa_fully_masked_row_is_an_error_not_nan(rng):
    q, k, v = qkv(rng)
    allowed = np.ones((3, 4), bool)
    allowed[1] = False
    with pytest.raises(tl.TinyLMError, match="every key masked"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    minus_inf = np.zeros((3, 4))
    minus_inf[2] = -np.inf
    with pytest.raises(tl.TinyLMError, match="every key masked"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=minus_inf)


def test_sdpa_bad_input(rng):
    q, k, v = qkv(rng)
    with pytest.raises(tl.ShapeError, match="same last axis"):
        F.scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(tl.ShapeError, match="same length S"):
        F.scaled_dot_product_attention(q, k, v[:, :3])
    with pytest.raises(tl.ShapeError, match="does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 5), bool))
    with pytest.raises(tl.ShapeError, match="at least 2 axes"):
        F.scaled_dot_product_attention(q[0, 0], k, v)
    with pytest.raises(tl.TinyLMError, match="not both"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), bool), is_causal=True)
    with pytest.raises(tl.DTypeError, match="boolean or floating"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), int))
    with pytest.raises(tl.TinyLMError, match="generator"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)


def test_sdpa_dropout_uses_the_generator(rng):
    q, k, v = qkv(rng)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, generator=3)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, generator=3)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.allclose(a.data, np_attention(q, k, v))


def test_sdpa_gradient_flows_and_masked_keys_get_none(rng):
    q, k, v = (Tensor(a, requires_grad=True) for a in qkv(rng))
    allowed = np.array([True, True, True, False])
    F.scaled_dot_product_attention(q, k, v, attn_mask=allowed).sum().backward()
    assert np.all(v.grad[:, 3] == 0) and np.all(k.grad[:, 3] == 0)
    assert np.all(np.isfinite(q.grad))


def test_sdpa_keeps_float32(rng):
    q, k, v = (a.astype(np.float32) for a in qkv(rng))
    assert F.scaled_dot_product_attention(q, k, v, is_causal=False).dtype == np.float32
    mask = np.zeros((3, 4))           # a float64 mask does not promote
    assert F.scaled_dot_product_attention(q, k, v, attn_mask=mask).dtype == np.float32


# --- multi-head attention ------------------------------------------------------------
def make_mha(E=8, H=2, **kw):
    return MultiheadAttention(E, H, seed=0, dtype=np.float64, **kw)


def test_mha_parameters_names_shapes_and_init():
    mha = MultiheadAttention(8, 2, seed=0)
    shapes = {k: v.shape for k, v in mha.state_dict().items()}
    assert shapes == {"in_proj_weight": (24, 8), "in_proj_bias": (24,),
                      "out_proj.weight": (8, 8), "out_proj.bias": (8,)}
    assert mha.in_proj_weight.dtype == np.float32
    assert np.all(mha.in_proj_bias.data == 0) and np.all(mha.out_proj.bias.data == 0)
    assert np.abs(mha.in_proj_weight.data).max() <= math.sqrt(6 / 32)
    assert np.abs(mha.out_proj.weight.data).max() <= 1 / math.sqrt(8)
    np.testing.assert_array_equal(MultiheadAttention(8, 2, seed=0).in_proj_weight.data,
                                  mha.in_proj_weight.data)
    no_bias = MultiheadAttention(8, 2, bias=False, seed=0)
    assert set(no_bias.state_dict()) == {"in_proj_weight", "out_proj.weight"}
    kv = MultiheadAttention(8, 2, kdim=3, vdim=5, seed=0)
    shapes = {k: v.shape for k, v in kv.state_dict().items()}
    assert shapes == {"q_proj_weight": (8, 8), "k_proj_weight": (8, 3), "v_proj_weight": (8, 5),
                      "in_proj_bias": (24,), "out_proj.weight": (8, 8), "out_proj.bias": (8,)}


def test_mha_is_concat_of_heads_times_w_o(rng):
    """A8's standard form: Concat(head_1..head_h) W_O, head_i = Attention(QW_i^Q, KW_i^K, VW_i^V)."""
    mha = make_mha(E=6, H=3)
    for p in mha.parameters():
        p.data = rng.standard_normal(p.shape)
    x = rng.standard_normal((2, 4, 6))                 # (N, L, E) here: batch_first below
    mha.batch_first = True
    out, _ = mha(x, x, x)
    W, b = mha.in_proj_weight.data, mha.in_proj_bias.data
    q, k, v = (x @ W[i * 6:(i + 1) * 6].T + b[i * 6:(i + 1) * 6] for i in range(3))
    heads = [np_attention(q[..., 2 * h:2 * h + 2], k[..., 2 * h:2 * h + 2], v[..., 2 * h:2 * h + 2])
             for h in range(3)]
    expected = np.concatenate(heads, axis=-1) @ mha.out_proj.weight.data.T + mha.out_proj.bias.data
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)


def test_a8_as_written_is_one_head_with_identity_projections(rng):
    """A8 ERRATUM: the document's "MultiHeadAttention" is the single-head formula. A
    1-head MultiheadAttention with identity projections and zero biases is exactly it."""
    mha = make_mha(E=4, H=1, batch_first=True)
    mha.in_proj_weight.data = np.concatenate([np.eye(4)] * 3)
    mha.out_proj.weight.data = np.eye(4)
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(mha(x, x, x)[0].data, np_attention(x, x, x), rtol=1e-12)


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_shapes(rng, batch_first):
    mha = make_mha(batch_first=batch_first)
    q = rng.standard_normal((2, 3, 8) if batch_first else (3, 2, 8))
    kv = rng.standard_normal((2, 5, 8) if batch_first else (5, 2, 8))
    out, w = mha(q, kv, kv)
    assert out.shape == q.shape and w.shape == (2, 3, 5)
    out, w = mha(q, kv, kv, average_attn_weights=False)
    assert w.shape == (2, 2, 3, 5)
    assert mha(q, kv, kv, need_weights=False)[1] is None


def test_mha_batch_first_layouts_agree(rng):
    a, b = make_mha(), make_mha(batch_first=True)
    x = rng.standard_normal((3, 2, 8))
    np.testing.assert_allclose(a(x, x, x)[0].data.transpose(1, 0, 2),
                               b(x.transpose(1, 0, 2), x.transpose(1, 0, 2),
                                 x.transpose(1, 0, 2))[0].data, rtol=1e-12)


def test_mha_unbatched_equals_batch_of_one(rng):
    mha = make_mha()
    x = rng.standard_normal((3, 8))
    out, w = mha(x, x, x)
    out1, w1 = mha(x[:, None], x[:, None], x[:, None])
    assert out.shape == (3, 8) and w.shape == (3, 3)
    np.testing.assert_allclose(out.data, out1.data[:, 0], rtol=1e-12)
    np.testing.assert_allclose(w.data, w1.data[0], rtol=1e-12)


def test_mha_weights_rows_sum_to_one_and_average_is_the_head_mean(rng):
    mha = make_mha()
    x = rng.standard_normal((4, 2, 8))
    _, avg = mha(x, x, x)
    _, per_head = mha(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(avg.data.sum(-1), 1, rtol=1e-12)
    np.testing.assert_allclose(per_head.data.sum(-1), 1, rtol=1e-12)
    np.testing.assert_allclose(avg.data, per_head.data.mean(axis=1), rtol=1e-12)


def test_mha_key_padding_mask_ignores_padded_keys(rng):
    mha = make_mha()
    q, kv = rng.standard_normal((3, 2, 8)), rng.standard_normal((5, 2, 8))
    pad = np.zeros((2, 5), bool)
    pad[0, 3:] = True
    pad[1, 4] = True
    out, w = mha(q, kv, kv, key_padding_mask=pad)
    assert np.all(w.data[0, :, 3:] == 0) and np.all(w.data[1, :, 4] == 0)
    changed = kv.copy()
    changed[3:, 0] = 100 * rng.standard_normal((2, 8))
    changed[4, 1] = -50
    out2, _ = mha(q, changed, changed, key_padding_mask=pad)
    np.testing.assert_allclose(out.data, out2.data, rtol=1e-12)
    # a float key_padding_mask of 0 / -inf does the same
    out3, _ = mha(q, kv, kv, key_padding_mask=np.where(pad, -np.inf, 0.0))
    np.testing.assert_allclose(out.data, out3.data, rtol=1e-12)


def test_mha_attn_mask_true_means_blocked(rng):
    """MultiheadAttention's boolean attn_mask is PyTorch's: True = may NOT attend (the
    opposite of scaled_dot_product_attention's)."""
    mha = make_mha()
    x = rng.standard_normal((4, 2, 8))
    upper = np.triu(np.ones((4, 4), bool), 1)
    out_bool, w = mha(x, x, x, attn_mask=upper)
    assert np.all(w.data[:, upper] == 0)
    out_float, _ = mha(x, x, x, attn_mask=np.where(upper, -np.inf, 0.0))
    out_causal, _ = mha(x, x, x, is_causal=True)
    np.testing.assert_allclose(out_bool.data, out_float.data, rtol=1e-12)
    np.testing.assert_allclose(out_bool.data, out_causal.data, rtol=1e-12)
    per_head = np.zeros((2 * 2, 4, 4), bool)       # (N * num_heads, L, S)
    per_head[:] = upper
    np.testing.assert_allclose(mha(x, x, x, attn_mask=per_head)[0].data, out_bool.data,
                               rtol=1e-12)


def test_mha_causal_output_ignores_the_future(rng):
    mha = make_mha()
    x = rng.standard_normal((5, 2, 8))
    y = x.copy()
    y[3:] = rng.standard_normal((2, 2, 8))
    a = mha(x, x, x, is_causal=True)[0].data
    b = mha(y, y, y, is_causal=True)[0].data
    np.testing.assert_allclose(a[:3], b[:3], rtol=1e-12)
    assert not np.allclose(a[3:], b[3:])


def test_mha_bad_input(rng):
    with pytest.raises(tl.TinyLMError, match=r"embed_dim \(10\) must be divisible by num_heads \(3\)"):
        MultiheadAttention(10, 3)
    with pytest.raises(tl.TinyLMError, match="positive integer"):
        MultiheadAttention(0, 1)
    mha = make_mha()
    x = rng.standard_normal((3, 2, 8))
    with pytest.raises(tl.ShapeError, match="attn_mask must have shape"):
        mha(x, x, x, attn_mask=np.zeros((3, 4), bool))
    with pytest.raises(tl.ShapeError, match="key_padding_mask must have shape"):
        mha(x, x, x, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(tl.ShapeError, match="query has 7 features"):
        mha(x[..., :7], x, x)
    with pytest.raises(tl.ShapeError, match="3-D"):
        mha(x, x[0], x[0])
    with pytest.raises(tl.ShapeError, match="batch"):
        mha(x, x[:, :1], x[:, :1])
    with pytest.raises(tl.TinyLMError, match="every key masked"):
        mha(x, x, x, key_padding_mask=np.ones((2, 3), bool))


def test_mha_dropout_is_seeded_and_off_in_eval(rng):
    x = rng.standard_normal((3, 2, 8))
    a = MultiheadAttention(8, 2, dropout=0.5, seed=1, dtype=np.float64)
    b = MultiheadAttention(8, 2, dropout=0.5, seed=1, dtype=np.float64)
    np.testing.assert_array_equal(a(x, x, x)[0].data, b(x, x, x)[0].data)
    plain = MultiheadAttention(8, 2, seed=1, dtype=np.float64)
    assert not np.allclose(a(x, x, x)[0].data, plain(x, x, x)[0].data)
    a.eval()
    np.testing.assert_allclose(a(x, x, x)[0].data, plain(x, x, x)[0].data, rtol=1e-12)


# --- the key/value cache -------------------------------------------------------------
def test_kv_cache_step_by_step_equals_full_causal_attention(rng):
    mha = make_mha(batch_first=True)
    x = rng.standard_normal((2, 6, 8))
    full, _ = mha(x, x, x, is_causal=True)
    cache = KVCache()
    steps = [mha(x[:, t:t + 1], x[:, t:t + 1], x[:, t:t + 1], kv_cache=cache)[0]
             for t in range(6)]
    assert len(cache) == 6
    np.testing.assert_allclose(np.concatenate([s.data for s in steps], axis=1), full.data,
                               rtol=1e-12, atol=1e-14)


def test_kv_cache_prefill_then_steps(rng):
    """A prompt of 4 tokens in one call (causal, aligned to the end), then one at a time."""
    mha = make_mha()
    x = rng.standard_normal((6, 2, 8))
    full, _ = mha(x, x, x, is_causal=True)
    cache = KVCache()
    first, w = mha(x[:4], x[:4], x[:4], is_causal=True, kv_cache=cache)
    rest = [mha(x[t:t + 1], x[t:t + 1], x[t:t + 1], kv_cache=cache)[0] for t in (4, 5)]
    got = np.concatenate([first.data] + [r.data for r in rest], axis=0)
    np.testing.assert_allclose(got, full.data, rtol=1e-12, atol=1e-14)
    cache.reset()
    assert len(cache) == 0


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("is_causal", [False, True])
def test_mha_without_weights_is_fused_and_equals_the_formula(rng, is_causal, streaming,
                                                             monkeypatch):
    """need_weights=False, no masks but the causal line: one FusedAttention node runs (the
    streaming kernel too when made to kick in at these small sizes) and gives the formula's
    output and gradients, also with a prefilled KV cache (causal line bottom-right aligned)."""
    if streaming:
        monkeypatch.setattr(F, "STREAMING_MIN_SCORES", 10)
    calls = []
    original = F.FusedAttention.forward

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls.append(self.weights is None)        # True when it streamed
        return out
    monkeypatch.setattr(F.FusedAttention, "forward", spy)
    mha = make_mha(batch_first=True)
    x = rng.standard_normal((2, 9, 8))
    results = []
    for need_weights in (True, False):
        xt = Tensor(x, requires_grad=True)
        mha.zero_grad()
        out, w = mha(xt, xt, xt, is_causal=is_causal, need_weights=need_weights)
        (out * out).sum().backward()
        results.append((out.data, xt.grad, mha.in_proj_weight.grad.copy()))
        assert (w is None) == (not need_weights)
    assert calls == [streaming]
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    cache = KVCache()
    first = mha(x[:, :6], x[:, :6], x[:, :6], is_causal=is_causal, need_weights=False,
                kv_cache=cache)[0]
    rest = mha(x[:, 6:], x[:, 6:], x[:, 6:], is_causal=is_causal, need_weights=False,
               kv_cache=cache)[0]
    # the last 3 queries see the 6 cached keys and the 3 new ones, as in the full run
    np.testing.assert_allclose(rest.data, results[0][0][:, 6:], rtol=1e-10, atol=1e-12)
    if is_causal:
        np.testing.assert_allclose(np.concatenate([first.data, rest.data], axis=1),
                                   results[0][0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_causal_queries_without_keys_are_an_error_on_both_paths(rng, need_weights):
    """5 causal queries aligned to the end of 3 keys: the first two see none; the fused path
    (no weights) refuses it as the formula does, instead of returning NaN."""
    mha = make_mha(batch_first=True)
    x = rng.standard_normal((1, 5, 8))
    with pytest.raises(tl.TinyLMError, match="4 query row"):
        mha(x, x[:, :3], x[:, :3], is_causal=True, need_weights=need_weights)


def test_kv_cache_with_key_padding_and_mismatch(rng):
    mha = make_mha(batch_first=True)
    x = rng.standard_normal((2, 3, 8))
    cache = KVCache()
    mha(x[:, :2], x[:, :2], x[:, :2], kv_cache=cache, is_causal=True)
    pad = np.array([[False], [False]])
    out, w = mha(x[:, 2:], x[:, 2:], x[:, 2:], kv_cache=cache, key_padding_mask=pad)
    assert w.shape == (2, 1, 3)
    with pytest.raises(tl.ShapeError, match="KVCache"):
        mha(x[:1, 2:], x[:1, 2:], x[:1, 2:], kv_cache=cache)


def test_second_derivative_through_attention(rng):
    """Attention is built from differentiable ops: grad(create_graph=True) works."""
    q, k, v = (Tensor(a, requires_grad=True) for a in qkv(rng))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=False)
    gq = tl.grad((out * out).sum(), q, create_graph=True)
    (hv,) = tl.grad(gq.sum(), [q])
    assert hv.shape == q.shape and np.all(np.isfinite(hv.data))


def test_mha_unbatched_with_key_padding_and_tensor_masks(rng):
    mha = make_mha()
    x = rng.standard_normal((4, 8))
    pad = np.array([False, False, True, False])
    out, w = mha(x, x, x, key_padding_mask=pad)
    out_b, _ = mha(x[:, None], x[:, None], x[:, None], key_padding_mask=pad[None])
    close_ = np.testing.assert_allclose
    close_(out.data, out_b.data[:, 0], rtol=1e-12)
    assert np.all(w.data[:, 2] == 0)
    out_t, _ = mha(x, x, x, key_padding_mask=Tensor(pad),
                   attn_mask=Tensor(np.zeros((4, 4), bool)))
    close_(out_t.data, out.data, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.sampled_from([(4, 1), (4, 2), (6, 3)]),
       st.integers(0, 2 ** 31 - 1))
def test_self_attention_is_permutation_equivariant(batch, length, dims, seed):
    """D1: attention compares every pair, with no notion of position: permuting the tokens
    permutes the outputs the same way (why positional encoding, E5, is needed)."""
    rng = np.random.default_rng(seed)
    E, H = dims
    mha = MultiheadAttention(E, H, seed=seed, dtype=np.float64, batch_first=True)
    x = rng.standard_normal((batch, length, E))
    perm = rng.permutation(length)
    out, w = mha(x, x, x)
    out_p, w_p = mha(x[:, perm], x[:, perm], x[:, perm])
    np.testing.assert_allclose(out_p.data, out.data[:, perm], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w_p.data, w.data[:, perm][:, :, perm], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w.data.sum(-1), 1, rtol=1e-12)
