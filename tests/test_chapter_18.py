"""Chapter 18 (privacy): it runs end to end with ``--quick``, and its tools are tested
directly: softmax regression's per-example and batch gradients against tinylm autograd (and
torch.func where installed), the leak of one gradient, the Gaussian mechanism's exact
delta(epsilon), DP-SGD's loop, the federated split and FedAvg."""
import math

import numpy as np
import pytest

from tinylm import privacy

from chapter_tools import assert_chapter_passes, load_definitions

FIGURES = ["18_gaussian_mechanism.png", "18_epsilon.png", "18_accuracy_vs_epsilon.png",
           "18_federated.png"]


@pytest.fixture(scope="module")
def ch18():
    return load_definitions("18_privacy.py")


def _toy(n, V=12, C=3, seed=0):
    """Class c: word c appears (twice as often as the noise words 3..V-1); rows L2-normalised."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    X = np.zeros((n, V))
    for i, c in enumerate(y):
        X[i, c] += 2.0
        X[i, rng.integers(C, V, 3)] += 1.0
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


@pytest.mark.ch18
def test_chapter_18_runs(tmp_path):
    out = assert_chapter_passes("18_privacy.py", tmp_path, FIGURES)
    assert "reproduces their epsilon ~ 1.26" in out
    assert "FedSGD: averaging one full-batch step per client == one full-batch step on all" in out
    assert "TEST accuracy" in out


@pytest.mark.ch18
def test_per_example_grads_equal_the_loop_and_the_batch_gradient(ch18):
    X, y = _toy(9)
    rng = np.random.default_rng(1)
    params = [rng.normal(size=(3, 12)), rng.normal(size=3)]
    trick = ch18.per_example_grads(params, X, y)
    loop = ch18.per_example_grads_by_loop(params, X, y)
    for a, b in zip(trick, loop):
        np.testing.assert_allclose(a, b, atol=1e-14)
    for a, b in zip(trick, ch18.batch_grad(params, X, y)):
        np.testing.assert_allclose(a.mean(axis=0), b, atol=1e-15)
    # ||dW_i|| = ||delta_i|| ||x_i|| <= sqrt(2) with ||x_i|| = 1
    assert np.sqrt((trick[0] ** 2).sum((1, 2))).max() <= math.sqrt(2)


@pytest.mark.ch18
@pytest.mark.torch
def test_per_example_grads_equal_torch_func(ch18):
    torch = pytest.importorskip("torch")
    X, y = _toy(7, seed=3)
    rng = np.random.default_rng(2)
    params = [rng.normal(size=(3, 12)), rng.normal(size=3)]
    W, b = (torch.tensor(p) for p in params)

    def loss(W, b, x, t):
        return torch.nn.functional.cross_entropy((x @ W.T + b)[None], t[None])
    gW, gb = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)), in_dims=(None, None, 0, 0))(
        W, b, torch.tensor(X), torch.tensor(y))
    ours = ch18.per_example_grads(params, X, y)
    np.testing.assert_allclose(ours[0], gW.numpy(), atol=1e-14)
    np.testing.assert_allclose(ours[1], gb.numpy(), atol=1e-14)


@pytest.mark.ch18
def test_one_gradient_names_the_words(ch18):
    X, y = _toy(4, seed=5)
    params = [np.random.default_rng(0).normal(size=(3, 12)) * 0.1, np.zeros(3)]
    for i in range(4):
        g = ch18.per_example_grads(params, X[i:i + 1], y[i:i + 1])[0][0]
        assert ch18.words_in_update(g) == set(np.flatnonzero(X[i]).tolist())


@pytest.mark.ch18
def test_gaussian_delta_formula(ch18):
    # delta(0) = Phi(mu/2) - Phi(-mu/2) = P[|N(0,1)| < mu/2]: the total variation distance
    for s in (0.5, 1.0, 3.0):
        mu = 1 / s
        assert ch18.gaussian_delta(0.0, s) == pytest.approx(math.erf(mu / 2 / math.sqrt(2)),
                                                            rel=1e-12)
    # decreasing in epsilon and in sigma; gaussian_epsilon inverts it
    d = [ch18.gaussian_delta(e, 1.0) for e in np.linspace(0, 5, 20)]
    assert np.all(np.diff(d) < 0)
    assert ch18.gaussian_delta(1.0, 2.0) < ch18.gaussian_delta(1.0, 1.0)
    eps = ch18.gaussian_epsilon(1e-5, 1.3)
    assert ch18.gaussian_delta(eps, 1.3) == pytest.approx(1e-5, rel=1e-6)
    # the RDP conversion is an upper bound of the exact epsilon
    for s in (0.7, 1.0, 2.0, 5.0):
        rdp_eps, _ = privacy.rdp_to_epsilon(privacy.DEFAULT_ORDERS, privacy.rdp_gaussian(s), 1e-5)
        assert rdp_eps >= ch18.gaussian_epsilon(1e-5, s)


@pytest.mark.ch18
def test_dp_sgd_learns_is_seeded_and_noise_costs_accuracy(ch18):
    X, y = _toy(400, seed=1)
    Xv, yv = _toy(200, seed=2)
    q = 0.1
    plain = ch18.dp_sgd(X, y, 0.0, 1.0, 2.0, 60, q, seed=0, private=False)
    assert ch18.loss_and_accuracy(plain, Xv, yv)[1] > 0.9
    noisy = ch18.dp_sgd(X, y, 1.0, 1.0, 2.0, 60, q, seed=0)
    again = ch18.dp_sgd(X, y, 1.0, 1.0, 2.0, 60, q, seed=0)
    for a, b in zip(noisy, again):
        np.testing.assert_array_equal(a, b)
    assert ch18.loss_and_accuracy(noisy, Xv, yv)[1] > 0.6
    loud = ch18.dp_sgd(X, y, 50.0, 1.0, 2.0, 60, q, seed=0)
    assert ch18.loss_and_accuracy(loud, Xv, yv)[1] < ch18.loss_and_accuracy(plain, Xv, yv)[1]


@pytest.mark.ch18
def test_dp_sgd_without_noise_and_with_a_huge_clip_is_sgd(ch18):
    """sigma = 0 and C larger than any gradient: the private step is the plain one."""
    X, y = _toy(50, seed=4)
    a = ch18.dp_sgd(X, y, 0.0, 1e6, 1.0, 5, 0.3, seed=7)
    b = ch18.dp_sgd(X, y, 0.0, 1e6, 1.0, 5, 0.3, seed=7, private=False)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, atol=1e-15)


@pytest.mark.ch18
def test_split_clients(ch18):
    y = np.repeat(np.arange(5), 20)       # 10 label-sorted shards of 10: one class each
    for iid in (True, False):
        parts = ch18.split_clients(y, 5, iid=iid, seed=0)
        assert sorted(np.concatenate(parts).tolist()) == list(range(100))
        assert len(parts) == 5
    non = ch18.split_clients(y, 5, iid=False, seed=0)
    assert max(len(set(y[p])) for p in non) <= 2       # two label-sorted shards each
    again = ch18.split_clients(y, 5, iid=True, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, ch18.split_clients(y, 5, True, 0)))


@pytest.mark.ch18
def test_fedsgd_equals_full_batch_gradient_descent(ch18):
    X, y = _toy(60, seed=6)
    clients = ch18.split_clients(y, 4, iid=False, seed=1)
    start = [np.random.default_rng(0).normal(size=(3, 12)), np.zeros(3)]
    local = [ch18.local_sgd(start, X[c], y[c], 1, 0.7, len(c), np.random.default_rng(0))
             for c in clients]
    avg = privacy.federated_average(local, [len(c) for c in clients])
    full = [p - 0.7 * g for p, g in zip(start, ch18.batch_grad(start, X, y))]
    for a, b in zip(avg, full):
        np.testing.assert_allclose(a, b, atol=1e-14)


@pytest.mark.ch18
def test_fedavg_learns_and_records_each_round(ch18):
    X, y = _toy(240, seed=7)
    Xv, yv = _toy(100, seed=8)
    clients = ch18.split_clients(y, 4, iid=True, seed=0)
    params, hist = ch18.fedavg(X, y, clients, 5, 2, 1.0, val=(Xv, yv))
    assert len(hist) == 5 and hist[-1] > 0.9
    assert [p.shape for p in params] == [(ch18.NUM_CLASSES, 12), (ch18.NUM_CLASSES,)]
    _, hist2 = ch18.fedavg(X, y, clients, 5, 2, 1.0, val=(Xv, yv))
    assert hist2 == hist
