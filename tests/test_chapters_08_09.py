"""Chapters 08 (the RNN, BPTT) and 09 (LSTM, GRU, the documents' LSTMs): each runs end to
end with ``--quick``, and the formulas they derive are tested here directly against tinylm's
autograd, finite differences and the library layers (tools in ``chapter_tools.py``).
"""
import numpy as np
import pytest

import tinylm as tl
from tinylm.gradcheck import gradcheck
from tinylm.nn import GRU, LSTM, RNN, DocLSTMCell

from chapter_tools import assert_chapter_passes, load_definitions


# --- chapter 08 -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ch08():
    return load_definitions("08_rnn.py")


def _rnn_problem(seed, B=2, T=5, D=3, H=4, O=2):
    rng = np.random.default_rng(seed)
    P = {"W_x": rng.normal(0, 0.6, (H, D)), "W_h": rng.normal(0, 0.5, (H, H)),
         "b": rng.normal(0, 0.1, H), "V": rng.normal(0, 0.7, (O, H)),
         "h0": rng.normal(0, 0.3, (B, H))}
    return rng.standard_normal((B, T, D)), rng.standard_normal((B, T, O)), P


@pytest.mark.ch08
def test_chapter_08_runs(tmp_path):
    out = assert_chapter_passes("08_rnn.py", tmp_path, ["08_vanishing_exploding.png"])
    assert "a_1 on paper = [-0.25, 0.85]" in out
    assert "tinylm.gradcheck passes for the unrolled RNN" in out


@pytest.mark.ch08
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a6_hand_bptt_equals_autograd(ch08, act, seed):
    X, Y, P = _rnn_problem(seed)
    loss, grads, _ = ch08.bptt_numpy(X, Y, P["h0"], P["W_x"], P["W_h"], P["b"], P["V"], act)
    leaves = {k: tl.Tensor(v.copy(), requires_grad=True) for k, v in P.items()}
    out = ch08.rnn_loss(X, Y, leaves["h0"], leaves["W_x"], leaves["W_h"], leaves["b"],
                        leaves["V"], act)
    out.backward()
    assert out.item() == pytest.approx(loss, abs=1e-13)
    for k in P:
        np.testing.assert_allclose(grads[k], leaves[k].grad, atol=1e-13, err_msg=k)


@pytest.mark.ch08
@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_a6_hand_bptt_equals_finite_differences(ch08, act):
    X, Y, P = _rnn_problem(3, T=7)
    _, grads, _ = ch08.bptt_numpy(X, Y, P["h0"], P["W_x"], P["W_h"], P["b"], P["V"], act)
    eps = 1e-6
    for name in ("W_h", "W_x", "b", "h0"):
        numeric = np.zeros_like(P[name])
        for j in range(P[name].size):
            for sign in (1, -1):
                Q = {k: v.copy() for k, v in P.items()}
                Q[name].reshape(-1)[j] += sign * eps
                numeric.reshape(-1)[j] += sign * ch08.bptt_numpy(
                    X, Y, Q["h0"], Q["W_x"], Q["W_h"], Q["b"], Q["V"], act)[0] / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, atol=1e-8, err_msg=name)


@pytest.mark.ch08
def test_a6_unrolled_rnn_passes_gradcheck(ch08):
    X, Y, P = _rnn_problem(4, T=4)
    leaves = [tl.Tensor(P[k].copy()) for k in ("h0", "W_x", "W_h", "b", "V")]
    result = gradcheck(lambda: ch08.rnn_loss(X, Y, *leaves, act="sigmoid"), leaves)
    assert result.passed, result


@pytest.mark.ch08
@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_a6_nn_rnn_equals_hand_cell(ch08, act):
    X, Y, P = _rnn_problem(5)
    layer = RNN(3, 4, batch_first=True, nonlinearity=act, dtype=np.float64)
    layer.load_state_dict({"weight_ih_l0": P["W_x"], "weight_hh_l0": P["W_h"],
                           "bias_ih_l0": P["b"] * 0.3, "bias_hh_l0": P["b"] * 0.7})
    out, h_n = layer(tl.Tensor(X), tl.Tensor(P["h0"][None]))
    hs, _ = ch08.rnn_forward_numpy(X, P["h0"], P["W_x"], P["W_h"], P["b"], act)
    np.testing.assert_allclose(out.numpy(), hs[:, 1:], atol=1e-13)
    np.testing.assert_allclose(h_n.numpy()[0], hs[:, -1], atol=1e-13)
    E = out @ tl.Tensor(P["V"]).T - Y
    (0.5 * (E * E).sum() / X.shape[0]).backward()
    grads = ch08.bptt_numpy(X, Y, P["h0"], P["W_x"], P["W_h"], P["b"], P["V"], act)[1]
    np.testing.assert_allclose(layer.weight_hh_l0.grad, grads["W_h"], atol=1e-13)
    np.testing.assert_allclose(layer.weight_ih_l0.grad, grads["W_x"], atol=1e-13)


@pytest.mark.ch08
def test_a6_jacobian_norms_linear_is_radius_power_and_sigmoid_is_bounded(ch08):
    rng = np.random.default_rng(0)
    Q = ch08.orthogonal(8, rng)
    np.testing.assert_allclose(Q @ Q.T, np.eye(8), atol=1e-12)
    for r in (0.7, 1.3):
        norms = ch08.jacobian_norms(r * Q, 25, "linear", np.random.default_rng(1))
        np.testing.assert_allclose(norms, r ** np.arange(25), rtol=1e-10)
        assert ch08.log_slope(norms) == pytest.approx(np.log(r), abs=1e-10)
        sig = ch08.jacobian_norms(r * Q, 25, "sigmoid", np.random.default_rng(1))
        assert np.all(sig <= (r / 4) ** np.arange(25) * (1 + 1e-9))
        tanh = ch08.jacobian_norms(r * Q, 25, "tanh", np.random.default_rng(1))
        assert np.all(tanh <= r ** np.arange(25) * (1 + 1e-9))


# --- chapter 09 -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ch09():
    return load_definitions("09_lstm_gru.py")


@pytest.mark.ch09
def test_chapter_09_runs(tmp_path):
    out = assert_chapter_passes("09_lstm_gru.py", tmp_path, ["09_training_race.png"])
    assert "A7: the input gate's parameters get exactly zero gradient" in out
    assert "C11 as written (h = o)" in out


def _lstm_args(seed, B=3, D=4, H=5):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, D)), rng.normal(0, 0.5, (B, H)), rng.normal(0, 0.5, (B, H)),
            rng.normal(0, 0.5, (4 * H, D)), rng.normal(0, 0.5, (4 * H, H)),
            rng.normal(0, 0.2, 4 * H)], rng


@pytest.mark.ch09
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_b3_lstm_cell_backward_equals_autograd(ch09, seed):
    args, rng = _lstm_args(seed)
    dh, dc = rng.standard_normal(args[1].shape), rng.standard_normal(args[2].shape)
    _, _, cache = ch09.lstm_step_numpy(*args)
    hand = ch09.lstm_step_backward_numpy(dh, dc, cache)
    leaves = [tl.Tensor(a.copy(), requires_grad=True) for a in args]
    h, c = ch09.lstm_cell(*leaves)
    ((h * dh).sum() + (c * dc).sum()).backward()
    for k, leaf in enumerate(leaves):
        np.testing.assert_allclose(hand[k], leaf.grad, atol=1e-14)


@pytest.mark.ch09
def test_b3_lstm_cell_backward_equals_finite_differences(ch09):
    args, rng = _lstm_args(7, B=2, D=2, H=3)
    dh, dc = rng.standard_normal(args[1].shape), rng.standard_normal(args[2].shape)
    hand = ch09.lstm_step_backward_numpy(dh, dc, ch09.lstm_step_numpy(*args)[2])

    def scalar(a):
        h, c, _ = ch09.lstm_step_numpy(*a)
        return np.sum(h * dh) + np.sum(c * dc)

    eps = 1e-6
    for k in range(len(args)):
        numeric = np.zeros_like(args[k])
        for j in range(args[k].size):
            for sign in (1, -1):
                moved = [a.copy() for a in args]
                moved[k].reshape(-1)[j] += sign * eps
                numeric.reshape(-1)[j] += sign * scalar(moved) / (2 * eps)
        np.testing.assert_allclose(hand[k], numeric, atol=1e-8)


@pytest.mark.ch09
def test_b3_nn_lstm_equals_hand_cell(ch09):
    rng = np.random.default_rng(11)
    D, H, B, T = 3, 4, 2, 6
    W, U = rng.normal(0, 0.5, (4 * H, D)), rng.normal(0, 0.5, (4 * H, H))
    b_ih, b_hh = rng.normal(0, 0.2, 4 * H), rng.normal(0, 0.2, 4 * H)
    X = rng.standard_normal((B, T, D))
    h0, c0 = rng.normal(0, 0.3, (B, H)), rng.normal(0, 0.3, (B, H))
    layer = LSTM(D, H, batch_first=True, dtype=np.float64)
    layer.load_state_dict({"weight_ih_l0": W, "weight_hh_l0": U, "bias_ih_l0": b_ih,
                           "bias_hh_l0": b_hh})
    out, (h_n, c_n) = layer(tl.Tensor(X), (tl.Tensor(h0[None]), tl.Tensor(c0[None])))
    h, c, hs = h0, c0, []
    for t in range(T):
        h, c, _ = ch09.lstm_step_numpy(X[:, t], h, c, W, U, b_ih + b_hh)
        hs.append(h)
    np.testing.assert_allclose(out.numpy(), np.stack(hs, 1), atol=1e-14)
    np.testing.assert_allclose(c_n.numpy()[0], c, atol=1e-14)


@pytest.mark.ch09
def test_b3_nn_gru_equals_hand_cell_and_tinylm_cell(ch09):
    rng = np.random.default_rng(12)
    D, H, B, T = 3, 4, 2, 5
    P = {"weight_ih_l0": rng.normal(0, 0.5, (3 * H, D)),
         "weight_hh_l0": rng.normal(0, 0.5, (3 * H, H)),
         "bias_ih_l0": rng.normal(0, 0.2, 3 * H), "bias_hh_l0": rng.normal(0, 0.2, 3 * H)}
    X = rng.standard_normal((B, T, D))
    layer = GRU(D, H, batch_first=True, dtype=np.float64)
    layer.load_state_dict(P)
    out, h_n = layer(tl.Tensor(X))
    h, h_tl, hs = np.zeros((B, H)), tl.Tensor(np.zeros((B, H))), []
    for t in range(T):
        h = ch09.gru_step_numpy(X[:, t], h, *P.values())
        h_tl = ch09.gru_cell(tl.Tensor(X[:, t]), h_tl, *[tl.Tensor(v) for v in P.values()])
        hs.append(h)
    np.testing.assert_allclose(out.numpy(), np.stack(hs, 1), atol=1e-14)
    np.testing.assert_allclose(h_tl.numpy(), h, atol=1e-14)


@pytest.mark.ch09
def test_a7_doc_cell_matches_transcription_and_input_gate_is_dead(ch09):
    cell = DocLSTMCell(3, 6, variant="A7", seed=1, dtype=np.float64)
    rng = np.random.default_rng(13)
    x, h, c = rng.standard_normal((4, 3)), rng.normal(0, 0.3, (4, 6)), rng.normal(0, 0.5, (4, 6))
    h_t, c_t = cell(tl.Tensor(x), (tl.Tensor(h), tl.Tensor(c)))
    h_np, c_np, _ = ch09.a7_step_numpy(x, h, c, cell.state_dict())
    np.testing.assert_allclose(h_t.numpy(), h_np, atol=1e-14)
    np.testing.assert_allclose(c_t.numpy(), c_np, atol=1e-14)
    (h_t.sum() + c_t.sum()).backward()
    for name in ("W_xi", "W_hi", "b_i"):
        g = getattr(cell, name).grad
        assert g is None or np.all(g == 0), name
    assert np.all(h_np > 0) and np.all(h_np.sum(axis=1) <= 1)


@pytest.mark.ch09
@pytest.mark.parametrize("rule", ["as_written", "standard"])
def test_c11_doc_cell_matches_transcription_and_cell_stays_positive(ch09, rule):
    cell = DocLSTMCell(3, 5, variant="C11", h_rule=rule, seed=2, dtype=np.float64)
    P = cell.state_dict()
    X = np.random.default_rng(14).standard_normal((3, 12, 3)) * 3
    state, h, c = None, np.zeros((3, 5)), np.zeros((3, 5))
    for t in range(12):
        state = cell(tl.Tensor(X[:, t]), state)
        h, c = ch09.c11_step_numpy(X[:, t], h, c, P, rule)
        assert np.all(c > 0) and np.all(h > 0)
    np.testing.assert_allclose(state[0].numpy(), h, atol=1e-13)
    np.testing.assert_allclose(state[1].numpy(), c, atol=1e-13)


@pytest.mark.ch09
def test_race_task_and_a_short_lstm_run(ch09):
    X, y = ch09.make_task(np.random.default_rng(0), 16, 5)
    assert X.shape == (16, 5, 4) and np.array_equal(X[:, 0].argmax(-1), y)
    assert np.all(X[:, 1:].argmax(-1) >= 2)          # later steps: noise symbols only
    result = ch09.train_race_model("GRU", T=5, hidden=8, steps=60, seed=0)
    assert result["loss"][-10:].mean() < result["loss"][:10].mean()
