"""tinylm.privacy (C17): per-example clipping and noise, the RDP accountant of the sampled
Gaussian mechanism (closed form, numerical integration, published values), FedAvg."""
import math

import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm.errors import ShapeError, TinyLMError
from tinylm.privacy import (DEFAULT_ORDERS, clip_per_example, dp_noisy_gradient,
                            dp_sgd_epsilon, federated_average, max_steps_for_epsilon,
                            noise_multiplier_for_epsilon, per_example_linear_grads,
                            poisson_sample, rdp_gaussian, rdp_sampled_gaussian, rdp_to_epsilon)


# --------------------------------------------------------------------------------------
# Per-example gradients, clipping, noise
# --------------------------------------------------------------------------------------

def test_batch_trick_equals_a_loop_of_autograd():
    """dW_i = delta_i x_i^T and db_i = delta_i, against one backward pass per example."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    logits = x @ W.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = p - np.eye(3)[y]                     # d CE_i / d logits_i
    dW, db = per_example_linear_grads(x, delta)
    for i in range(5):
        Wt, bt = tl.Tensor(W, requires_grad=True), tl.Tensor(b, requires_grad=True)
        F.cross_entropy(F.linear(tl.Tensor(x[i:i + 1]), Wt, bt), y[i:i + 1]).backward()
        np.testing.assert_allclose(dW[i], Wt.grad, atol=1e-14)
        np.testing.assert_allclose(db[i], bt.grad, atol=1e-14)
    with pytest.raises(ShapeError, match=r"x \(B, in\) and delta \(B, out\) with the same B"):
        per_example_linear_grads(x, delta[:4])


def test_clip_per_example_joint_norm_and_direction():
    rng = np.random.default_rng(1)
    gw, gb = rng.normal(size=(6, 3, 2)), rng.normal(size=(6, 3))
    gw[2], gb[2] = 0.0, 0.0                      # a zero gradient stays zero (no 0/0)
    gw[4] *= 1e-3
    gb[4] *= 1e-3                                # a small one is left alone
    (cw, cb), norms = clip_per_example([gw, gb], 1.0)
    full = np.sqrt((gw ** 2).sum((1, 2)) + (gb ** 2).sum(1))
    np.testing.assert_allclose(norms, full)
    new = np.sqrt((cw ** 2).sum((1, 2)) + (cb ** 2).sum(1))
    assert np.all(new <= 1.0 + 1e-12)
    for i in range(6):
        scale = min(1.0, 1.0 / full[i]) if full[i] else 1.0
        np.testing.assert_allclose(cw[i], gw[i] * scale)
        np.testing.assert_allclose(cb[i], gb[i] * scale)
    np.testing.assert_array_equal(cw[4], gw[4])
    one, n1 = clip_per_example(gb, 0.5)           # a single array in, a single array out
    assert isinstance(one, np.ndarray) and one.shape == gb.shape and n1.shape == (6,)


def test_sensitivity_of_the_clipped_sum_is_at_most_c():
    """Removing any one example changes sum_i clip(g_i) by at most C."""
    rng = np.random.default_rng(2)
    g = rng.normal(size=(20, 7)) * rng.exponential(3.0, size=(20, 1))
    clipped, _ = clip_per_example(g, 0.8)
    total = clipped.sum(0)
    for i in range(20):
        assert np.linalg.norm(total - np.delete(clipped, i, 0).sum(0)) <= 0.8 + 1e-12


def test_dp_noisy_gradient_mean_and_noise_level():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(8, 5))
    clipped, _ = clip_per_example(g, 1.0)
    draws = np.array([dp_noisy_gradient(g, 1.0, 2.0, 10.0, np.random.default_rng(s))
                      for s in range(4000)])
    np.testing.assert_allclose(draws.mean(0), clipped.sum(0) / 10.0, atol=4 * 0.2 / 60)
    np.testing.assert_allclose(draws.std(0), 2.0 * 1.0 / 10.0, rtol=0.05)
    # no noise: exactly the clipped sum over the expected batch size
    exact = dp_noisy_gradient([g, g[:, :2]], 1.0, 0.0, 4.0, rng)
    np.testing.assert_allclose(exact[0], clip_per_example([g, g[:, :2]], 1.0)[0][0].sum(0) / 4)
    # an empty batch gives pure noise of the right shape
    empty = dp_noisy_gradient(np.zeros((0, 3, 2)), 1.0, 1.0, 5.0, np.random.default_rng(0))
    assert empty.shape == (3, 2) and np.all(empty != 0)


def test_poisson_sample_rate_and_seed():
    idx = poisson_sample(100000, 0.03, np.random.default_rng(0))
    assert abs(len(idx) - 3000) < 4 * math.sqrt(3000 * 0.97)
    assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, poisson_sample(100000, 0.03, np.random.default_rng(0)))
    assert len(poisson_sample(10, 0.0, np.random.default_rng(0))) == 0
    assert len(poisson_sample(10, 1.0, np.random.default_rng(0))) == 10


# --------------------------------------------------------------------------------------
# The accountant
# --------------------------------------------------------------------------------------

def test_rdp_without_sampling_is_the_gaussian_closed_form():
    orders = [2, 3, 5, 10, 64]
    for sigma in (0.5, 1.0, 3.0):
        expected = np.array(orders) / (2 * sigma ** 2)
        np.testing.assert_allclose(rdp_sampled_gaussian(1.0, sigma, orders), expected)
        np.testing.assert_allclose(rdp_gaussian(sigma, orders), expected)
        # the binomial sum itself, just below q = 1, tends to the same value
        np.testing.assert_allclose(rdp_sampled_gaussian(1 - 1e-9, sigma, orders), expected,
                                   rtol=1e-6)


def _renyi_by_quadrature(q, sigma, alpha):
    """D_alpha(mu_q || mu_0), mu_q = (1-q) N(0, s^2) + q N(1, s^2), by numerical integration:
    log E_{z ~ mu_0}[(mu_q(z) / mu_0(z))^alpha] / (alpha - 1), with
    mu_q / mu_0 = (1 - q) + q exp((2 z - 1) / (2 sigma^2))."""
    z = np.linspace(-30 * sigma, 30 * sigma + alpha, 400001)
    log_ratio = np.log1p(-q) + np.log1p(q / (1 - q) * np.exp((2 * z - 1) / (2 * sigma ** 2)))
    log_q = -z ** 2 / (2 * sigma ** 2) - 0.5 * math.log(2 * math.pi * sigma ** 2)
    log_f = alpha * log_ratio + log_q
    m = log_f.max()
    f = np.exp(log_f - m)
    integral = (z[1] - z[0]) * (f.sum() - (f[0] + f[-1]) / 2)     # the trapezoid rule
    return (m + math.log(integral)) / (alpha - 1)


@pytest.mark.parametrize("q,sigma", [(0.01, 1.0), (0.1, 0.8), (0.3, 2.0), (0.05, 4.0)])
def test_rdp_of_the_sampled_gaussian_equals_numerical_integration(q, sigma):
    orders = [2, 4, 8, 16]
    closed = rdp_sampled_gaussian(q, sigma, orders)
    numeric = [_renyi_by_quadrature(q, sigma, a) for a in orders]
    np.testing.assert_allclose(closed, numeric, rtol=1e-6, atol=1e-12)


def test_published_values():
    """Abadi et al. 2016 (section 3.1): q = 0.01, sigma = 4, delta = 1e-5, T = 10000 gives
    epsilon ~ 1.26 with the moments accountant; TF Privacy's README (MNIST tutorial, N =
    60000, batch 256, delta = 1e-5): sigma 1.1 for 60 epochs -> 3.01, sigma 1.3 for 15 epochs
    -> 1.19, sigma 0.7 for 45 epochs -> 7.10 (its orders include fractional ones, so ours,
    integers only, can come out slightly larger, never much smaller)."""
    eps, _ = dp_sgd_epsilon(0.01, 4.0, 10000, 1e-5)
    assert eps == pytest.approx(1.26, abs=0.005)
    q = 256 / 60000
    for sigma, epochs, published in [(1.1, 60, 3.01), (1.3, 15, 1.19), (0.7, 45, 7.10)]:
        eps, _ = dp_sgd_epsilon(q, sigma, math.ceil(epochs * 60000 / 256), 1e-5)
        assert published - 0.01 <= eps <= published * 1.01, (sigma, eps, published)


def test_epsilon_is_monotone_and_sampling_amplifies():
    base = dp_sgd_epsilon(0.02, 1.0, 500, 1e-5)[0]
    assert dp_sgd_epsilon(0.02, 1.0, 1000, 1e-5)[0] > base           # more steps cost more
    assert dp_sgd_epsilon(0.04, 1.0, 500, 1e-5)[0] > base            # larger samples cost more
    assert dp_sgd_epsilon(0.02, 2.0, 500, 1e-5)[0] < base            # more noise costs less
    assert dp_sgd_epsilon(0.02, 1.0, 500, 1e-6)[0] > base            # smaller delta costs more
    assert dp_sgd_epsilon(0.02, 1.0, 0, 1e-5)[0] == pytest.approx(
        min(math.log(1e5) / (a - 1) for a in DEFAULT_ORDERS))
    # sampling amplifies privacy: at small orders a step on 2 % of the data costs less than
    # 2 % of a step on all of it (the RDP falls like q^2, not q)
    orders = [2, 4, 8]
    assert np.all(rdp_sampled_gaussian(0.02, 1.0, orders) < 0.02 * rdp_gaussian(1.0, orders))
    rdp = rdp_sampled_gaussian(0.02, 1.0)
    assert np.all(np.diff(rdp) >= 0)                                   # RDP grows with alpha


def test_improved_conversion_is_never_worse():
    for q, sigma, steps in [(0.01, 1.0, 1000), (0.1, 2.0, 50), (1.0, 5.0, 3)]:
        rdp = steps * rdp_sampled_gaussian(q, sigma)
        classic, _ = rdp_to_epsilon(DEFAULT_ORDERS, rdp, 1e-5, "classic")
        improved, _ = rdp_to_epsilon(DEFAULT_ORDERS, rdp, 1e-5, "improved")
        assert improved <= classic


def test_budget_helpers_invert_the_accountant():
    q, delta = 0.05, 1e-4
    T = max_steps_for_epsilon(q, 1.2, 2.0, delta)
    assert T > 0
    assert dp_sgd_epsilon(q, 1.2, T, delta)[0] <= 2.0 < dp_sgd_epsilon(q, 1.2, T + 1, delta)[0]
    assert max_steps_for_epsilon(1.0, 0.3, 0.5, delta) == 0           # one step is too much
    sigma = noise_multiplier_for_epsilon(2.0, q, 300, delta, tol=1e-5)
    assert dp_sgd_epsilon(q, sigma, 300, delta)[0] <= 2.0
    assert dp_sgd_epsilon(q, sigma - 1e-3, 300, delta)[0] > 2.0


@pytest.mark.parametrize("call,match", [
    (lambda: rdp_sampled_gaussian(1.5, 1.0), r"sample_rate must be <= 1\.0, got 1\.5"),
    (lambda: rdp_sampled_gaussian(0.1, -1.0), r"noise_multiplier must be >= 0\.0, got -1\.0"),
    (lambda: rdp_sampled_gaussian(0.1, 1.0, [1.5, 2]), r"integers >= 2"),
    (lambda: rdp_sampled_gaussian(0.1, 1.0, [1, 2]), r"integers >= 2"),
    (lambda: rdp_to_epsilon([2, 3], [0.1], 1e-5), r"one RDP value per order"),
    (lambda: rdp_to_epsilon([2, 3], [0.1, 0.2], 0.0), r"delta must be > 0\.0, got 0\.0"),
    (lambda: rdp_to_epsilon([2, 3], [0.1, 0.2], 1e-5, "tight"), r"'classic' or 'improved'"),
    (lambda: dp_sgd_epsilon(0.1, 1.0, 2.5, 1e-5), r"steps must be an integer >= 0, got 2\.5"),
    (lambda: clip_per_example(np.ones((2, 3)), 0.0), r"max_norm must be > 0\.0, got 0\.0"),
    (lambda: clip_per_example([np.ones((2, 3)), np.ones((3, 3))], 1.0),
     r"same number of examples B first, got leading sizes \[2, 3\]"),
    (lambda: clip_per_example([[1.0, 2.0]], 1.0), r"expected an array \(B, \.\.\.\)"),
    (lambda: dp_noisy_gradient(np.ones((2, 3)), 1.0, 1.0, 0, np.random.default_rng(0)),
     r"expected_batch_size must be > 0\.0"),
    (lambda: dp_noisy_gradient(np.ones((2, 3)), 1.0, 1.0, 2, 0),
     r"rng must be a numpy\.random\.Generator, got int"),
    (lambda: poisson_sample(-1, 0.1, np.random.default_rng(0)), r"n must be an integer >= 0"),
    (lambda: max_steps_for_epsilon(0.0, 1.0, 1.0, 1e-5), r"sample_rate 0 reads no data"),
    (lambda: federated_average([[np.ones(2)], [np.ones(3)]], [1, 1]),
     r"same parameter shapes"),
    (lambda: federated_average([[np.ones(2)]], [1, 2]), r"one example count per client"),
    (lambda: federated_average([[np.ones(2)], [np.ones(2)]], [0, 0]), r"positive total"),
])
def test_bad_input(call, match):
    with pytest.raises(TinyLMError, match=match):
        call()


# --------------------------------------------------------------------------------------
# Federated averaging
# --------------------------------------------------------------------------------------

def test_federated_average_is_the_weighted_mean():
    rng = np.random.default_rng(4)
    clients = [[rng.normal(size=(2, 3)), rng.normal(size=3)] for _ in range(3)]
    counts = [10, 30, 60]
    avg = federated_average(clients, counts)
    for i in range(2):
        expected = (10 * clients[0][i] + 30 * clients[1][i] + 60 * clients[2][i]) / 100
        np.testing.assert_allclose(avg[i], expected)
    same = federated_average([clients[0]] * 4, [1, 2, 3, 4])
    for a, b in zip(same, clients[0]):
        np.testing.assert_allclose(a, b)
