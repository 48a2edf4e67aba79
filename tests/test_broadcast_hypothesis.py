"""Property tests: gradients through broadcasting, for random compatible shapes.

For L = sum(op(a, b) * R) the gradient w.r.t. a broadcast input is the elementwise derivative
times R, summed over every axis broadcasting created or stretched. The expected values are
computed here with plain NumPy, independently of ``tinylm.tensor.unbroadcast``.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tinylm as tl
from tinylm.tensor import Tensor

pytestmark = pytest.mark.ch03

SETTINGS = settings(max_examples=60, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)


def reduce_to(grad, shape):
    """Sum ``grad`` (of the broadcast result shape) back down to ``shape``."""
    shape = tuple(shape)
    while grad.ndim > len(shape):          # axes broadcasting put in front
        grad = grad.sum(axis=0)
    for axis, n in enumerate(shape):       # axes stretched from size 1
        if n == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    assert grad.shape == shape
    return grad


def away_from_zero(rng, shape):
    """Values with |v| in [0.5, 2]: safe denominators."""
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


# d op / da and d op / db as NumPy functions of the (broadcast) values
ONE = lambda a, b: np.ones_like(a * b)      # noqa: E731  (broadcast shape, all ones)
OPS = {
    "add": (lambda a, b: a + b, ONE, ONE),
    "sub": (lambda a, b: a - b, ONE, lambda a, b: -ONE(a, b)),
    "mul": (lambda a, b: a * b, lambda a, b: b + 0 * a, lambda a, b: a + 0 * b),
    "div": (lambda a, b: a / b, lambda a, b: 1 / b + 0 * a, lambda a, b: -a / b ** 2),
}


@pytest.mark.parametrize("name", sorted(OPS))
@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       seed=seeds)
def test_elementwise_broadcast_gradients(name, shapes, seed):
    op, da, db = OPS[name]
    (shape_a, shape_b), out_shape = shapes
    rng = np.random.default_rng(seed)
    a_np, b_np = rng.standard_normal(shape_a), away_from_zero(rng, shape_b)
    r = rng.standard_normal(out_shape)
    a, b = Tensor(a_np, requires_grad=True), Tensor(b_np, requires_grad=True)

    out = op(a, b)
    assert out.shape == out_shape
    np.testing.assert_allclose(out.data, op(a_np, b_np), rtol=1e-12)
    (out * Tensor(r)).sum().backward()

    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad, reduce_to(r * da(a_np, b_np), shape_a),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad, reduce_to(r * db(a_np, b_np), shape_b),
                               rtol=1e-10, atol=1e-12)


@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, max_side=4),
       seed=seeds)
def test_where_broadcast_gradients(shapes, seed):
    (shape_c, shape_a, shape_b), out_shape = shapes
    rng = np.random.default_rng(seed)
    cond = rng.random(shape_c) < 0.5
    a_np, b_np = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    r = rng.standard_normal(out_shape)
    a, b = Tensor(a_np, requires_grad=True), Tensor(b_np, requires_grad=True)

    out = tl.where(cond, a, b)
    assert out.shape == out_shape
    np.testing.assert_array_equal(out.data, np.where(cond, a_np, b_np))
    (out * Tensor(r)).sum().backward()

    full_cond = np.broadcast_to(cond, out_shape)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad, reduce_to(np.where(full_cond, r, 0.0), shape_a),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad, reduce_to(np.where(full_cond, 0.0, r), shape_b),
                               rtol=1e-12, atol=1e-12)


def linear_gradient(f, x):
    """Gradient of a function f that is LINEAR in x: df/dx_j = f(e_j), exactly."""
    grad = np.zeros(x.shape)
    flat = grad.reshape(-1)
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = 1.0
        flat[j] = f(e.reshape(x.shape))
    return grad


@st.composite
def matmul_shapes(draw):
    """Shapes for a @ b: broadcast batch axes, and 1-D operands on either side."""
    (batch_a, batch_b), _ = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0,
                                                               max_dims=3, max_side=3))
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    kind = draw(st.sampled_from(["mat@mat", "vec@mat", "mat@vec", "vec@vec"]))
    shape_a = (k,) if kind.startswith("vec") else batch_a + (m, k)
    shape_b = (k,) if kind.endswith("vec") else batch_b + (k, n)
    return shape_a, shape_b


@SETTINGS
@given(shapes=matmul_shapes(), seed=seeds)
def test_batched_matmul_gradients(shapes, seed):
    shape_a, shape_b = shapes
    rng = np.random.default_rng(seed)
    a_np, b_np = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    expected = np.matmul(a_np, b_np)
    r = rng.standard_normal(expected.shape)
    a, b = Tensor(a_np, requires_grad=True), Tensor(b_np, requires_grad=True)

    out = a @ b
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    (out * Tensor(r)).sum().backward()

    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad, linear_gradient(lambda e: np.sum((e @ b_np) * r), a_np),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad, linear_gradient(lambda e: np.sum((a_np @ e) * r), b_np),
                               rtol=1e-10, atol=1e-12)


def test_reduce_to_helper():
    g = np.ones((2, 3, 4))
    np.testing.assert_array_equal(reduce_to(g, (3, 1)), np.full((3, 1), 8.0))
    np.testing.assert_array_equal(reduce_to(g, ()), 24.0)
    np.testing.assert_array_equal(reduce_to(g, (1, 3, 4)), np.full((1, 3, 4), 2.0))
