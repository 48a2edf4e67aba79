"""The recurrent layers: RNN (chapter 08), LSTM, GRU and the documents' LSTM cells
(chapter 09). Shapes, names, initialisation, dropout, bad input, the fused layers against
step-by-step compositions of tinylm ops, and the documents' formulas against hand NumPy."""
import math
import time

import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm.errors import DTypeError, ShapeError, TinyLMError
from tinylm.nn.doc_lstm import DocLSTM, DocLSTMCell
from tinylm.nn.recurrent import GRU, LSTM, RNN
from tinylm.tensor import Tensor

ch08, ch09 = pytest.mark.ch08, pytest.mark.ch09


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layers(cls):
    return pytest.param(cls, marks=ch08 if cls is RNN else ch09, id=cls.__name__)


ALL = [layers(RNN), layers(LSTM), layers(GRU)]


# --- shapes and structure -------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("num_layers, bidirectional, batch_first",
                         [(1, False, False), (2, True, False), (3, False, True), (2, True, True)])
def test_shapes_and_return_structure(cls, num_layers, bidirectional, batch_first, rng):
    m = cls(4, 5, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
            seed=0)
    T, B, D = 6, 3, 2 if bidirectional else 1
    x = rng.standard_normal((B, T, 4) if batch_first else (T, B, 4)).astype(np.float32)
    out, state = m(x)
    assert out.shape == ((B, T, D * 5) if batch_first else (T, B, D * 5))
    assert out.dtype == np.float32
    if cls is LSTM:
        assert isinstance(state, tuple) and len(state) == 2
        h_n, c_n = state
        assert c_n.shape == (num_layers * D, B, 5)
    else:
        h_n = state
        assert isinstance(h_n, Tensor)
    assert h_n.shape == (num_layers * D, B, 5)
    # the last layer's final states are the output's last step (forward) / first (reverse)
    seq = out.data.transpose(1, 0, 2) if batch_first else out.data
    np.testing.assert_allclose(h_n.data[-D], seq[-1, :, :5], rtol=1e-6)
    if bidirectional:
        np.testing.assert_allclose(h_n.data[-1], seq[0, :, 5:], rtol=1e-6)


@pytest.mark.parametrize("cls", ALL)
def test_unbatched_input_equals_batch_of_one(cls, rng):
    m = cls(3, 4, num_layers=2, bidirectional=True, seed=1, dtype=np.float64)
    x = rng.standard_normal((5, 3))
    out, state = m(x)
    out1, state1 = m(x[:, None, :])
    assert out.shape == (5, 8)
    np.testing.assert_allclose(out.data, out1.data[:, 0], rtol=1e-12)
    states, states1 = (state, state1) if cls is LSTM else ((state,), (state1,))
    for s, s1 in zip(states, states1):
        assert s.shape == (4, 4)
        np.testing.assert_allclose(s.data, s1.data[:, 0], rtol=1e-12)


@pytest.mark.parametrize("cls, gates", [pytest.param(RNN, 1, marks=ch08, id="RNN"),
                                         pytest.param(LSTM, 4, marks=ch09, id="LSTM"),
                                         pytest.param(GRU, 3, marks=ch09, id="GRU")])
def test_state_dict_names_and_shapes_follow_pytorch(cls, gates):
    m = cls(3, 5, num_layers=2, bidirectional=True)
    expected = []
    for layer in range(2):
        for sfx in ("", "_reverse"):
            expected += [f"{n}_l{layer}{sfx}" for n in ("weight_ih", "weight_hh", "bias_ih",
                                                         "bias_hh")]
    sd = m.state_dict()
    assert list(sd) == expected
    assert sd["weight_ih_l0"].shape == (gates * 5, 3)
    assert sd["weight_ih_l1_reverse"].shape == (gates * 5, 10)
    assert sd["weight_hh_l1"].shape == (gates * 5, 5)
    assert sd["bias_hh_l0_reverse"].shape == (gates * 5,)
    no_bias = cls(3, 5, bias=False)
    assert list(no_bias.state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


@pytest.mark.parametrize("cls", ALL)
def test_init_range_and_seed(cls):
    m = cls(7, 16, num_layers=2, seed=3)
    bound = 1 / math.sqrt(16)
    for name, p in m.named_parameters():
        assert p.dtype == np.float32
        assert np.abs(p.data).max() <= bound, name
        assert np.abs(p.data).max() > 0.8 * bound, name     # spread over the whole range
    same, other = cls(7, 16, num_layers=2, seed=3), cls(7, 16, num_layers=2, seed=4)
    for (n, p), (_, q), (_, r) in zip(m.named_parameters(), same.named_parameters(),
                                      other.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert not np.array_equal(p.data, r.data)


@pytest.mark.parametrize("cls", ALL)
def test_dropout_acts_between_layers_only_in_training(cls, rng):
    x = rng.standard_normal((5, 2, 3))
    m = cls(3, 6, num_layers=2, dropout=0.5, seed=0, dtype=np.float64)
    plain = cls(3, 6, num_layers=2, dropout=0.0, seed=0, dtype=np.float64)
    a, b = m(x)[0].data, m(x)[0].data
    assert not np.allclose(a, b)                              # a new mask every call
    assert not np.allclose(a, plain(x)[0].data)
    m.eval()
    np.testing.assert_array_equal(m(x)[0].data, plain(x)[0].data)
    # one layer: dropout has nothing to act between, so training changes nothing
    single, single_plain = (cls(3, 6, dropout=0.5, seed=0, dtype=np.float64),
                            cls(3, 6, seed=0, dtype=np.float64))
    np.testing.assert_array_equal(single(x)[0].data, single_plain(x)[0].data)


@pytest.mark.parametrize("cls", ALL)
def test_dropout_is_repeatable_with_a_seed(cls, rng):
    x = rng.standard_normal((4, 2, 3))
    runs = [cls(3, 4, num_layers=3, dropout=0.3, seed=9)(x)[0].data for _ in range(2)]
    np.testing.assert_array_equal(*runs)


# --- bad input ---------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_wrong_input_size_names_expected_and_got(cls):
    m = cls(3, 4)
    with pytest.raises(ShapeError, match=r"expected input_size 3.*got 5"):
        m(np.zeros((2, 2, 5), np.float32))


@pytest.mark.parametrize("cls", ALL)
def test_bad_input_rank_dtype_and_empty(cls):
    m = cls(3, 4)
    with pytest.raises(ShapeError, match="3-D"):
        m(np.zeros(3, np.float32))
    with pytest.raises(ShapeError, match="3-D"):
        m(np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(DTypeError, match="floating point"):
        m(np.zeros((2, 2, 3), np.int64))
    with pytest.raises(ShapeError, match="empty"):
        m(np.zeros((0, 2, 3), np.float32))


@pytest.mark.parametrize("cls", ALL)
def test_wrong_initial_state_shape(cls):
    m = cls(3, 4, num_layers=2)
    x = np.zeros((5, 2, 3), np.float32)
    bad = np.zeros((1, 2, 4), np.float32)
    good = np.zeros((2, 2, 4), np.float32)
    name = "h_0" if cls is LSTM else "hx"
    with pytest.raises(ShapeError, match=rf"{name} must have shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        m(x, (bad, good) if cls is LSTM else bad)
    if cls is LSTM:
        with pytest.raises(ShapeError, match=r"c_0 must have shape"):
            m(x, (good, bad))
        with pytest.raises(ShapeError, match="tuple"):
            m(x, good)


@ch08
def test_bad_constructor_arguments():
    with pytest.raises(TinyLMError, match="nonlinearity must be 'tanh', 'relu' or 'sigmoid'"):
        RNN(3, 4, nonlinearity="softplus")
    with pytest.raises(TinyLMError, match="hidden_size"):
        RNN(3, 0)
    with pytest.raises(TinyLMError, match="dropout"):
        GRU(3, 4, dropout=1.5)
    with pytest.raises(TinyLMError, match="proj_size"):
        LSTM(3, 4, proj_size=2)


# --- the fused layers against independent references ----------------------------------
@ch08
@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid", "relu"])
def test_rnn_matches_the_formula_in_numpy(nonlinearity, rng):
    """A6: h_t = act(W_x x_t + W_h h_{t-1} + b_h), b_h = b_ih + b_hh."""
    m = RNN(3, 4, nonlinearity=nonlinearity, seed=0, dtype=np.float64)
    x, h = rng.standard_normal((6, 2, 3)), rng.standard_normal((2, 4))
    act = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda a: np.maximum(a, 0)}
    expected = []
    hs = h
    for t in range(6):
        hs = act[nonlinearity](x[t] @ m.weight_ih_l0.data.T + hs @ m.weight_hh_l0.data.T
                               + m.bias_ih_l0.data + m.bias_hh_l0.data)
        expected.append(hs)
    out, h_n = m(x, h[None])
    np.testing.assert_allclose(out.data, np.stack(expected), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n.data[0], expected[-1], rtol=1e-12, atol=1e-14)


def _reference(cell, x, states, w_ih, w_hh, b_ih, b_hh, reverse=False):
    """A whole sequence composed from tinylm Tensor ops, one step at a time."""
    T = x.shape[0]
    outs = [None] * T
    for t in (reversed(range(T)) if reverse else range(T)):
        states = cell(x[t], states, w_ih, w_hh, b_ih, b_hh)
        outs[t] = states[0]
    return F.stack(outs, axis=0), states


def _lstm_step(x, states, w_ih, w_hh, b_ih, b_hh):
    h, c = states
    i, f, g, o = F.split(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=-1)
    c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    return F.sigmoid(o) * F.tanh(c), c


def _gru_step(x, states, w_ih, w_hh, b_ih, b_hh):
    (h,) = states
    xr, xz, xn = F.split(x @ w_ih.T + b_ih, 3, axis=-1)
    hr, hz, hn = F.split(h @ w_hh.T + b_hh, 3, axis=-1)
    r, z = F.sigmoid(xr + hr), F.sigmoid(xz + hz)
    n = F.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


@ch09
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_fused_layer_equals_step_by_step_composition(cls, bidirectional, rng):
    """The fused Function (hand-written BPTT) against autograd through a per-step graph:
    outputs, final states and every gradient."""
    m = cls(3, 4, bidirectional=bidirectional, seed=2, dtype=np.float64)
    D, n_states = (2 if bidirectional else 1), (2 if cls is LSTM else 1)
    x_np = rng.standard_normal((5, 2, 3))
    s_np = [rng.standard_normal((D, 2, 4)) for _ in range(n_states)]
    r_out = rng.standard_normal((5, 2, 4 * D))
    r_states = [rng.standard_normal((D, 2, 4)) for _ in range(n_states)]

    def loss_and_grads(run):
        x = Tensor(x_np.copy(), requires_grad=True)
        states = [Tensor(s.copy(), requires_grad=True) for s in s_np]
        m.zero_grad()
        out, finals = run(x, states)
        loss = (out * Tensor(r_out)).sum()
        for f, r in zip(finals, r_states):
            loss = loss + (f * Tensor(r)).sum()
        loss.backward()
        return ([out.data] + [f.data for f in finals] + [x.grad] + [s.grad for s in states]
                + [p.grad.copy() for p in m.parameters()])

    def fused(x, states):
        out, finals = m(x, tuple(states) if cls is LSTM else states[0])
        return out, (finals if cls is LSTM else (finals,))

    def composed(x, states):
        step = _lstm_step if cls is LSTM else _gru_step
        outs, finals = [], [[] for _ in states]
        for d, sfx in enumerate(["_l0", "_l0_reverse"][:D]):
            weights = [getattr(m, n + sfx) for n in ("weight_ih", "weight_hh", "bias_ih",
                                                     "bias_hh")]
            out, last = _reference(step, x, tuple(s[d] for s in states), *weights,
                                   reverse=d == 1)
            outs.append(out)
            for store, s in zip(finals, last):
                store.append(s)
        return F.concatenate(outs, axis=-1), [F.stack(f, axis=0) for f in finals]

    for a, b in zip(loss_and_grads(fused), loss_and_grads(composed)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@ch08
def test_long_sequence_backward_is_fast_and_needs_no_recursion(rng):
    m = RNN(8, 16, seed=0)
    x = Tensor(rng.standard_normal((3000, 4, 8)).astype(np.float32), requires_grad=True)
    start = time.perf_counter()
    out, h_n = m(x)
    (out.sum() + h_n.sum()).backward()
    assert x.grad.shape == x.shape and np.isfinite(x.grad).all()
    assert time.perf_counter() - start < 10    # generous: a per-step graph took minutes


@ch09
def test_no_grad_and_float32(rng):
    m = LSTM(3, 4, seed=0)
    with tl.no_grad():
        out, (h, c) = m(rng.standard_normal((4, 2, 3)).astype(np.float32))
    assert not out.requires_grad and out.dtype == np.float32 and c.dtype == np.float32


@ch09
def test_create_graph_through_fused_layer_says_it_is_unsupported(rng):
    m = GRU(3, 4, seed=0, dtype=np.float64)
    x = Tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    out, _ = m(x)
    with pytest.raises(tl.GradError, match="GRUSequence has no differentiable backward"):
        tl.grad(out.sum(), [x], create_graph=True)


# --- the documents' LSTM cells -------------------------------------------------------
def _cell_numpy(cell, x, h, c):
    """The formulas of nn/doc_lstm.py's docstring, written again in NumPy."""
    p = {n: v.data for n, v in cell.named_parameters()}
    lin = lambda W, v: v @ p[W].T
    if cell.variant == "C11":
        hx = np.concatenate([h, x], axis=-1)
        f = sigmoid(lin("W_f", hx) + p["b_f"])
        i = sigmoid(lin("W_i", hx) + p["b_i"])
        c_t = f * c + i * sigmoid(lin("W_c", hx) + p["b_c"])
        o = sigmoid(lin("W_o", np.concatenate([h, c_t], axis=-1)) + p["b_o"])
        return (o if cell.h_rule == "as_written" else o * np.tanh(c_t)), c_t
    i = sigmoid(lin("W_xi", x) + lin("W_hi", h) + p["b_i"])
    f = sigmoid(lin("W_xf", x) + lin("W_hf", h) + p["b_f"])
    c_hat = np.tanh(lin("W_xc", x) + lin("W_hc", h) + p["b_c"])
    if cell.variant == "standard":
        c_t = f * c + i * c_hat
        o = sigmoid(lin("W_xo", x) + lin("W_ho", h) + p["b_o"])
        return o * np.tanh(c_t), c_t
    c_t = f * c_hat + (1 - f) * c                        # A7: i is not used
    o = sigmoid(lin("W_xo", x) + lin("W_ho", c_t) + p["b_o"])
    return o * softmax(lin("W_h", c_t) + p["b_h"]), c_t


DOC_CELLS = [("standard", None), ("A7", None), ("C11", "as_written"), ("C11", "standard")]


@ch09
@pytest.mark.parametrize("variant, h_rule", DOC_CELLS)
def test_doc_cell_matches_its_formula_in_numpy(variant, h_rule, rng):
    cell = DocLSTMCell(3, 4, variant, h_rule=h_rule, seed=5, dtype=np.float64)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    h_t, c_t = cell(x, (h, c))
    h_ref, c_ref = _cell_numpy(cell, x, h, c)
    np.testing.assert_allclose(h_t.data, h_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_t.data, c_ref, rtol=1e-12, atol=1e-14)
    # a sequence runs the same cell step by step
    seq = DocLSTM(3, 4, variant, h_rule=h_rule, seed=5, dtype=np.float64)
    xs = rng.standard_normal((3, 2, 3))
    out, (h_n, c_n) = seq(xs, (h[None], c[None]))
    for t in range(3):
        h, c = _cell_numpy(seq.cell, xs[t], h, c)
        np.testing.assert_allclose(out.data[t], h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n.data[0], h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_n.data[0], c, rtol=1e-12, atol=1e-14)


@ch09
def test_a7_input_gate_is_computed_but_unused(rng):
    """ERRATUM A7: i_t never reaches the output, so backward never reaches its weights
    (their .grad stays None: a zero gradient) while every other weight gets some."""
    m = DocLSTM(3, 4, "A7", seed=0, dtype=np.float64)
    out, (h_n, c_n) = m(rng.standard_normal((5, 2, 3)))
    assert m.cell.last_i.shape == (2, 4)                  # it was computed
    (out * Tensor(rng.standard_normal(out.shape))).sum().backward()
    for name, p in m.named_parameters():
        if name.split(".")[-1] in ("W_xi", "W_hi", "b_i"):
            assert p.grad is None, name
        else:
            assert np.abs(p.grad).max() > 1e-6, name
    # and the softmax read-out: h_t / o_t is a probability vector
    cell = DocLSTMCell(3, 4, "A7", seed=1, dtype=np.float64)
    h, _ = cell(rng.standard_normal((2, 3)))
    assert np.all(h.data > 0) and np.all(h.data.sum(axis=-1) < 1)


@ch09
def test_c11_as_written_and_standard_differ(rng):
    xs = rng.standard_normal((4, 2, 3))
    written = DocLSTM(3, 4, "C11", seed=3, dtype=np.float64)
    standard = DocLSTM(3, 4, "C11", h_rule="standard", seed=3, dtype=np.float64)
    for p, q in zip(written.parameters(), standard.parameters()):
        np.testing.assert_array_equal(p.data, q.data)      # same weights ...
    out_w, (_, c_w) = written(xs)
    out_s, (_, c_s) = standard(xs)
    assert np.abs(out_w.data - out_s.data).max() > 0.1    # ... different h
    assert np.all((out_w.data > 0) & (out_w.data < 1))    # as written, h_t = o_t is a gate
    assert np.all(np.abs(out_s.data) < 1)
    # the sigma candidate only ever adds: from c = 0 the cell state stays positive
    assert np.all(c_w.data > 0) and np.all(c_s.data > 0)


@ch09
def test_doc_standard_variant_equals_nn_lstm(rng):
    """The 'standard' cell is Gers 2000 = PyTorch's LSTM: stacking its weights in the order
    i, f, g(c), o gives nn.LSTM the same function."""
    doc = DocLSTM(3, 4, "standard", batch_first=True, seed=0, dtype=np.float64)
    lstm = LSTM(3, 4, batch_first=True, dtype=np.float64)
    c = doc.cell
    gates = "ifco"
    lstm.load_state_dict({
        "weight_ih_l0": np.concatenate([getattr(c, f"W_x{g}").data for g in gates]),
        "weight_hh_l0": np.concatenate([getattr(c, f"W_h{g}").data for g in gates]),
        "bias_ih_l0": np.concatenate([getattr(c, f"b_{g}").data for g in gates]),
        "bias_hh_l0": np.zeros(16)})
    x = rng.standard_normal((2, 5, 3))
    state = (rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4)))
    (a, (ha, ca)), (b, (hb, cb)) = doc(x, state), lstm(x, state)
    for u, v in ((a, b), (ha, hb), (ca, cb)):
        assert u.shape == v.shape
        np.testing.assert_allclose(u.data, v.data, rtol=1e-12, atol=1e-14)


@ch09
def test_doc_cell_parameters_and_errors():
    assert [n for n, _ in DocLSTMCell(3, 4, "C11").named_parameters()] == \
        ["W_f", "b_f", "W_i", "b_i", "W_c", "b_c", "W_o", "b_o"]
    a7 = dict(DocLSTMCell(3, 4, "A7").named_parameters())
    assert a7["W_ho"].shape == (4, 4) and a7["W_h"].shape == (4, 4) and a7["W_xi"].shape == (4, 3)
    assert DocLSTMCell(3, 4, "C11").W_o.shape == (4, 8)
    assert all(abs(p.data).max() <= 0.5 for p in DocLSTMCell(3, 4, "A7", seed=0).parameters())
    assert "b_i" not in dict(DocLSTMCell(3, 4, bias=False).named_parameters())
    with pytest.raises(TinyLMError, match="variant must be one of"):
        DocLSTMCell(3, 4, "A8")
    with pytest.raises(TinyLMError, match="h_rule applies only to variant 'C11'"):
        DocLSTMCell(3, 4, "A7", h_rule="standard")
    with pytest.raises(TinyLMError, match="h_rule must be"):
        DocLSTMCell(3, 4, "C11", h_rule="tanh")
    cell = DocLSTMCell(3, 4)
    with pytest.raises(ShapeError, match=r"input must be \(batch, 3\)"):
        cell(np.zeros((2, 5)))
    with pytest.raises(ShapeError, match=r"state c must have shape \(2, 4\)"):
        cell(np.zeros((2, 3)), (np.zeros((2, 4)), np.zeros((3, 4))))
    seq = DocLSTM(3, 4, batch_first=True)
    with pytest.raises(ShapeError, match="3-D"):
        seq(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match=r"h_0 must have shape \(1, 2, 4\)"):
        seq(np.zeros((2, 5, 3)), (np.zeros((2, 4)), np.zeros((1, 2, 4))))
    out, (h, c) = seq(np.zeros((2, 5, 3), np.float32))
    assert out.shape == (2, 5, 4) and h.shape == c.shape == (1, 2, 4)


@ch09
@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_frozen_weights_get_no_gradient_and_the_rest_is_unchanged(cls, rng):
    """The fused backward skips what is not needed (needs_grad), without changing the rest."""
    x_np = rng.standard_normal((4, 2, 3))
    grads = []
    for freeze in (False, True):
        m = cls(3, 4, seed=0, dtype=np.float64)
        m.weight_ih_l0.requires_grad = not freeze
        m.bias_hh_l0.requires_grad = not freeze
        x = Tensor(x_np, requires_grad=True)
        out, _ = m(x)
        (out * out).sum().backward()
        if freeze:
            assert m.weight_ih_l0.grad is None and m.bias_hh_l0.grad is None
        grads.append([x.grad, m.weight_hh_l0.grad, m.bias_ih_l0.grad])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-13)


@ch08
def test_sigmoid_array_is_the_logistic_function():
    from tinylm.recurrence import sigmoid_array
    z = np.linspace(-30, 30, 121)
    np.testing.assert_allclose(sigmoid_array(z), sigmoid(z), rtol=1e-12, atol=1e-15)
    assert np.all(np.isfinite(sigmoid_array(np.array([-1e4, 1e4]))))
