"""The autograd engine: Tensor basics, operators, indexing, reductions, backward() semantics.

Gradients here are checked against hand-derived values; the finite-difference checks of every
op are in test_gradcheck.py.
"""
import operator

import numpy as np
import pytest

import tinylm as tl
from tinylm.tensor import Tensor, no_grad

pytestmark = pytest.mark.ch03


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# --- basics --------------------------------------------------------------------------
def test_basic_attributes():
    x = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert isinstance(x.data, np.ndarray)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.dtype == np.float32            # Python floats become float32, as in PyTorch
    assert x.grad is None and not x.requires_grad and x.is_leaf
    np.testing.assert_array_equal(x.numpy(), [[1, 2, 3], [4, 5, 6]])
    assert isinstance(x.numpy(), np.ndarray)


def test_dtypes_of_constructors():
    assert Tensor(np.zeros(3)).dtype == np.float64          # arrays keep their dtype
    assert Tensor(np.zeros(3, np.float32)).dtype == np.float32
    assert Tensor([1, 2, 3]).dtype.kind == "i"                # Python ints stay integer
    assert Tensor(2.5).dtype == np.float32
    assert Tensor(np.float64(2.5)).dtype == np.float64        # NumPy scalars keep theirs
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    t = Tensor(np.ones(2))
    assert Tensor(t).dtype == np.float64 and Tensor(t).data is t.data


def test_item():
    x = Tensor(np.array([[3.5]]))
    assert x.item() == 3.5 and isinstance(x.item(), float)
    assert Tensor(np.array(2)).item() == 2


def test_detach_shares_data_but_not_graph():
    x = leaf([1.0, 2.0])
    y = x * 2
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.creator is None
    assert d.data is y.data
    z = (d * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])   # d is a constant: no path through y


def test_repr():
    r = repr(Tensor(np.array([1.0, 2.5])))
    assert r.startswith("Tensor(") and "2.5" in r and "requires_grad" not in r
    r = repr(leaf([1.0, 2.0]))
    assert "requires_grad=True" in r
    assert repr(tl.nn.Parameter(np.zeros(2))).startswith("Parameter(")


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(tl.DTypeError, match="floating-point.*int"):
        Tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(tl.DTypeError):
        Tensor(np.array([True, False]), requires_grad=True)


# --- operators -----------------------------------------------------------------------
def test_arithmetic_values_and_gradients():
    a, b = leaf([1.0, 2.0, 4.0]), leaf([3.0, -1.0, 0.5])
    for op, expected, ga, gb in [
        (lambda a, b: a + b, [4.0, 1.0, 4.5], [1, 1, 1], [1, 1, 1]),
        (lambda a, b: a - b, [-2.0, 3.0, 3.5], [1, 1, 1], [-1, -1, -1]),
        (lambda a, b: a * b, [3.0, -2.0, 2.0], [3.0, -1.0, 0.5], [1.0, 2.0, 4.0]),
        (lambda a, b: a / b, [1 / 3, -2.0, 8.0], [1 / 3, -1.0, 2.0], [-1 / 9, -2.0, -16.0]),
        (lambda a, b: a ** b, [1.0, 0.5, 2.0], [3.0, -0.25, 0.25],
         [0.0, 0.5 * np.log(2), 2.0 * np.log(4)]),
    ]:
        a.grad = b.grad = None
        out = op(a, b)
        np.testing.assert_allclose(out.data, expected)
        out.sum().backward()
        np.testing.assert_allclose(a.grad, ga)
        np.testing.assert_allclose(b.grad, gb)


def test_neg_and_pow_method():
    a = leaf([1.0, -2.0])
    (-a).sum().backward()
    np.testing.assert_array_equal(a.grad, [-1.0, -1.0])
    a.grad = None
    a.pow(3).sum().backward()
    np.testing.assert_allclose(a.grad, [3.0, 12.0])


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**", "@"])
def test_ndarray_on_the_left_gives_a_tensor(op):
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    arr = np.array([[2.0, 1.0], [0.5, 3.0]])
    apply = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
             "**": operator.pow, "@": operator.matmul}[op]
    out = apply(arr, x)
    assert isinstance(out, Tensor), type(out)
    np.testing.assert_allclose(out.data, apply(arr, x.data))
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_reflected_ops_with_ndarray_gradients():
    x = leaf([1.0, 2.0, 4.0])
    arr = np.array([2.0, 3.0, 4.0])
    (arr - x).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1, -1, -1])
    x.grad = None
    (arr / x).sum().backward()
    np.testing.assert_allclose(x.grad, -arr / x.data ** 2)
    x.grad = None
    (arr ** x).sum().backward()
    np.testing.assert_allclose(x.grad, arr ** x.data * np.log(arr))


@pytest.mark.parametrize("expr", ["x + 1", "1 + x", "x - 2.5", "2.5 - x", "x * 2", "2 * x",
                                  "x / 3", "3 / x", "x ** 2", "2 ** x", "x ** 0.5", "-x",
                                  "x + np.float64(1.5)", "np.float64(1.5) * x"])
def test_python_scalars_keep_float32(expr):
    x = Tensor(np.array([1.0, 2.0, 4.0], np.float32), requires_grad=True)
    out = eval(expr)
    assert isinstance(out, Tensor) and out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_scalar_operator_values():
    x = leaf([1.0, 2.0, 4.0])
    np.testing.assert_allclose((1 - x).data, [0, -1, -3])
    np.testing.assert_allclose((2 / x).data, [2, 1, 0.5])
    (2 ** x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 ** x.data * np.log(2))


def test_matmul_2d_value_and_gradient(rng):
    a, b = leaf(rng.standard_normal((3, 4))), leaf(rng.standard_normal((4, 2)))
    out = a @ b
    np.testing.assert_allclose(out.data, a.data @ b.data)
    g = rng.standard_normal((3, 2))
    out.backward(g)
    np.testing.assert_allclose(a.grad, g @ b.data.T)
    np.testing.assert_allclose(b.grad, a.data.T @ g)


def test_comparisons_give_boolean_arrays():
    x = Tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x > 1.5, [False, True, True])
    np.testing.assert_array_equal(x <= Tensor([1.0, 1.0, 5.0]), [True, False, True])


# --- indexing ------------------------------------------------------------------------
def test_getitem_slices():
    x = leaf(np.arange(12.0).reshape(3, 4))
    y = x[1:, ::2]
    np.testing.assert_array_equal(y.data, [[4, 6], [8, 10]])
    y.backward(np.ones((2, 2)))
    np.testing.assert_array_equal(x.grad, [[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]])


def test_getitem_int_none_ellipsis_and_negative_step():
    x = leaf(np.arange(6.0).reshape(2, 3))
    x[1].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0, 0], [1, 1, 1]])
    x.grad = None
    y = x[:, None, ::-1]
    assert y.shape == (2, 1, 3)
    y.backward(np.arange(6.0).reshape(2, 1, 3))
    np.testing.assert_array_equal(x.grad, [[2, 1, 0], [5, 4, 3]])
    x.grad = None
    x[..., -1].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0, 1], [0, 0, 1]])


def test_getitem_repeated_integer_indices_accumulate():
    x = leaf([10.0, 20.0, 30.0])
    idx = np.array([0, 2, 0, 0])
    y = x[idx]
    np.testing.assert_array_equal(y.data, [10, 30, 10, 10])
    y.backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [8.0, 0.0, 2.0])   # 1 + 3 + 4 at index 0


def test_getitem_repeated_rows_2d_and_tensor_index():
    x = leaf(np.zeros((3, 2)))
    y = x[Tensor(np.array([[1, 1], [2, 1]]))]            # a Tensor of indices works too
    assert y.shape == (2, 2, 2)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0], [3, 3], [1, 1]])


def test_getitem_paired_integer_arrays_accumulate():
    x = leaf(np.zeros((2, 3)))
    x[np.array([0, 0, 1]), np.array([1, 1, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 2, 0], [0, 0, 1]])


def test_getitem_boolean_mask():
    x = leaf([[1.0, -2.0], [-3.0, 4.0]])
    mask = x.data > 0
    y = x[mask]
    np.testing.assert_array_equal(y.data, [1.0, 4.0])
    y.backward(np.array([5.0, 7.0]))
    np.testing.assert_array_equal(x.grad, [[5, 0], [0, 7]])
    x.grad = None
    x[Tensor(mask)].sum().backward()
    np.testing.assert_array_equal(x.grad, mask.astype(float))


# --- shapes --------------------------------------------------------------------------
def test_reshape_forms_and_gradient():
    x = leaf(np.arange(6.0))
    for y in (x.reshape(2, 3), x.reshape((2, 3)), x.reshape([2, -1])):
        assert y.shape == (2, 3)
    y = x.reshape(3, 2)
    y.backward(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(x.grad, np.arange(6.0))


def test_transpose_and_permute(rng):
    x = leaf(rng.standard_normal((2, 3, 4)))
    y = x.permute(2, 0, 1)
    assert y.shape == (4, 2, 3)
    np.testing.assert_array_equal(y.data, x.data.transpose(2, 0, 1))
    g = rng.standard_normal((4, 2, 3))
    y.backward(g)
    np.testing.assert_array_equal(x.grad, g.transpose(1, 2, 0))

    x.grad = None
    p = x.permute((1, -1, 0))
    assert p.shape == (3, 4, 2)
    g = rng.standard_normal((3, 4, 2))
    p.backward(g)
    np.testing.assert_array_equal(x.grad, np.transpose(g, np.argsort([1, 2, 0])))

    x.grad = None
    x.T.backward(np.ones((4, 3, 2)))       # .T reverses every axis, as in NumPy
    assert x.grad.shape == (2, 3, 4)
    m = leaf(np.arange(6.0).reshape(2, 3))
    assert m.T.shape == (3, 2) and m.transpose(0, 1).shape == (3, 2)


def test_transpose_swaps_two_axes_like_pytorch(rng):
    k = leaf(rng.standard_normal((2, 3, 4)))
    kt = k.transpose(-2, -1)                 # the attention idiom K^T
    assert kt.shape == (2, 4, 3)
    np.testing.assert_array_equal(kt.data, k.data.swapaxes(-2, -1))
    g = rng.standard_normal((2, 4, 3))
    kt.backward(g)
    np.testing.assert_array_equal(k.grad, g.swapaxes(-2, -1))
    assert k.transpose(0, 0).shape == (2, 3, 4)
    with pytest.raises(tl.ShapeError, match=r"axes 0 and 3 do not both exist"):
        k.transpose(0, 3)


# --- reductions ----------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (-1, 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_and_mean(rng, axis, keepdims):
    data = rng.standard_normal((2, 3, 4))
    x = leaf(data)
    s = x.sum(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(s.data, data.sum(axis=axis, keepdims=keepdims))
    g = rng.standard_normal(s.shape)
    s.backward(g)
    expected = np.broadcast_to(g if keepdims or axis is None else
                               np.expand_dims(g, axis), data.shape)
    np.testing.assert_allclose(x.grad, expected)

    x.grad = None
    m = x.mean(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(m.data, data.mean(axis=axis, keepdims=keepdims))
    m.backward(g)
    count = data.size // np.asarray(data.sum(axis=axis)).size
    np.testing.assert_allclose(x.grad, expected / count)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_value_and_gradient(rng, axis, keepdims):
    data = rng.permutation(24).reshape(2, 3, 4).astype(float)   # distinct: no ties
    x = leaf(data)
    m = x.max(axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(m.data, data.max(axis=axis, keepdims=keepdims))
    m.sum().backward()
    expected = (data == data.max(axis=axis, keepdims=True)).astype(float)
    np.testing.assert_array_equal(x.grad, expected)


def test_max_ties_split_the_gradient():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x.max(axis=1).backward(np.array([1.0, 6.0]))
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [2, 2, 2]])
    x.grad = None
    x.max().backward()                        # global max 3 appears twice
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [0, 0, 0]])


def test_max_of_empty_raises():
    with pytest.raises(tl.ShapeError, match="empty"):
        Tensor(np.zeros((0, 3))).max()


# --- backward semantics --------------------------------------------------------------
def test_gradients_accumulate_and_zero_grad_resets():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    (x * x).sum().backward()                  # PyTorch semantics: adds, does not overwrite
    np.testing.assert_allclose(x.grad, [4.0, 8.0])
    x.zero_grad()
    assert x.grad is None
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_leaf_gradients_are_independent_writable_arrays():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    g = np.array([1.0, 1.0])
    (a + b).backward(g)
    a.grad *= 10                              # optimisers (clipping) scale .grad in place
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(g, [1.0, 1.0])
    c = leaf([1.0, 2.0])
    c.sum().backward()
    c.grad += 1                               # must not fail on a read-only broadcast view
    np.testing.assert_array_equal(c.grad, [2.0, 2.0])


def test_diamond_graph_sums_both_paths():
    x = leaf([2.0, -1.0])
    a = x * 3
    b = x * x
    (a + b).sum().backward()                  # d/dx (3x + x^2) = 3 + 2x
    np.testing.assert_allclose(x.grad, [7.0, 1.0])


def test_same_tensor_twice_in_one_op():
    x = leaf([3.0])
    (x * x * x).backward()
    np.testing.assert_allclose(x.grad, [27.0])
    y = leaf([1.0, 2.0])
    (y + y).sum().backward()
    np.testing.assert_allclose(y.grad, [2.0, 2.0])


def test_deep_chain_does_not_recurse():
    x = leaf([1.0])
    y = x
    for _ in range(10_000):
        y = y + 1.0
    y = y * 2
    y.backward()
    np.testing.assert_allclose(y.data, [20002.0])
    np.testing.assert_allclose(x.grad, [2.0])


def test_deep_chain_with_shared_weight():
    w = leaf([0.5])
    h = leaf([1.0])
    for _ in range(10_000):
        h = h * w + 0.5        # h_t = w h_{t-1} + 0.5 converges to 1; w read 10,000 times
    h.backward()
    assert np.isfinite(w.grad).all() and w.grad.shape == (1,)


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    assert tl.is_grad_enabled()
    with no_grad():
        assert not tl.is_grad_enabled()
        y = x * 2 + 1
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.creator is None and y.is_leaf
    np.testing.assert_allclose(y.data, [3.0, 5.0])
    with pytest.raises(tl.GradError):
        y.sum().backward()


def test_no_grad_restores_flag_after_exception_and_nests():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert tl.is_grad_enabled()
    with no_grad():
        with no_grad():
            pass
        assert not tl.is_grad_enabled()       # the inner block restores "off", not "on"
    assert tl.is_grad_enabled()
    assert tl.no_grad is no_grad


def test_backward_non_scalar_without_grad_is_helpful():
    x = leaf(np.ones((2, 3)))
    with pytest.raises(tl.GradError, match=r"shape \(2, 3\).*grad=.*sum"):
        (x * 2).backward()
    assert issubclass(tl.GradError, tl.TinyLMError)
    x2 = leaf(np.ones((1, 1)))
    (x2 * 2).backward()                       # a single element needs no grad=
    np.testing.assert_array_equal(x2.grad, [[2.0]])


def test_backward_on_tensor_without_grad():
    with pytest.raises(tl.GradError, match="does not require grad"):
        Tensor([1.0]).backward()


def test_backward_with_wrong_grad_shape():
    x = leaf(np.ones((2, 3)))
    with pytest.raises(tl.ShapeError, match=r"grad has shape \(3, 2\).*\(2, 3\)"):
        (x * 2).backward(grad=np.ones((3, 2)))


def test_backward_with_explicit_grad_tensor():
    x = leaf([1.0, 2.0])
    (x * x).backward(grad=Tensor(np.array([1.0, 0.5])))
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_retain_grad_keeps_non_leaf_grad():
    x = leaf([1.0, 2.0])
    h = (x * 3).retain_grad()
    other = x * 5
    assert not h.is_leaf
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    np.testing.assert_allclose(x.grad, 6 * h.data)
    assert other.grad is None
    h2 = x * 4                                 # not retained: intermediate grads are freed
    h2.sum().backward()
    assert h2.grad is None


def test_inputs_without_grad_get_none():
    x = leaf([1.0, 2.0])
    c = Tensor(np.array([3.0, 4.0]))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad, [3.0, 4.0])


def test_gradient_takes_the_inputs_dtype():
    w = Tensor(np.ones(3, np.float32), requires_grad=True)
    out = w * np.arange(3.0)                  # float64 data through a float32 weight
    assert out.dtype == np.float64
    out.sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad, [0, 1, 2])


# --- Python and NumPy protocols --------------------------------------------------------
def test_python_protocols_follow_the_values():
    assert not bool(Tensor([0.0])) and bool(Tensor([2.0]))
    with pytest.raises(ValueError):
        bool(Tensor([1.0, 2.0]))           # ambiguous, as in NumPy and PyTorch
    assert float(Tensor(np.float64(2.5))) == 2.5 and int(Tensor([3])) == 3
    np.testing.assert_array_equal(Tensor([1.0, 2.0]) == 1.0, [True, False])
    np.testing.assert_array_equal(Tensor([1.0, 2.0]) != Tensor([1.0, 3.0]), [False, True])
    t = Tensor([1.0])
    assert {t: 1}[t] == 1                   # still hashable (by identity)


def test_numpy_defers_to_tensor():
    x = leaf([1.0, 2.0])
    for y in (np.float64(2.0) * x, np.array([1.0, 1.0]) + x, np.eye(2) @ x):
        assert isinstance(y, Tensor) and y.requires_grad
    with pytest.raises(TypeError):
        np.exp(x)                           # no silent object arrays: use F.exp / x.exp()


def test_constructor_rejects_non_numbers():
    for bad in (None, "a", [object()]):
        with pytest.raises(tl.DTypeError, match="data must be numbers"):
            Tensor(bad)


def test_astype_is_differentiable_and_casts_the_gradient_back():
    x = leaf([1.0, 2.0], dtype=np.float32)
    y = x.astype(np.float64)
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    assert x.astype(np.float32) is x


def test_reductions_accept_a_list_of_axes(rng):
    x = leaf(rng.standard_normal((2, 3, 4)))
    np.testing.assert_allclose(x.sum(axis=[0, 2]).data, x.data.sum(axis=(0, 2)))
    np.testing.assert_allclose(x.max(axis=[0, 2]).data, x.data.max(axis=(0, 2)))


def test_mean_of_nothing_raises_instead_of_nan():
    with pytest.raises(tl.ShapeError, match="no elements to average over"):
        Tensor(np.ones((0, 3))).mean()
    assert Tensor(np.ones((3, 0))).mean(axis=0).shape == (0,)   # an empty result is fine


def test_numpy_errors_are_named_by_kind():
    with pytest.raises(tl.TinyLMError, match="pow: inputs of shape") as info:
        Tensor([1, 2]) ** Tensor(np.array(-1))        # integers to a negative power
    assert not isinstance(info.value, tl.ShapeError)
    with pytest.raises(tl.IndexRangeError, match="getitem: inputs of shape \\(3,\\)"):
        Tensor([1.0, 2.0, 3.0])[5]


def test_matmul_skips_the_gradient_nobody_needs(rng):
    x = Tensor(rng.standard_normal((2, 3, 4)))            # data: no gradient wanted
    w = leaf(rng.standard_normal((4, 5)))
    out = x @ w
    out.backward(np.ones((2, 3, 5)))
    np.testing.assert_allclose(w.grad, x.data.reshape(-1, 4).T @ np.ones((6, 5)))
    assert x.grad is None
