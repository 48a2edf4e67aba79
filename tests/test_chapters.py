"""The chapters: each runs end to end (``--quick``) and passes its own checks, and the
formulas each chapter derives are tested here directly (tools in ``chapter_tools.py``).
"""
import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm import nn
from tinylm.chapter import Chapter
from tinylm.gradcheck import gradcheck

from chapter_tools import assert_chapter_passes, load_definitions


# --- chapter 01 -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ch01():
    return load_definitions("01_neuron.py")


@pytest.mark.ch01
def test_chapter_01_runs(tmp_path):
    out = assert_chapter_passes("01_neuron.py", tmp_path, ["01_activations.png"])
    assert "a = sigmoid(z) = 0.401312" in out


@pytest.mark.ch01
def test_c1_neuron_equals_linear(ch01):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(6), rng.standard_normal(6), 0.3
    z, a = ch01.neuron(x, w, b, ch01.sigmoid)
    layer = nn.Linear(6, 1, dtype=np.float64)
    layer.load_state_dict({"weight": w[None, :], "bias": np.array([b])})
    assert layer(x).numpy() == pytest.approx([z], abs=1e-14)
    assert F.sigmoid(layer(x)).numpy() == pytest.approx([a], abs=1e-14)


@pytest.mark.ch01
def test_c2_forward_propagation_matches_sequential(ch01):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5, 3))
    weights = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4))]
    biases = [rng.standard_normal(4), rng.standard_normal(2)]
    outputs = ch01.forward_propagation(X, weights, biases, [np.tanh, ch01.relu])
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Tanh(),
                          nn.Linear(4, 2, dtype=np.float64), nn.ReLU())
    model.load_state_dict({"0.weight": weights[0], "0.bias": biases[0],
                           "2.weight": weights[1], "2.bias": biases[1]})
    np.testing.assert_allclose(outputs[-1][1], model(X).numpy(), atol=1e-14)
    assert [z.shape for z, _ in outputs] == [(5, 4), (5, 2)]


@pytest.mark.ch01
def test_c2_pseudo_code_as_written_ignores_the_weights(ch01):
    X = np.linspace(-1, 1, 6).reshape(2, 3)
    w = [np.ones((3, 3)), np.ones((3, 3))]
    out = ch01.forward_propagation_as_written(X, w, [0, 0], np.tanh)
    out_scaled = ch01.forward_propagation_as_written(X, [5 * m for m in w], [0, 0], np.tanh)
    np.testing.assert_array_equal(out[-1], np.tanh(np.tanh(X)))
    np.testing.assert_array_equal(out[-1], out_scaled[-1])


@pytest.mark.ch01
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "gelu"])
def test_activation_values_and_autograd_derivatives(ch01, name):
    grid = np.linspace(-3, 3, 61) + 0.01          # avoid relu's kink at exactly 0
    x = tl.Tensor(grid, requires_grad=True)
    y = getattr(F, name)(x)
    y.sum().backward()
    np.testing.assert_allclose(y.numpy(), ch01.ACTIVATIONS[name](grid), atol=1e-12)
    h = 1e-6
    numeric = (ch01.ACTIVATIONS[name](grid + h) - ch01.ACTIVATIONS[name](grid - h)) / (2 * h)
    np.testing.assert_allclose(x.grad, numeric, atol=1e-8)


# --- chapter 02 -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ch02():
    return load_definitions("02_loss_and_backprop.py")


@pytest.mark.ch02
def test_chapter_02_runs(tmp_path):
    out = assert_chapter_passes("02_loss_and_backprop.py", tmp_path, ["02_training_curves.png"])
    assert "one-sided -y log y^" in out


@pytest.mark.ch02
def test_c3_mse_matches_hand_formula(ch02):
    y, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 1.5, 3.0, 5.0])
    pred = tl.Tensor(p, requires_grad=True)
    loss = F.mse_loss(pred, y)
    loss.backward()
    assert ch02.mean_squared_error(y, p) == pytest.approx(0.375)
    assert loss.item() == pytest.approx(0.375)
    np.testing.assert_allclose(pred.grad, 2 * (p - y) / 4)


@pytest.mark.ch02
def test_c4_cross_entropy_matches_hand_formula(ch02):
    rng = np.random.default_rng(4)
    z, labels = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    onehot = np.eye(4)[labels]
    probs = ch02.softmax(z)
    hand = np.mean([ch02.cross_entropy(onehot[i], probs[i]) for i in range(5)])
    zt = tl.Tensor(z, requires_grad=True)
    loss = F.cross_entropy(zt, labels)
    loss.backward()
    assert loss.item() == pytest.approx(hand, abs=1e-14)
    np.testing.assert_allclose(zt.grad, (probs - onehot) / 5, atol=1e-15)


@pytest.mark.ch02
def test_c8_chain_rule_sums_over_paths_and_the_step_lowers_the_loss():
    xs, ts, w0 = np.array([1.0, 2.0, 3.0]), np.array([2.5, 3.5, 6.5]), 0.5
    w = tl.Tensor(np.array(w0), requires_grad=True)
    F.mse_loss(w * xs, ts).backward()
    paths = 2 * (w0 * xs - ts) / 3 * xs                  # dL/dz_i * dz_i/dw
    assert w.grad == pytest.approx(paths.sum())
    w1 = w0 - 0.05 * w.grad                              # w <- w - alpha dL/dw
    assert np.mean((w1 * xs - ts) ** 2) < np.mean((w0 * xs - ts) ** 2)


@pytest.mark.ch02
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c12_closed_form_equals_autograd_of_bce_of_sigmoid(ch02, seed):
    """C12: d/dw BCE(s(w.x + b), y) = (y^ - y) x, averaged over a batch."""
    rng = np.random.default_rng(seed)
    X, y = rng.random((8, 10)), (rng.random(8) < 0.5).astype(float)
    w0, b0 = rng.standard_normal(10), 0.2
    w, b = tl.Tensor(w0, requires_grad=True), tl.Tensor(np.array(b0), requires_grad=True)
    F.binary_cross_entropy(F.sigmoid(tl.Tensor(X) @ w + b), y).backward()
    p = ch02.sigmoid(X @ w0 + b0)
    np.testing.assert_allclose(w.grad, X.T @ (p - y) / 8, atol=1e-14)
    assert b.grad == pytest.approx(np.mean(p - y), abs=1e-14)
    gw, gb = ch02.grad_standard(X, y, w0, b0)
    np.testing.assert_allclose(gw, w.grad, atol=1e-14)


@pytest.mark.ch02
def test_c12_closed_form_equals_finite_differences(ch02):
    rng = np.random.default_rng(5)
    X, y = rng.random((6, 10)), np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    w0 = rng.standard_normal(10)
    numeric = ch02.numerical_gradient(lambda w: ch02.bce_numpy(ch02.sigmoid(X @ w), y), w0)
    np.testing.assert_allclose(ch02.grad_standard(X, y, w0, 0.0)[0], numeric, atol=1e-9)


@pytest.mark.ch02
def test_c12_one_sided_loss_gradient_is_zero_for_negative_examples(ch02):
    """The document's L = -y log y^ gives no gradient at all for an example with y = 0."""
    rng = np.random.default_rng(6)
    X = rng.random((5, 10))
    w = tl.Tensor(rng.standard_normal(10), requires_grad=True)
    ch02.one_sided_bce(F.sigmoid(tl.Tensor(X) @ w), np.zeros(5)).backward()
    assert np.all(w.grad == 0)


@pytest.mark.ch02
def test_c12_one_sided_gradient_closed_form(ch02):
    rng = np.random.default_rng(7)
    X, y = rng.random((7, 10)), (rng.random(7) < 0.5).astype(float)
    w0, b0 = rng.standard_normal(10), -0.1
    w, b = tl.Tensor(w0, requires_grad=True), tl.Tensor(np.array(b0), requires_grad=True)
    ch02.one_sided_bce(F.sigmoid(tl.Tensor(X) @ w + b), y).backward()
    gw, gb = ch02.grad_one_sided(X, y, w0, b0)   # mean_i -y_i (1 - y^_i) x_i
    np.testing.assert_allclose(w.grad, gw, atol=1e-14)
    assert b.grad == pytest.approx(gb, abs=1e-14)
    assert np.all(gw <= 0)                         # x >= 0: the update only raises w


@pytest.mark.ch02
def test_a3_training_standard_learns_one_sided_predicts_all_ones(ch02):
    X, y = ch02.make_dataset(300, np.random.default_rng(0))
    _, _, std = ch02.train_logistic(X, y, ch02.standard_bce, steps=400, lr=1.0)
    _, _, one = ch02.train_logistic(X, y, ch02.one_sided_bce, steps=100, lr=1.0)
    assert std["accuracy"][-1] >= 0.9
    assert std["loss"][-1] < std["loss"][0]
    assert one["predicted_one"][-1] >= 0.99


# --- chapter 03 -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ch03():
    return load_definitions("03_autograd.py")


@pytest.mark.ch03
def test_chapter_03_runs(tmp_path):
    out = assert_chapter_passes("03_autograd.py", tmp_path,
                                ["03_graph.dot", "03_finite_differences.png"])
    assert "BuggySigmoid (deliberate bug)" in out and "FAIL" in out
    dot = (tmp_path / "03_graph.dot").read_text()
    assert dot.startswith("digraph") and "Tanh" in dot and "grad 1.2695" in dot


@pytest.mark.ch03
def test_graph_drawing_shows_values_and_gradients(ch03):
    x = tl.Tensor(np.array(2.0))
    w = tl.Tensor(np.array(-0.5), requires_grad=True)
    b = tl.Tensor(np.array(0.3), requires_grad=True)
    m = x * w
    u = (m + b).retain_grad()
    L = u.tanh()
    L.backward()
    names = {id(x): "x", id(w): "w", id(b): "b", id(m): "m", id(u): "u", id(L): "L"}
    text = ch03.draw_text(L, names)
    assert text.splitlines()[0].startswith("L = Tanh(u)")
    assert "w = leaf   value -0.5000   grad 1.2695" in text
    assert "x = constant" in text and "grad -" in text
    assert len(ch03.graph_nodes(L)) == 6
    assert ch03.to_dot(L, names).count("shape=ellipse") == 3


@pytest.mark.ch03
def test_gradients_accumulate_and_zero_grad_resets():
    w = tl.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    (w * w).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [4.0, -8.0])
    w.zero_grad()
    assert w.grad is None
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [2.0, -4.0])


@pytest.mark.ch03
def test_deep_chain_backward_without_recursion(ch03):
    x = tl.Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 0.9999 + 0.001
    y.backward()
    assert x.grad == pytest.approx(0.9999 ** 5000, rel=1e-12)
    with pytest.raises(RecursionError):
        ch03.recursive_order(y)


@pytest.mark.ch03
def test_no_grad_records_nothing():
    w = tl.Tensor(np.ones(3), requires_grad=True)
    with tl.no_grad():
        y = (w * 2).sum()
    assert not y.requires_grad and y.creator is None
    with pytest.raises(tl.GradError):
        y.backward()


@pytest.mark.ch03
def test_gradcheck_catches_the_chapters_buggy_sigmoid(ch03):
    x = tl.Tensor(np.linspace(-2, 2, 7), requires_grad=True)
    assert not gradcheck(lambda: ch03.BuggySigmoid.apply(x), [x]).passed
    assert gradcheck(lambda: F.sigmoid(x), [x]).passed


@pytest.mark.ch03
def test_hessian_vector_product_by_finite_differences(ch03):
    rng = np.random.default_rng(8)
    M = rng.standard_normal((4, 4))
    A, c = M @ M.T + np.eye(4), rng.standard_normal(4)
    w, v = rng.standard_normal(4), rng.standard_normal(4)
    hv = ch03.hvp_finite_difference(lambda t: 0.5 * (t @ (A @ t)) + c @ t, w, v)
    np.testing.assert_allclose(hv, A @ v, atol=1e-8)


# --- the chapter helper -------------------------------------------------------------
def test_chapter_helper_counts_checks_and_exits_nonzero_on_failure(tmp_path, capsys):
    ch = Chapter(99, "helper", ["--quick", "--figures", str(tmp_path / "figs"),
                                "--unknown-kernel-arg"])
    assert ch.quick and ch.figures_dir == tmp_path / "figs"
    assert ch.check("equal arrays", (np.ones(3), np.ones(3), 0.0))
    assert not ch.check("different shapes", (np.ones(3), np.ones(4)))
    assert not ch.check("too far apart", (1.0, 1.1, 1e-3))
    assert ch.figure("x.png").parent.is_dir()
    with pytest.raises(SystemExit) as exit_info:
        ch.finish()
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "[PASS] equal arrays" in out and "[FAIL] too far apart" in out
    assert "1/3 checks passed" in out


def test_chapter_helper_finishes_quietly_when_all_checks_pass(tmp_path, capsys):
    ch = Chapter(98, "helper", ["--figures", str(tmp_path)])
    assert not ch.quick
    ch.check("true", True)
    ch.show("an array", np.arange(3.0))
    ch.finish()                       # no SystemExit
    assert "1/1 checks passed" in capsys.readouterr().out
