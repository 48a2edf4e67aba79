"""Values of every function in ``tinylm.functional`` against formulas written out in NumPy.

Gradients are checked by finite differences in test_gradcheck.py; the few gradient checks
here are the ones a formula states directly (A10: the embedding's gradient is one_hot^T g).
"""
import math

import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm.tensor import Tensor

erf = np.vectorize(math.erf)


def np_log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# --- elementwise ---------------------------------------------------------------------
@pytest.mark.parametrize("name, formula, low", [
    ("exp", np.exp, -3.0),
    ("log", np.log, 0.1),
    ("sqrt", np.sqrt, 0.0),
    ("tanh", np.tanh, -3.0),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), -3.0),
    ("relu", lambda x: np.maximum(x, 0), -3.0),
])
def test_elementwise_values(rng, name, formula, low):
    x = rng.uniform(low, 3.0, (4, 5))
    out = getattr(F, name)(Tensor(x))
    assert isinstance(out, Tensor) and out.shape == x.shape and out.dtype == np.float64
    np.testing.assert_allclose(out.data, formula(x), rtol=1e-12, atol=1e-15)
    # the same functions as Tensor methods, on float32
    x32 = Tensor(x.astype(np.float32))
    method = getattr(x32, name)()
    assert method.dtype == np.float32
    np.testing.assert_allclose(method.data, formula(x), rtol=1e-5, atol=1e-6)


def test_functions_accept_plain_arrays():
    out = F.exp(np.array([0.0, 1.0]))
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, [1.0, math.e])


def test_sigmoid_extremes():
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    s = F.sigmoid(Tensor(x)).data
    assert np.isfinite(s).all()
    np.testing.assert_allclose(s[[0, 2, 4]], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(s[1], math.exp(-40) / (1 + math.exp(-40)), rtol=1e-10)
    s32 = F.sigmoid(Tensor(x.astype(np.float32))).data
    assert s32.dtype == np.float32 and np.isfinite(s32).all()


def test_relu_at_zero_and_negative():
    np.testing.assert_array_equal(F.relu(Tensor(np.array([-2.0, 0.0, 3.0]))).data, [0, 0, 3])


def test_gelu_exact_form(rng):
    x = rng.uniform(-5, 5, 50)
    expected = x * 0.5 * (1 + erf(x / math.sqrt(2)))
    np.testing.assert_allclose(F.gelu(Tensor(x)).data, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(Tensor(x).gelu().data, expected, rtol=1e-12, atol=1e-15)
    x32 = Tensor(x.astype(np.float32))
    assert F.gelu(x32).dtype == np.float32
    np.testing.assert_allclose(F.gelu(x32).data, expected, rtol=1e-5, atol=1e-6)


def test_gelu_tanh_form(rng):
    x = rng.uniform(-5, 5, 50)
    c = math.sqrt(2 / math.pi)
    expected = 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(F.gelu(Tensor(x), approximate="tanh").data, expected, rtol=1e-12,
                               atol=1e-15)
    # the two forms agree to about 1e-3
    np.testing.assert_allclose(F.gelu(Tensor(x)).data, expected, atol=2e-3)


def test_gelu_scalar_and_bad_approximate():
    assert F.gelu(Tensor(np.float64(1.0))).item() == pytest.approx(0.8413447460685429)
    with pytest.raises(tl.TinyLMError, match="approximate.*'sigmoid'"):
        F.gelu(Tensor([1.0]), approximate="sigmoid")


# --- softmax -------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax_values(rng, axis):
    x = rng.standard_normal((3, 4, 5))
    e = np.exp(x)
    expected = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(F.softmax(Tensor(x), axis=axis).data, expected, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(Tensor(x), axis=axis).data, np.log(expected),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(F.softmax(Tensor(x), axis=axis).data.sum(axis=axis), 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_stable_for_huge_logits(dtype):
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4 - 1.0]], dtype)
    s = F.softmax(Tensor(x)).data
    ls = F.log_softmax(Tensor(x)).data
    assert s.dtype == dtype and np.isfinite(s).all() and np.isfinite(ls).all()
    np.testing.assert_allclose(s[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(ls[0], [0.0, -1e4, -2e4], rtol=1e-6)
    z = 2 + math.exp(-1)
    np.testing.assert_allclose(s[1], [1 / z, 1 / z, math.exp(-1) / z], rtol=1e-6)
    np.testing.assert_allclose(ls[1], np.log([1 / z, 1 / z, math.exp(-1) / z]), rtol=1e-6)


def test_softmax_with_masked_minus_inf():
    x = Tensor(np.array([[1.0, 2.0, 3.0]]))
    mask = np.array([[False, True, True]])
    s = F.softmax(F.masked_fill(x, mask, -np.inf)).data
    np.testing.assert_array_equal(s, [[1.0, 0.0, 0.0]])


# --- joining, splitting, selecting ---------------------------------------------------
def test_concatenate_split_round_trip(rng):
    parts = [rng.standard_normal((2, n, 3)) for n in (1, 2, 4)]
    tensors = [Tensor(p, requires_grad=True) for p in parts]
    joined = F.concatenate(tensors, axis=1)
    np.testing.assert_array_equal(joined.data, np.concatenate(parts, axis=1))
    back = F.split(joined, [1, 2, 4], axis=1)
    for b, p in zip(back, parts):
        np.testing.assert_array_equal(b.data, p)
    # the round trip is the identity, so the gradient is the upstream one, piece by piece
    gs = [rng.standard_normal(p.shape) for p in parts]
    sum(((b * Tensor(g)).sum() for b, g in zip(back, gs)), Tensor(np.float64(0))).backward()
    for t, g in zip(tensors, gs):
        np.testing.assert_allclose(t.grad, g)
    assert tl.concatenate is F.concatenate and tl.split is F.split and tl.stack is F.stack


def test_split_equal_pieces_and_negative_axis(rng):
    x = rng.standard_normal((4, 6))
    pieces = F.split(Tensor(x), 3, axis=-1)
    assert [p.shape for p in pieces] == [(4, 2)] * 3
    np.testing.assert_array_equal(F.concatenate(pieces, axis=-1).data, x)
    rows = F.split(x, 2, axis=0)                       # plain arrays work too
    np.testing.assert_array_equal(rows[1].data, x[2:])


def test_stack_round_trip(rng):
    parts = [rng.standard_normal((2, 3)) for _ in range(4)]
    for axis in (0, 1, 2, -1):
        s = F.stack([Tensor(p) for p in parts], axis=axis)
        np.testing.assert_array_equal(s.data, np.stack(parts, axis=axis))
    tensors = [Tensor(p, requires_grad=True) for p in parts]
    s = F.stack(tensors, axis=1)
    g = rng.standard_normal(s.shape)
    s.backward(g)
    for i, t in enumerate(tensors):
        np.testing.assert_array_equal(t.grad, g[:, i])
    unstacked = [s[:, i] for i in range(4)]
    for u, p in zip(unstacked, parts):
        np.testing.assert_array_equal(u.data, p)


def test_where_values():
    cond = np.array([[True, False, True]])
    a = Tensor(np.array([[1.0], [2.0]]))
    out = F.where(cond, a, 0.5)
    np.testing.assert_array_equal(out.data, [[1.0, 0.5, 1.0], [2.0, 0.5, 2.0]])
    out = F.where(Tensor(cond), -1.0, a)        # a boolean Tensor works as the condition
    np.testing.assert_array_equal(out.data, [[-1.0, 1.0, -1.0], [-1.0, 2.0, -1.0]])
    assert F.where(cond, Tensor(np.ones(3, np.float32)), 0.0).dtype == np.float32


def test_masked_fill_values_and_gradient():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    mask = np.triu(np.ones((3, 3), bool), k=1)[:2]
    out = x.masked_fill(mask, -1e9)
    np.testing.assert_array_equal(out.data, np.where(mask, -1e9, x.data))
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, ~mask)          # filled entries get no gradient
    x32 = Tensor(np.zeros(3, np.float32))
    assert F.masked_fill(x32, np.array([True, False, True]), -np.inf).dtype == np.float32


# --- layers as functions -------------------------------------------------------------
def test_linear_values(rng):
    x, w, b = rng.standard_normal((2, 5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    np.testing.assert_allclose(F.linear(Tensor(x), Tensor(w), Tensor(b)).data, x @ w.T + b,
                               rtol=1e-12)
    np.testing.assert_allclose(F.linear(x, w).data, x @ w.T, rtol=1e-12)
    np.testing.assert_allclose(F.linear(Tensor(x[0, 0]), Tensor(w)).data, w @ x[0, 0],
                               rtol=1e-12)


def test_embedding_lookup(rng):
    w = rng.standard_normal((10, 4))
    ids = np.array([[1, 3, 3], [0, 9, 2]])
    out = F.embedding(ids, Tensor(w))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out.data, w[ids])
    np.testing.assert_array_equal(F.embedding(Tensor(ids), w).data, w[ids])
    np.testing.assert_array_equal(F.embedding([4, 4], w).data, w[[4, 4]])
    assert F.embedding(np.array(7), w).shape == (4,)


def test_embedding_is_one_hot_matmul_a10(rng):
    """A10: W[ids] = one_hot(ids) @ W, so dL/dW = one_hot^T @ dL/dout (a scatter-add)."""
    vocab, dim = 7, 3
    w_np = rng.standard_normal((vocab, dim))
    ids = np.array([2, 5, 2, 0, 2, 6])
    one_hot = np.eye(vocab)[ids]
    g = rng.standard_normal((len(ids), dim))

    w = Tensor(w_np, requires_grad=True)
    out = F.embedding(ids, w)
    np.testing.assert_allclose(out.data, one_hot @ w_np, rtol=1e-12)
    out.backward(g)
    np.testing.assert_allclose(w.grad, one_hot.T @ g, rtol=1e-12, atol=1e-15)

    w2 = Tensor(w_np, requires_grad=True)           # the same through the generic matmul
    (Tensor(one_hot) @ w2).backward(g)
    np.testing.assert_allclose(w.grad, w2.grad, rtol=1e-12, atol=1e-15)


def test_embedding_padding_idx_gets_zero_grad(rng):
    w = Tensor(rng.standard_normal((5, 2)), requires_grad=True)
    ids = np.array([[0, 1, 1], [3, 0, 4]])
    F.embedding(ids, w, padding_idx=0).sum().backward()
    np.testing.assert_array_equal(w.grad, [[0, 0], [2, 2], [0, 0], [1, 1], [1, 1]])
    w.grad = None
    F.embedding(ids, w, padding_idx=-1).sum().backward()   # -1 is the last row
    np.testing.assert_array_equal(w.grad, [[2, 2], [2, 2], [0, 0], [1, 1], [0, 0]])


@pytest.mark.parametrize("normalized_shape", [4, (4,), (3, 4), [3, 4]])
def test_layer_norm_values(rng, normalized_shape):
    x = rng.standard_normal((2, 3, 4)) * 3 + 1
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(-len(ns), 0))
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)                  # biased, as in PyTorch
    x_hat = (x - mu) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(F.layer_norm(Tensor(x), normalized_shape).data, x_hat,
                               rtol=1e-10, atol=1e-12)
    w, b = rng.standard_normal(ns), rng.standard_normal(ns)
    out = F.layer_norm(Tensor(x), normalized_shape, Tensor(w), Tensor(b), eps=1e-3)
    np.testing.assert_allclose(out.data, (x - mu) / np.sqrt(var + 1e-3) * w + b,
                               rtol=1e-10, atol=1e-12)


def test_layer_norm_statistics(rng):
    x = rng.standard_normal((8, 16)) * 5 - 2
    y = F.layer_norm(Tensor(x), 16).data
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=-1), 1, atol=1e-5)   # eps shrinks it a little


def test_dropout_same_seed_same_mask():
    x = Tensor(np.ones((20, 30)))
    a = F.dropout(x, 0.4, generator=np.random.default_rng(7)).data
    b = F.dropout(x, 0.4, generator=np.random.default_rng(7)).data
    c = F.dropout(x, 0.4, generator=7).data                  # an int seed works too
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, F.dropout(x, 0.4, generator=8).data)
    rng = np.random.default_rng(7)
    first, second = F.dropout(x, 0.4, generator=rng).data, F.dropout(x, 0.4, generator=rng).data
    assert not np.array_equal(first, second)        # a Generator advances between calls


def test_dropout_values_and_expectation():
    x = Tensor(np.full(200_000, 2.0, np.float32))
    y = F.dropout(x, 0.3, generator=0).data
    assert y.dtype == np.float32
    assert set(np.unique(y)) <= {0.0, np.float32(2.0 / 0.7)}
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 2.0) < 0.02                # inverted dropout keeps E[y] = x


def test_dropout_gradient_is_the_mask():
    x = Tensor(np.ones(50), requires_grad=True)
    y = F.dropout(x, 0.5, generator=3)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)     # y = x * mask with x = 1


def test_dropout_eval_p0_and_p1():
    x = Tensor(np.arange(6.0))
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False).data, x.data)
    np.testing.assert_array_equal(F.dropout(x, 0.0).data, x.data)   # needs no generator
    np.testing.assert_array_equal(F.dropout(x, 1.0, generator=0).data, np.zeros(6))
    assert np.isfinite(F.dropout(x, 1.0, generator=0).data).all()


# --- losses --------------------------------------------------------------------------
@pytest.mark.ch02
def test_mse_loss_values(rng):
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(F.mse_loss(Tensor(p), Tensor(t)).data, ((p - t) ** 2).mean())
    np.testing.assert_allclose(F.mse_loss(Tensor(p), t, reduction="sum").data,
                               ((p - t) ** 2).sum())
    np.testing.assert_allclose(F.mse_loss(p, t, reduction="none").data, (p - t) ** 2)
    assert F.mse_loss(Tensor(p.astype(np.float32)), t.astype(np.float32)).dtype == np.float32


@pytest.mark.ch02
def test_bad_reduction():
    with pytest.raises(tl.TinyLMError, match="reduction.*'avg'"):
        F.mse_loss(Tensor([1.0]), Tensor([1.0]), reduction="avg")
    with pytest.raises(tl.TinyLMError, match="reduction.*'avg'"):
        F.cross_entropy(Tensor([[1.0, 2.0]]), np.array([0]), reduction="avg")


@pytest.mark.ch02
def test_cross_entropy_values(rng):
    logits, target = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    per_row = -np_log_softmax(logits)[np.arange(6), target]
    np.testing.assert_allclose(F.cross_entropy(Tensor(logits), target).data, per_row.mean(),
                               rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(logits, target, reduction="sum").data,
                               per_row.sum(), rtol=1e-12)
    none = F.cross_entropy(logits, Tensor(target), reduction="none")
    assert none.shape == (6,)
    np.testing.assert_allclose(none.data, per_row, rtol=1e-12)


@pytest.mark.ch02
def test_cross_entropy_uniform_logits_is_log_c():
    loss = F.cross_entropy(Tensor(np.zeros((3, 10))), np.array([0, 4, 9]))
    assert loss.item() == pytest.approx(math.log(10))


@pytest.mark.ch02
def test_cross_entropy_class_last_nd(rng):
    logits, target = rng.standard_normal((2, 3, 4, 5)), rng.integers(0, 5, (2, 3, 4))
    flat = F.cross_entropy(logits.reshape(-1, 5), target.reshape(-1), reduction="none").data
    none = F.cross_entropy(logits, target, reduction="none")
    assert none.shape == (2, 3, 4)
    np.testing.assert_allclose(none.data, flat.reshape(2, 3, 4), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(logits, target).data, flat.mean(), rtol=1e-12)


@pytest.mark.ch02
def test_cross_entropy_ignore_index(rng):
    logits = rng.standard_normal((5, 4))
    target = np.array([1, -100, 3, -100, 0])
    keep = target != -100
    per_row = -np_log_softmax(logits)[np.arange(5), np.where(keep, target, 0)]
    np.testing.assert_allclose(F.cross_entropy(logits, target).data, per_row[keep].mean(),
                               rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(logits, target, reduction="sum").data,
                               per_row[keep].sum(), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(logits, target, reduction="none").data,
                               np.where(keep, per_row, 0.0), rtol=1e-12)
    custom = np.where(keep, target, 2)           # ignore_index may be a real class id
    np.testing.assert_allclose(F.cross_entropy(logits, custom, ignore_index=2).data,
                               per_row[keep].mean(), rtol=1e-12)
    # ignored rows get no gradient
    x = Tensor(logits, requires_grad=True)
    F.cross_entropy(x, target).backward()
    np.testing.assert_array_equal(x.grad[~keep], 0.0)
    assert np.abs(x.grad[keep]).sum() > 0


@pytest.mark.ch02
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_cross_entropy_label_smoothing(rng, eps):
    logits, target = rng.standard_normal((4, 6)), np.array([0, 5, 2, -100])
    logp = np_log_softmax(logits)
    dist = (1 - eps) * np.eye(6)[np.where(target >= 0, target, 0)] + eps / 6
    per_row = -(dist * logp).sum(axis=-1) * (target != -100)
    np.testing.assert_allclose(F.cross_entropy(logits, target, label_smoothing=eps,
                                               reduction="none").data, per_row, rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(logits, target, label_smoothing=eps).data,
                               per_row.sum() / 3, rtol=1e-12)


@pytest.mark.ch02
def test_cross_entropy_huge_logits_and_float32():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], np.float32)
    loss = F.cross_entropy(Tensor(logits), np.array([1, 1]), reduction="none")
    assert loss.dtype == np.float32 and np.isfinite(loss.data).all()
    np.testing.assert_allclose(loss.data, [1e4, 0.0], rtol=1e-6, atol=1e-6)
    x = Tensor(logits, requires_grad=True)
    F.cross_entropy(x, np.array([1, 1])).backward()
    assert x.grad.dtype == np.float32 and np.isfinite(x.grad).all()


@pytest.mark.ch02
def test_cross_entropy_sum_of_all_ignored_is_zero():
    out = F.cross_entropy(Tensor(np.ones((2, 3))), np.array([-100, -100]), reduction="sum")
    assert out.item() == 0.0


@pytest.mark.ch02
def test_binary_cross_entropy_values(rng):
    p, y = rng.uniform(0.01, 0.99, (3, 4)), rng.integers(0, 2, (3, 4)).astype(float)
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(F.binary_cross_entropy(Tensor(p), y).data, per.mean(),
                               rtol=1e-12)
    np.testing.assert_allclose(F.binary_cross_entropy(p, Tensor(y), reduction="sum").data,
                               per.sum(), rtol=1e-12)
    np.testing.assert_allclose(F.binary_cross_entropy(p, y, reduction="none").data, per,
                               rtol=1e-12)
    soft = rng.uniform(0, 1, (3, 4))                  # soft targets are allowed
    np.testing.assert_allclose(
        F.binary_cross_entropy(p, soft, reduction="none").data,
        -(soft * np.log(p) + (1 - soft) * np.log(1 - p)), rtol=1e-12)


@pytest.mark.ch02
def test_binary_cross_entropy_at_0_and_1_is_finite():
    p = Tensor(np.array([0.0, 1.0, 0.0, 1.0]), requires_grad=True)
    y = np.array([0.0, 1.0, 1.0, 0.0])
    loss = F.binary_cross_entropy(p, y, reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 0.0, 100.0, 100.0])  # log clamped at -100
    loss.sum().backward()
    assert np.isfinite(p.grad).all()


@pytest.mark.ch02
def test_bce_with_logits_values(rng):
    z, y = rng.standard_normal((3, 4)) * 3, rng.uniform(0, 1, (3, 4))
    s = 1 / (1 + np.exp(-z))
    per = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(Tensor(z), y).data,
                               per.mean(), rtol=1e-10)
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(z, y, reduction="none").data, per, rtol=1e-10)
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(z, y, reduction="sum").data, per.sum(), rtol=1e-10)
    np.testing.assert_allclose(F.binary_cross_entropy(F.sigmoid(Tensor(z)), y).data,
                               per.mean(), rtol=1e-10)


@pytest.mark.ch02
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_extreme(dtype):
    z = Tensor(np.array([-1e4, -1e4, 1e4, 1e4, -800.0, 800.0], dtype), requires_grad=True)
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0], dtype)
    loss = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    assert loss.dtype == dtype and np.isfinite(loss.data).all()
    np.testing.assert_allclose(loss.data, [0.0, 1e4, 1e4, 0.0, 800.0, 800.0], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(z.grad).all()
    np.testing.assert_allclose(z.grad, [0.0, -1.0, 1.0, 0.0, -1.0, 1.0])   # sigmoid(z) - y


def test_relu_of_minus_infinity_is_zero_not_nan():
    x = Tensor(np.array([-np.inf, -1.0, 2.0]), requires_grad=True)
    y = F.relu(x)
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 2.0])
    y.backward(np.array([np.inf, 1.0, 1.0]))
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


@pytest.mark.ch02
def test_float_targets_take_the_predictions_dtype():
    pred = Tensor(np.full(3, 0.5, np.float32), requires_grad=True)
    target = np.array([0.0, 1.0, 1.0])                   # NumPy's default float64
    for loss in (F.mse_loss, F.binary_cross_entropy, F.binary_cross_entropy_with_logits):
        assert loss(pred, target).dtype == np.float32, loss.__name__


def test_split_validates_axis_and_sizes():
    x = Tensor(np.ones((2, 4)))
    with pytest.raises(tl.ShapeError, match="axis 2 does not exist"):
        F.split(x, 2, axis=2)
    with pytest.raises(tl.ShapeError, match="must not be negative"):
        F.split(x, [5, -1], axis=1)


def test_masked_fill_takes_a_tensor_value():
    x = Tensor(np.zeros(3))
    y = F.masked_fill(x, np.array([True, False, True]), Tensor(np.float64(7.0)))
    np.testing.assert_array_equal(y.data, [7.0, 0.0, 7.0])
