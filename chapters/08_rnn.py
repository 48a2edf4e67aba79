# %% [markdown]
# # Chapter 08: the recurrent network, and backpropagation through time
#
# A feed-forward network sees one fixed-size input. Text is a *sequence* of any length, and
# the meaning of a word depends on the words before it. A recurrent network (RNN) reads the
# sequence one step at a time and carries a **hidden state** `h_t`, a vector that summarises
# everything read so far (C6: sequence processing). The source document (000, sections 4.1.2
# and 4.2.2) writes the whole model in one line, A6:
#
#     h_t = sigma(W_x x_t + W_h h_{t-1} + b_h)
#
# with `sigma` "the activation function". The document draws it as the logistic sigmoid;
# almost every RNN in practice (Elman's, PyTorch's `nn.RNN` by default) uses `tanh`. We run
# both and let the numbers show the difference.
#
# This chapter shows
#
# 1. the cell, step by step on tiny numbers (sigmoid as written, and tanh);
# 2. unrolling over time: one cell, the same weights at every step;
# 3. backpropagation through time (BPTT), **derived** by hand, then checked three ways: the
#    hand NumPy BPTT, tinylm's autograd, and central finite differences (`tinylm.gradcheck`);
# 4. the library layer `tinylm.nn.RNN` computes exactly the hand cell with the same weights;
# 5. why plain RNNs forget: the gradient through `k` steps is a product of `k` Jacobians, and
#    its size goes like `radius^k`: it vanishes or explodes (figure
#    `08_vanishing_exploding.png`), and the sigmoid's derivative (at most 1/4) makes it
#    vanish faster still. Chapter 09's LSTM and GRU are the cure.
#
# Conventions: inputs have shape (batch, time, features), as everywhere in tinylm; the
# formulas are written for one column vector, the code multiplies batches of row vectors, so
# `W_x x_t` becomes `x_t @ W_x.T`.

# %%
import sys
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinylm as tl
from tinylm import functional as F
from tinylm.chapter import Chapter, plt
from tinylm.gradcheck import format_table, gradcheck
from tinylm.nn import RNN


# %% [markdown]
# ## The tools of this chapter
#
# The cell and its unrolled loop twice: in tinylm ops (so autograd can differentiate it) and
# in plain NumPy (for the hand-written BPTT). Then the hand BPTT itself, and the Jacobian
# products of section 5. The tests (`tests/test_chapters_08_09.py`, marker `ch08`) use them.

# %%
def _sigmoid_np(a):
    return 1 / (1 + np.exp(-a))


# name -> (f(a), f'(a) written with the output h = f(a), the same f in tinylm ops)
ACTIVATIONS = {
    "tanh": (np.tanh, lambda a, h: 1 - h ** 2, F.tanh),
    "sigmoid": (_sigmoid_np, lambda a, h: h * (1 - h), F.sigmoid),
    "linear": (lambda a: a, lambda a, h: np.ones_like(a), lambda a: a),
}


def rnn_cell(x, h, W_x, W_h, b, act="tanh"):
    """A6, one step: h_t = f(W_x x_t + W_h h_{t-1} + b_h), batches of row vectors.
    x (B, D), h (B, H), W_x (H, D), W_h (H, H), b (H,). tinylm ops: differentiable."""
    a = x @ W_x.T + h @ W_h.T + b
    return ACTIVATIONS[act][2](a)


def rnn_unroll(X, h0, W_x, W_h, b, act="tanh"):
    """A6 over a sequence: the same cell (the same weights) at every step.
    X (B, T, D) -> the list [h_1, ..., h_T], each (B, H)."""
    X = tl.Tensor(X) if not isinstance(X, tl.Tensor) else X
    hs, h = [], h0
    for t in range(X.shape[1]):
        h = rnn_cell(X[:, t], h, W_x, W_h, b, act)
        hs.append(h)
    return hs


def rnn_loss(X, Y, h0, W_x, W_h, b, V, act="tanh"):
    """The loss of section 3, in tinylm ops: a linear read-out y^_t = V h_t at every step and
    L = 1/(2B) sum_t sum_b ||y^_t - y_t||^2."""
    H = tl.stack(rnn_unroll(X, h0, W_x, W_h, b, act), axis=1)      # (B, T, H)
    E = H @ V.T - Y
    return 0.5 * (E * E).sum() / X.shape[0]


def rnn_forward_numpy(X, h0, W_x, W_h, b, act="tanh"):
    """A6 in plain NumPy. Returns hs (B, T+1, H) with hs[:, 0] = h0, hs[:, t] = h_t, and the
    pre-activations A (B, T, H), A[:, t-1] = a_t: what the backward pass needs."""
    f = ACTIVATIONS[act][0]
    B, T, _ = X.shape
    hs = np.zeros((B, T + 1, W_h.shape[0]))
    A = np.zeros((B, T, W_h.shape[0]))
    hs[:, 0] = h0
    for t in range(T):
        A[:, t] = X[:, t] @ W_x.T + hs[:, t] @ W_h.T + b
        hs[:, t + 1] = f(A[:, t])
    return hs, A


def bptt_numpy(X, Y, h0, W_x, W_h, b, V, act="tanh"):
    """Backpropagation through time by hand (section 3), for ``rnn_loss``.

    Going backwards from t = T, with g_t = V^T (y^_t - y_t) / B the part of dL/dh_t that
    comes straight from step t's output:

        dL/dh_t  = g_t + W_h^T delta_{t+1}          (nothing comes from beyond T)
        delta_t  = dL/dh_t * f'(a_t)                 (dL/da_t, elementwise)
        dL/dW_h  = sum_t delta_t h_{t-1}^T,  dL/dW_x = sum_t delta_t x_t^T,
        dL/db    = sum_t delta_t,            dL/dh_0 = W_h^T delta_1,
        dL/dV    = sum_t (y^_t - y_t) h_t^T / B

    Returns (loss, grads dict, dL/dh_t for t = 1..T as (B, T, H))."""
    dact = ACTIVATIONS[act][1]
    hs, A = rnn_forward_numpy(X, h0, W_x, W_h, b, act)
    B, T, _ = X.shape
    E = hs[:, 1:] @ V.T - Y                        # (B, T, O): y^_t - y_t
    loss = 0.5 * np.sum(E ** 2) / B
    G = E @ V / B                                  # g_t, (B, T, H)
    grads = {"W_x": np.zeros_like(W_x), "W_h": np.zeros_like(W_h), "b": np.zeros_like(b),
             "V": np.einsum("bto,bth->oh", E, hs[:, 1:]) / B}
    dL_dh = np.zeros((B, T, W_h.shape[0]))
    from_later = np.zeros_like(h0)                 # W_h^T delta_{t+1}
    for t in reversed(range(T)):                   # code index t is time step t + 1
        dL_dh[:, t] = G[:, t] + from_later
        delta = dL_dh[:, t] * dact(A[:, t], hs[:, t + 1])
        grads["W_h"] += delta.T @ hs[:, t]         # delta_t h_{t-1}^T (summed over the batch)
        grads["W_x"] += delta.T @ X[:, t]
        grads["b"] += delta.sum(axis=0)
        from_later = delta @ W_h                   # rows: (W_h^T delta_t)^T
    grads["h0"] = from_later
    return loss, grads, dL_dh


def orthogonal(n, rng):
    """A random orthogonal matrix (QR of a Gaussian one, signs fixed): all singular values 1,
    so radius * orthogonal(n) has spectral radius and spectral norm exactly ``radius``."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def jacobian_norms(W_h, T, act, rng, input_scale=0.1):
    """||dh_T/dh_{T-k}|| (spectral norm) for k = 0..T-1, along one trajectory of
    h_t = f(W_h h_{t-1} + u_t) with small random inputs u_t ~ N(0, input_scale^2).

    dh_t/dh_{t-1} = diag(f'(a_t)) W_h, so dh_T/dh_{T-k} = J_T J_{T-1} ... J_{T-k+1}."""
    f, dact, _ = ACTIVATIONS[act]
    n = W_h.shape[0]
    h = np.zeros(n)
    jacobians = []
    for _ in range(T):
        a = W_h @ h + input_scale * rng.standard_normal(n)
        h = f(a)
        jacobians.append(dact(a, h)[:, None] * W_h)
    norms, M = [1.0], np.eye(n)                    # k = 0: dh_T/dh_T = I
    for J in reversed(jacobians[1:]):
        M = M @ J
        norms.append(np.linalg.norm(M, 2))
    return np.array(norms)


def log_slope(norms, start=1):
    """The slope of log ||dh_T/dh_{T-k}|| against k (a straight line on the log plot):
    the average log-growth per step. Zero norms (underflow) are left out."""
    k = np.arange(len(norms))
    keep = (k >= start) & (norms > 0)
    return float(np.polyfit(k[keep], np.log(norms[keep]), 1)[0])


# %%
ch = Chapter(8, "The recurrent network and backpropagation through time")

# %% [markdown]
# ## 1. A6: one step of the cell, on tiny numbers
#
# Two input features, two hidden units. One step takes the current input `x_t` and the
# previous state `h_{t-1}`, mixes them with two weight matrices, adds a bias, and squashes:
#
#     a_t = W_x x_t + W_h h_{t-1} + b_h          (the pre-activation)
#     h_t = f(a_t)                               (f = sigma as written, or tanh)
#
# The sigmoid squashes into (0, 1), tanh into (-1, 1). A sigmoid state is never centred on
# zero (0.5 when nothing happens), and its slope is at most 1/4 (at a = 0), tanh's is at
# most 1: section 5 shows what that does to the gradient.

# %%
ch.section("1. A6  One step of the cell")
ch.formula("a_t = W_x x_t + W_h h_{t-1} + b_h",
           "h_t = sigma(a_t)   (as written)      or   h_t = tanh(a_t)   (the usual choice)")
ch.code(rnn_cell)
W_x1 = np.array([[0.5, -0.3],
                 [0.8, 0.2]])
W_h1 = np.array([[0.1, 0.4],
                 [-0.6, 0.3]])
b1 = np.array([0.0, 0.1])
x1 = np.array([1.0, 2.0])
h0_1 = np.array([0.5, -0.5])
Wx_x = W_x1 @ x1
Wh_h = W_h1 @ h0_1
a1 = Wx_x + Wh_h + b1
ch.show("x_1", x1)
ch.show("h_0", h0_1)
ch.show("W_x x_1 = [0.5*1 - 0.3*2, 0.8*1 + 0.2*2]", Wx_x)
ch.show("W_h h_0 = [0.1*0.5 - 0.4*0.5, -0.6*0.5 - 0.3*0.5]", Wh_h)
ch.show("a_1 = W_x x_1 + W_h h_0 + b_h", a1)
ch.show("h_1 = sigma(a_1)", _sigmoid_np(a1))
ch.show("h_1 = tanh(a_1)", np.tanh(a1))
ch.check("a_1 on paper = [-0.25, 0.85]", (a1, [-0.25, 0.85], 1e-15))
for act in ("sigmoid", "tanh"):
    h_tl = rnn_cell(tl.Tensor(x1[None]), tl.Tensor(h0_1[None]), tl.Tensor(W_x1),
                    tl.Tensor(W_h1), tl.Tensor(b1), act)
    ch.check(f"{act}: the tinylm cell == the NumPy formula",
             (h_tl.numpy()[0], ACTIVATIONS[act][0](a1), 1e-15))

# %% [markdown]
# ## 2. Unrolling over time
#
# A sequence `x_1 .. x_T` goes through the **same** cell T times; only the state changes.
# Drawn step by step ("unrolled"), an RNN is a T-layer feed-forward network whose layers all
# share one set of weights. That is how it handles any length with a fixed number of
# parameters, and it is also the graph autograd differentiates: T copies of the cell.
#
# For sequence processing (C6) the per-step states are the output: a read-out on each `h_t`
# predicts something at every step (tagging, the next word of a language model, chapter 12),
# or the last state `h_T` summarises the whole sequence (classification, chapter 13).

# %%
ch.section("2. Unrolling the cell over a sequence")
ch.code(rnn_unroll)
Xseq4 = np.array([[[1.0, 2.0], [0.0, -1.0], [0.5, 0.5], [-1.0, 0.0]]])    # B = 1, T = 4, D = 2
for act in ("sigmoid", "tanh"):
    hs_np, A_np = rnn_forward_numpy(Xseq4, h0_1[None], W_x1, W_h1, b1, act)
    hs_tl = rnn_unroll(Xseq4, tl.Tensor(h0_1[None]), tl.Tensor(W_x1), tl.Tensor(W_h1),
                       tl.Tensor(b1), act)
    print(f"{act}:   t  x_t            h_t")
    for t in range(4):
        print(f"          {t + 1}  {np.array2string(Xseq4[0, t], precision=2):14s} "
              f"{np.array2string(hs_np[0, t + 1], precision=4)}")
    ch.check(f"{act}: T = 4 unrolled in tinylm == the NumPy loop",
             (np.stack([h.numpy() for h in hs_tl], 1), hs_np[:, 1:], 1e-15))
ch.note("The sigmoid states sit around 0.5 and never go negative; the tanh states use both "
        "signs. The first step reproduces section 1 (same x_1, h_0).")
ch.check("step 1 of the unrolled tanh RNN == section 1's h_1",
         (hs_np[0, 1], np.tanh(a1), 1e-15))

# %% [markdown]
# ## 3. Backpropagation through time, derived
#
# Put a loss on the states: a linear read-out `y^_t = V h_t` at every step and
# `L = sum_t l_t`, `l_t = 1/(2B) sum ||y^_t - y_t||^2`. The weights appear at every step, so
# by the chain rule (C8, summing over paths) their gradient is a **sum over time**. Write
# `a_t` for the pre-activation and `delta_t = dL/da_t`.
#
# **The state gradient.** `h_t` influences the loss in two ways: directly through `l_t`, and
# through `a_{t+1} = W_x x_{t+1} + W_h h_t + b`, which carries it into every later step. So
#
#     dL/dh_t = g_t + W_h^T delta_{t+1},          g_t = dl_t/dh_t = V^T (y^_t - y_t) / B
#     delta_t = dL/dh_t * f'(a_t)                 (elementwise: h_t = f(a_t) unit by unit)
#
# with `delta_{T+1} = 0`. Equivalently `dL/dh_t = g_t + W_h^T (dL/dh_{t+1} * f'(a_{t+1}))`:
# one backward sweep from T down to 1 computes them all, each from the one after it.
# (f' written with the output: `tanh' = 1 - h^2`, `sigma' = h (1 - h)`.)
#
# **The weight gradients.** `a_t` depends on `W_h` through the product `W_h h_{t-1}` only
# (holding `h_{t-1}` fixed: its own dependence on `W_h` is already inside the sum over later
# steps), so `da_t,i / dW_h,ij = h_{t-1,j}`, and
#
#     dL/dW_h = sum_t delta_t h_{t-1}^T,   dL/dW_x = sum_t delta_t x_t^T,
#     dL/db_h = sum_t delta_t,             dL/dh_0 = W_h^T delta_1
#
# In code with batches of row vectors, `delta_t h_{t-1}^T` summed over the batch is
# `delta.T @ h_prev`, and `W_h^T delta` is `delta @ W_h`.

# %%
ch.section("3. BPTT: the hand derivation against autograd and finite differences")
ch.formula("dL/dh_t = g_t + W_h^T delta_{t+1},    delta_t = dL/dh_t * f'(a_t)",
           "dL/dW_h = sum_t delta_t h_{t-1}^T,   dL/dW_x = sum_t delta_t x_t^T",
           "dL/db = sum_t delta_t,               dL/dh_0 = W_h^T delta_1")
ch.code(bptt_numpy)
rng = np.random.default_rng(8)
B3, T3, D3, H3, O3 = 3, 6, 2, 4, 2
P = {"W_x": rng.normal(0, 0.6, (H3, D3)), "W_h": rng.normal(0, 0.5, (H3, H3)),
      "b": rng.normal(0, 0.1, H3), "V": rng.normal(0, 0.7, (O3, H3)),
      "h0": rng.normal(0, 0.3, (B3, H3))}
X = rng.standard_normal((B3, T3, D3))
Y = rng.standard_normal((B3, T3, O3))
names3 = ["W_x", "W_h", "b", "V", "h0"]
results = []
for act in ("tanh", "sigmoid"):
    loss_hand, g_hand, dL_dh = bptt_numpy(X, Y, P["h0"], P["W_x"], P["W_h"], P["b"],
                                          P["V"], act)
    leaves = {k: tl.Tensor(P[k].copy(), requires_grad=True) for k in names3}
    loss_tl = rnn_loss(X, Y, leaves["h0"], leaves["W_x"], leaves["W_h"], leaves["b"],
                       leaves["V"], act)
    loss_tl.backward()
    ch.show(f"{act}: L by hand / by tinylm", np.array([loss_hand, loss_tl.item()]), 10)
    ch.check(f"{act}: loss, hand == tinylm", (loss_hand, loss_tl, 1e-13))
    for k in names3:
        ch.check(f"{act}: dL/d{k}, hand BPTT == autograd", (g_hand[k], leaves[k].grad, 1e-13))
    if act == "tanh":
        ch.show("dL/dW_h by hand BPTT", g_hand["W_h"])
        ch.show("dL/dW_h by autograd", leaves["W_h"].grad)
        ch.show("||dL/dh_t||, t = 1..T (batch item 0)", np.linalg.norm(dL_dh[0], axis=1))
    fresh = [tl.Tensor(P[k].copy()) for k in names3]
    result = gradcheck(lambda f=fresh, act=act: rnn_loss(X, Y, f[4], f[0], f[1], f[2], f[3],
                                                         act),
                       fresh, name=f"RNN loss ({act}), T={T3}")
    results.append(result)
print(format_table(results))
ch.check("tinylm.gradcheck passes for the unrolled RNN (tanh and sigmoid)",
         all(r.passed for r in results),
         f"worst rel err {max(r.max_rel_err for r in results):.1e}")

# %% [markdown]
# Finite differences give the truth independently of both derivations. `gradcheck` compares
# autograd with them; here is the hand BPTT directly against a central difference, one
# entry of `W_h` at a time.

# %%
eps = 1e-6
numeric_Wh = np.zeros_like(P["W_h"])
for i in range(H3):
    for j in range(H3):
        for sign in (+1, -1):
            W = P["W_h"].copy()
            W[i, j] += sign * eps
            numeric_Wh[i, j] += sign * bptt_numpy(X, Y, P["h0"], P["W_x"], W, P["b"],
                                                  P["V"], "tanh")[0] / (2 * eps)
g_tanh = bptt_numpy(X, Y, P["h0"], P["W_x"], P["W_h"], P["b"], P["V"], "tanh")[1]
ch.show("dL/dW_h by central differences", numeric_Wh)
ch.check("tanh: hand BPTT dL/dW_h == central differences", (g_tanh["W_h"], numeric_Wh, 1e-8))

# %% [markdown]
# ## 4. `tinylm.nn.RNN` is the same cell
#
# The library layer follows PyTorch: `weight_ih_l0` is `W_x`, `weight_hh_l0` is `W_h`, and
# there are **two** bias vectors `bias_ih_l0 + bias_hh_l0` where A6 has one `b_h` (only their
# sum matters; PyTorch keeps two for compatibility with cuDNN). `nonlinearity="tanh"` is the
# default; `"sigmoid"` gives A6 as written. We load the hand weights (splitting `b_h` into
# two halves) and compare states and gradients.

# %%
ch.section("4. nn.RNN == the hand cell, with the same weights")
for act in ("tanh", "sigmoid"):
    layer = RNN(D3, H3, batch_first=True, nonlinearity=act, dtype=np.float64)
    layer.load_state_dict({"weight_ih_l0": P["W_x"], "weight_hh_l0": P["W_h"],
                           "bias_ih_l0": P["b"] / 2, "bias_hh_l0": P["b"] / 2})
    out, h_n = layer(tl.Tensor(X), tl.Tensor(P["h0"][None]))
    hs_np, _ = rnn_forward_numpy(X, P["h0"], P["W_x"], P["W_h"], P["b"], act)
    ch.show(f"{act}: output shape, h_n shape", f"{out.shape}, {h_n.shape}")
    ch.check(f"{act}: nn.RNN output == the hand states h_1..h_T",
             (out.numpy(), hs_np[:, 1:], 1e-13))
    ch.check(f"{act}: nn.RNN h_n == h_T", (h_n.numpy()[0], hs_np[:, -1], 1e-13))
    E = out @ tl.Tensor(P["V"]).T - Y
    (0.5 * (E * E).sum() / B3).backward()
    g = bptt_numpy(X, Y, P["h0"], P["W_x"], P["W_h"], P["b"], P["V"], act)[1]
    ch.check(f"{act}: nn.RNN weight_hh_l0.grad == hand dL/dW_h",
             (layer.weight_hh_l0.grad, g["W_h"], 1e-13))
    ch.check(f"{act}: bias_ih_l0.grad == bias_hh_l0.grad == hand dL/db",
             (np.stack([layer.bias_ih_l0.grad, layer.bias_hh_l0.grad]),
              np.stack([g["b"], g["b"]]), 1e-13))
ch.note("nn.RNN runs the whole sequence as one fused Function with its own hand-written "
        "BPTT (tinylm/recurrence.py); gradcheck checks it against finite differences too:")
layer = RNN(D3, H3, batch_first=True, seed=0, dtype=np.float64)
X_leaf = tl.Tensor(X.copy())
layer_check = gradcheck(lambda: layer(X_leaf)[0], [X_leaf] + list(layer.parameters()),
                        name="nn.RNN (tanh), batch_first")
print(format_table([layer_check]))
ch.check("nn.RNN's fused backward passes gradcheck", layer_check.passed,
         f"rel err {layer_check.max_rel_err:.1e}")

# %% [markdown]
# ## 5. Why a plain RNN forgets: vanishing and exploding gradients
#
# Unroll the recursion of section 3 without the direct terms: the gradient that reaches
# `h_t` from a loss at step T is `(dh_T/dh_t)^T dL/dh_T`, and
#
#     dh_T/dh_t = J_T J_{T-1} ... J_{t+1},      J_s = dh_s/dh_{s-1} = diag(f'(a_s)) W_h
#
# a product of `k = T - t` Jacobians. Each factor is `W_h` shrunk row by row by `f'`.
#
# * **Linearised** (f' = 1: the identity, or tanh near 0): the product is `W_h^k`. With
#   `W_h = r Q`, `Q` orthogonal, `||W_h^k|| = r^k` exactly: a straight line of slope `log r`
#   on a log plot. `r < 1` vanishes exponentially, `r > 1` explodes.
# * **tanh**: `0 < f' <= 1`, so `||dh_T/dh_t|| <= r^k`; saturated units (|a| large, f' ~ 0)
#   cut the product further. Even `r > 1` cannot explode for ever: the states saturate.
# * **sigmoid** (A6 as written): `f' = h (1 - h) <= 1/4`, so `||dh_T/dh_t|| <= (r/4)^k`:
#   it vanishes even for `r` up to 4, and loses at least `log 4 = 1.39` per step more than
#   the linear case.
#
# The learning signal from a word 20 steps back is multiplied by something like
# `(r/4)^20`; this is why the RNN cannot learn long-range dependencies (Bengio et al. 1994,
# Pascanu et al. 2013), and why chapter 09's gated cells add a path with f' = 1 (the cell
# state). Exploding gradients are tamed by clipping (`tinylm.optim.clip_grad_norm_`).

# %%
ch.section("5. Vanishing and exploding gradients: ||dh_T/dh_{T-k}|| against k")
ch.formula("dh_T/dh_t = prod_{s=t+1..T} diag(f'(a_s)) W_h,     W_h = r Q  (Q orthogonal)",
           "linear: ||.|| = r^k;  tanh: <= r^k;  sigmoid: <= (r/4)^k")
ch.code(jacobian_norms)
n_hidden = 16 if ch.quick else 32
n_steps5 = 30 if ch.quick else 60
radii = [0.5, 0.9, 1.0, 1.1, 1.5]
Q_orth = orthogonal(n_hidden, np.random.default_rng(5))
curves, slopes = {}, {}
for act in ("linear", "tanh", "sigmoid"):
    for r in radii:
        norms = jacobian_norms(r * Q_orth, n_steps5, act, np.random.default_rng(50))
        curves[act, r] = norms
        slopes[act, r] = log_slope(norms)
print(f"{'radius r':>9} {'log r':>8} | {'slope: linear':>14} {'tanh':>8} {'sigmoid':>8} | "
      f"{'log(r/4)':>9} | ||dh_T/dh_(T-20)||: tanh, sigmoid")
for r in radii:
    print(f"{r:9.2f} {np.log(r):8.3f} | {slopes['linear', r]:14.4f} {slopes['tanh', r]:8.4f} "
          f"{slopes['sigmoid', r]:8.4f} | {np.log(r / 4):9.3f} | "
          f"{curves['tanh', r][20]:.2e}, {curves['sigmoid', r][20]:.2e}")
ch.check("linear: the slope of log||dh_T/dh_t|| is log r (all radii)",
         all(abs(slopes["linear", r] - np.log(r)) < 1e-8 for r in radii),
         "max |slope - log r| = "
         f"{max(abs(slopes['linear', r] - np.log(r)) for r in radii):.1e}")
ch.check("tanh, small states (r <= 0.9): slope ~ log r (within 0.05)",
         all(abs(slopes["tanh", r] - np.log(r)) < 0.05 for r in (0.5, 0.9)))
ch.check("tanh never exceeds the linear bound r^k",
         all(np.all(curves["tanh", r] <= r ** np.arange(n_steps5) * (1 + 1e-9)) for r in radii))
ch.check("sigmoid stays under (r/4)^k: it vanishes for every r here, even r = 1.5",
         all(np.all(curves["sigmoid", r] <= (r / 4) ** np.arange(n_steps5) * (1 + 1e-9))
             for r in radii) and curves["sigmoid", 1.5][-1] < 1e-10,
         f"sigmoid, r = 1.5: ||dh_T/dh_1|| = {curves['sigmoid', 1.5][-1]:.1e}")
ch.check("linear r = 1.5 explodes: ||dh_T/dh_1|| = 1.5^(T-1)",
         (np.log(curves["linear", 1.5][-1]), (n_steps5 - 1) * np.log(1.5), 1e-9),
         f"{curves['linear', 1.5][-1]:.2e}")

fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
ks = np.arange(n_steps5)
for ax, act in zip(axes, ("linear", "tanh", "sigmoid")):
    for i, r in enumerate(radii):
        ax.semilogy(ks, np.maximum(curves[act, r], 1e-300), f"C{i}", label=f"r = {r}")
        if act != "linear":
            ax.semilogy(ks, r ** ks.astype(float) * (0.25 ** ks if act == "sigmoid" else 1),
                        f"C{i}:", linewidth=0.8)
    ax.set_title({"linear": "linear (f' = 1): exactly r^k",
                  "tanh": "tanh (dotted: bound r^k)",
                  "sigmoid": "sigmoid, A6 as written (dotted: (r/4)^k)"}[act])
    ax.set_xlabel("distance k = T - t")
    ax.set_ylim(1e-30, 1e12)
    ax.grid(True, which="major", alpha=0.3)
axes[0].set_ylabel("||dh_T / dh_t||  (spectral norm)")
axes[0].legend(title="W_h = r Q")
fig.suptitle(f"gradient through k steps of an RNN, {n_hidden} hidden units")
ch.savefig(fig, "08_vanishing_exploding.png")

# %% [markdown]
# Read the figure: with `f' = 1` every radius gives a straight line, `r^k`. tanh bends the
# lines down (saturation): `r = 1.1` stays near 1 and `r = 1.5` still grows, but at a slope
# of about 0.08 per step instead of `log 1.5 = 0.41` (the states saturate and `f'` shrinks
# to balance the growth); nothing stops `r < 1` from vanishing, at the linear rate. The
# sigmoid curves all fall at least as fast as `(r/4)^k`: after 20 steps the signal is below
# `1e-8` even for `r = 1.5`. A6 as written (sigmoid) is the worst of the three for learning
# long-range dependencies.

# %%
ch.finish()
