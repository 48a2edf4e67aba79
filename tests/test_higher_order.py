"""Higher-order gradients: ``tinylm.grad(..., create_graph=True)`` and Hessian-vector products."""
import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm import nn
from tinylm.gradcheck import CASES

pytestmark = pytest.mark.ch03


SECOND_ORDER = [c for c in CASES if c.second_order]


@pytest.mark.gradcheck
@pytest.mark.parametrize("case", SECOND_ORDER, ids=[c.name for c in SECOND_ORDER])
def test_second_derivative_matches_finite_differences(case):
    result = case.run_second_order(seed=0)
    assert result.passed, f"{case.name}: max abs err {result.max_abs_err:.2e}"


def test_second_and_third_derivative_of_a_power():
    x = tl.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    d1 = tl.grad((x ** 4).sum(), x, create_graph=True)
    d2 = tl.grad(d1.sum(), x, create_graph=True)
    d3 = tl.grad(d2.sum(), x)
    np.testing.assert_allclose(d1.data, 4 * x.data ** 3)
    np.testing.assert_allclose(d2.data, 12 * x.data ** 2)
    np.testing.assert_allclose(d3.data, 24 * x.data)


def _mlp_loss(model, x, y):
    return F.mse_loss(model(x), y)


def test_hessian_vector_product_of_an_mlp_matches_finite_differences_of_gradients():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(3, 5, seed=1), nn.Tanh(), nn.Linear(5, 2, seed=2)).to(np.float64)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    params = list(model.parameters())
    v = [rng.standard_normal(p.shape) for p in params]

    grads = tl.grad(_mlp_loss(model, x, y), params, create_graph=True)
    hv = tl.grad(sum((g * vi).sum() for g, vi in zip(grads, v)), params)

    def flat_grad(shift):
        for p, vi in zip(params, v):
            p.data = p.data + shift * vi
        g = tl.grad(_mlp_loss(model, x, y), params)
        for p, vi in zip(params, v):
            p.data = p.data - shift * vi
        return [gi.data for gi in g]

    eps = 1e-5
    up, down = flat_grad(eps), flat_grad(-eps)
    for h, u, d in zip(hv, up, down):
        np.testing.assert_allclose(h.data, (u - d) / (2 * eps), rtol=1e-6, atol=1e-9)


@pytest.mark.torch
def test_hessian_vector_product_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    w0, x, t = rng.standard_normal((4, 3)), rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    v = rng.standard_normal((4, 3))

    w = tl.Tensor(w0.copy(), requires_grad=True)
    g = tl.grad(F.cross_entropy(F.gelu(x @ w), t), w, create_graph=True)
    hv = tl.grad((g * v).sum(), w)

    wt = torch.tensor(w0, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(torch.nn.functional.gelu(torch.tensor(x) @ wt),
                                             torch.tensor(t))
    (gt,) = torch.autograd.grad(loss, wt, create_graph=True)
    (hvt,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), wt)
    np.testing.assert_allclose(hv.data, hvt.numpy(), rtol=1e-10, atol=1e-12)


def test_grad_returns_tensors_and_leaves_dot_grad_alone():
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3                        # a non-leaf input is allowed too
    gx, gh = tl.grad((h * h).sum(), [x, h])
    np.testing.assert_allclose(gx.data, 18 * x.data)
    np.testing.assert_allclose(gh.data, 2 * h.data)
    assert x.grad is None and not gx.requires_grad


def test_grad_unused_input():
    x = tl.Tensor(np.ones(2), requires_grad=True)
    unused = tl.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(tl.GradError, match="was not used to compute the output"):
        tl.grad((x * 2).sum(), [x, unused])
    assert tl.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None


def test_op_without_a_differentiable_backward_is_named():
    class Cube(tl.Function):
        def forward(self, x):
            self.x = x
            return x ** 3

        def backward(self, g):
            return 3 * g * self.x ** 2

    x = tl.Tensor(np.ones(2), requires_grad=True)
    np.testing.assert_allclose(tl.grad(Cube.apply(x).sum(), x).data, [3.0, 3.0])
    with pytest.raises(tl.GradError, match="Cube has no differentiable backward"):
        tl.grad(Cube.apply(x).sum(), x, create_graph=True)


def test_enable_grad_inside_no_grad():
    x = tl.Tensor(np.ones(2), requires_grad=True)
    with tl.no_grad():
        assert not (x * 2).requires_grad
        with tl.enable_grad():
            assert (x * 2).requires_grad
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()


def test_second_order_check_catches_a_wrong_differentiable_rule(monkeypatch):
    import tinylm.higher_order as ho
    case = next(c for c in CASES if c.name == "tanh")
    assert case.run_second_order().passed
    monkeypatch.setitem(ho.RULES, F.Tanh, lambda fn, g: g * (1 - F.tanh(fn.inputs[0])))
    assert not case.run_second_order().passed


def test_bce_differentiable_gradient_is_clamped_like_the_plain_one():
    p = tl.Tensor(np.array([0.0, 1.0, 0.5]), requires_grad=True)
    y = np.array([0.0, 1.0, 1.0])
    plain = tl.grad(F.binary_cross_entropy(p, y), p)
    graph = tl.grad(F.binary_cross_entropy(p, y), p, create_graph=True)
    np.testing.assert_allclose(graph.data, plain.data)
    assert np.isfinite(graph.data).all()


def test_differentiable_gradient_keeps_float32():
    a = tl.Tensor(np.ones(2, np.float32), requires_grad=True)
    g = tl.grad((a * np.ones(2)).sum(), a, create_graph=True)   # float64 constant on the way
    assert g.dtype == np.float32


def test_plain_grad_results_are_independent_writable_arrays():
    a = tl.Tensor(np.ones(3), requires_grad=True)
    b = tl.Tensor(np.ones(3), requires_grad=True)
    ga, gb = tl.grad((a + b).sum(), [a, b])
    assert ga.data is not gb.data
    ga.data *= 2
    np.testing.assert_array_equal(gb.data, np.ones(3))


def test_grad_of_an_input_without_requires_grad_says_so():
    x = tl.Tensor(np.ones(2))
    w = tl.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(tl.GradError, match="does not require grad"):
        tl.grad((x * w).sum(), [x])
