"""The hot ops in plain NumPy, each the formula as a reader would write it.

These are what ``kernels/cpu.py`` (Numba) must reproduce: a test runs both on the same input
and compares them, and ``TINYLM_KERNELS=reference`` makes tinylm run these instead. They work
on any array module (``xp``: NumPy, or CuPy on a GPU). Rows are the last axis: callers pass
2-D arrays (rows, features), a reshape of their (..., features) data.

Every ``*_forward`` returns what its ``*_backward`` needs; nothing here keeps state.
"""
import math

import numpy as np

from ..backend import get_array_module
from ..tensor import scatter_add

SQRT_HALF = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_TANH_C = math.sqrt(2.0 / math.pi)
GELU_TANH_K = 0.044715


def _erf(x):
    from . import erf       # NumPy has no erf; the package picks Numba's or CuPy's
    return erf(x)


# --- GELU: x Phi(x) -----------------------------------------------------------------------
def gelu_forward(x, approximate="none"):
    """GELU(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2; ``"tanh"``: GPT-2's
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Returns ``(y, saved)``: ``saved`` is
    Phi(x) (or the tanh), which the backward needs and which costs an erf to recompute."""
    xp = get_array_module(x)
    if approximate == "tanh":
        t = xp.tanh(GELU_TANH_C * (x + GELU_TANH_K * x * x * x))
        return 0.5 * x * (1 + t), t
    cdf = 0.5 * (1 + _erf(x * SQRT_HALF))
    return x * cdf, cdf


def gelu_backward(x, saved, g, approximate="none"):
    """dGELU/dx = Phi(x) + x phi(x) (exact); the tanh form's derivative by the chain rule."""
    xp = get_array_module(x)
    if approximate == "tanh":
        dinner = GELU_TANH_C * (1 + 3 * GELU_TANH_K * x * x)
        return g * (0.5 * (1 + saved) + 0.5 * x * (1 - saved * saved) * dinner)
    pdf = xp.exp(-0.5 * x * x) * INV_SQRT_2PI
    return g * (saved + x * pdf)


# --- softmax and log-softmax over the last axis --------------------------------------------
def log_softmax_forward(x):
    """log softmax(x)_i = x_i - m - log sum_j e^(x_j - m), m = max_j x_j (stable)."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_backward(out, g):
    """dx = g - softmax(x) sum(g), with softmax(x) = exp(out)."""
    return g - get_array_module(out).exp(out) * g.sum(axis=-1, keepdims=True)


def softmax_forward(x):
    """softmax(x)_i = e^(x_i - m) / sum_j e^(x_j - m)."""
    return get_array_module(x).exp(log_softmax_forward(x))


def softmax_backward(y, g):
    """dx = y * (g - sum(g y)) (the Jacobian diag(y) - y y^T applied to g)."""
    return y * (g - (g * y).sum(axis=-1, keepdims=True))


# --- cross-entropy fused with log-softmax (C4) -----------------------------------------------
def cross_entropy_forward(logits, target, valid, smoothing):
    """Per-row loss and log-sum-exp of ``logits`` (N, C) with integer ``target`` (N,).

    loss_i = lse_i - (1 - e) x_(i, t_i) - e mean_j x_(i, j) (= -(1-e) log p_t - e mean log p),
    0 where ``valid`` is False; lse_i = log sum_j e^(x_ij). Returns ``(loss, lse)``."""
    xp = get_array_module(logits)
    m = logits.max(axis=-1, keepdims=True)
    lse = (m + xp.log(xp.exp(logits - m).sum(axis=-1, keepdims=True)))[:, 0]
    picked = logits[xp.arange(len(target)), xp.where(valid, target, 0)]
    loss = lse - (1 - smoothing) * picked
    if smoothing:
        loss = loss - smoothing * logits.mean(axis=-1)
    return loss * valid, lse


def cross_entropy_backward(logits, lse, target, valid, smoothing, row_scale):
    """d loss / d logits = (softmax(x) - (1 - e) onehot(t) - e / C) * row_scale_i, 0 on
    ignored rows: one array the size of the logits."""
    xp = get_array_module(logits)
    grad = xp.exp(logits - lse[:, None])
    grad[xp.arange(len(target)), xp.where(valid, target, 0)] -= 1 - smoothing
    if smoothing:
        grad -= smoothing / logits.shape[-1]
    grad *= (valid * row_scale)[:, None]
    return grad


# --- layer normalisation over the last axis (A9, D5, A11) ---------------------------------
def layer_norm_forward(x, eps):
    """x_hat = (x - mean) / sqrt(var + eps) per row; returns ``(x_hat, inv_std)``."""
    xp = get_array_module(x)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    inv_std = 1 / xp.sqrt(var + eps)
    return (x - mu) * inv_std, inv_std


def layer_norm_backward(x_hat, inv_std, g):
    """A11: dx = (g - mean(g) - x_hat mean(g x_hat)) / sqrt(var + eps)."""
    mean_g = g.mean(axis=-1, keepdims=True)
    mean_gx = (g * x_hat).mean(axis=-1, keepdims=True)
    return (g - mean_g - x_hat * mean_gx) * inv_std


# --- embedding backward (A10) --------------------------------------------------------------
def embedding_backward(g, ids, num_rows):
    """dW = one_hot(ids)^T g: row ``ids[i]`` of a zero (num_rows, D) array gets ``g[i]``
    added, repeated ids adding up (``add.at``, not assignment)."""
    return scatter_add(g, ids, (num_rows, g.shape[-1]))


# --- Adam / AdamW step ---------------------------------------------------------------------
def adam_step(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled, v_max=None):
    """One Adam(W) update of the arrays ``p``, ``m``, ``v`` in place, given ``g``:

        AdamW: p <- p (1 - lr wd)           Adam: g <- g + wd p
        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
        AMSGrad (``v_max`` given): v_max <- max(v_max, v), used below in place of v
        p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    grouped as PyTorch groups it, so the two agree to the last bits."""
    xp = get_array_module(p)
    if weight_decay:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    if v_max is not None:          # never let the denominator shrink: the largest v so far
        xp.maximum(v_max, v, out=v_max)
        v = v_max
    denom = xp.sqrt(v) / math.sqrt(1 - beta2 ** step)
    denom += eps
    p -= lr / (1 - beta1 ** step) * (m / denom)


# --- one step of the LSTM and GRU backward (B3, A11), the gate arithmetic -----------------
# The sequence loops live in ``tinylm/recurrence.py``; each step there is one BLAS product
# (the recurrent weights) and this arithmetic around it, which is where NumPy spends a dozen
# passes with temporaries and a fused kernel spends one.
def lstm_cell_backward(gates, tanh_c, c_prev, dh, dc, d_pre):
    """One LSTM step backwards. ``gates`` (B, 4H): the activated i, f, g, o of the step;
    ``tanh_c`` = tanh(c_t); ``c_prev`` = c_{t-1}; ``dh`` = dL/dh_t (everything that reaches
    h_t); ``dc`` = dL/dc_t from step t+1, UPDATED IN PLACE to dL/dc_{t-1}; ``d_pre`` (B, 4H)
    receives dL/dA_t, the gradient of the four pre-activations:

        dc   = dc_{t+1} f_{t+1} + dh o (1 - tanh(c_t)^2)
        dA_t = [dc g i (1-i),  dc c_{t-1} f (1-f),  dc i (1 - g^2),  dh tanh(c_t) o (1-o)]
    """
    H = dh.shape[-1]
    i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
    dc += dh * o * (1 - tanh_c * tanh_c)
    d_pre[:, :H] = dc * g * i * (1 - i)
    d_pre[:, H:2 * H] = dc * c_prev * f * (1 - f)
    d_pre[:, 2 * H:3 * H] = dc * i * (1 - g * g)
    d_pre[:, 3 * H:] = dh * tanh_c * o * (1 - o)
    dc *= f


def gru_cell_backward(rzn, u, h_prev, dh, d_x, d_h):
    """One GRU step backwards. ``rzn`` (B, 3H): the activated r, z, n of the step;
    ``u`` = W_hn h_{t-1} + b_hn; ``dh`` = dL/dh_t, UPDATED IN PLACE to its direct part
    dh z (the caller adds W_hh^T d_h); ``d_x`` and ``d_h`` (B, 3H) receive the gradients of
    the input part and of the recurrent part of the pre-activations:

        dan = dh (1 - z) (1 - n^2),   dar = dan u r (1-r),   daz = dh (h_{t-1} - n) z (1-z)
        d_x = [dar, daz, dan],        d_h = [dar, daz, dan r]
    """
    H = dh.shape[-1]
    r, z, n = rzn[:, :H], rzn[:, H:2 * H], rzn[:, 2 * H:]
    dan = dh * (1 - z) * (1 - n * n)
    d_x[:, :H] = d_h[:, :H] = dan * u * r * (1 - r)
    d_x[:, H:2 * H] = d_h[:, H:2 * H] = dh * (h_prev - n) * z * (1 - z)
    d_x[:, 2 * H:] = dan
    d_h[:, 2 * H:] = dan * r
    dh *= z


# --- attention (A8 / D4 / E4), the naive formula the fused kernel is tested against --------
def causal_mask(n_queries, n_keys, offset=0, xp=None):
    """Boolean (n_queries, n_keys), True where query i may see key j: j <= i + offset, made
    with array module ``xp`` (NumPy by default; CuPy for scores on a GPU).

    offset 0 is PyTorch's ``is_causal`` (top-left aligned); with a key/value cache the
    queries are the LAST n_queries positions, offset = n_keys - n_queries.
    """
    xp = np if xp is None else xp
    return xp.tril(xp.ones((n_queries, n_keys), dtype=bool), k=offset)


def _scores(q, k, scale, causal_offset):
    """Q K^T * scale, -inf where key j > query i + offset (``None``: no mask)."""
    xp = get_array_module(q)
    s = (q @ k.swapaxes(-1, -2)) * scale
    if causal_offset is None:
        return s
    L, S = s.shape[-2:]
    return xp.where(causal_mask(L, S, causal_offset, xp), s, -xp.inf)


def attention_forward(q, k, v, scale, causal_offset=None):
    """O = softmax(Q K^T * scale, masked: key j > query i + offset) V over (BH, L, d) arrays
    (``causal_offset=None``: no mask). Materialises the (BH, L, S) scores: O(L S) memory.
    Returns ``(O, lse)``, lse the per-row log-sum-exp of the scores (what the backward
    needs to rebuild the weights)."""
    xp = get_array_module(q)
    s = _scores(q, k, scale, causal_offset)
    m = s.max(axis=-1, keepdims=True)
    lse = m + xp.log(xp.exp(s - m).sum(axis=-1, keepdims=True))
    return xp.exp(s - lse) @ v, lse[..., 0]


def attention_backward(q, k, v, out, lse, g, scale, causal_offset=None):
    """dQ, dK, dV of the same: P = exp(S - lse), dV = P^T g, dP = g V^T,
    dS = P (dP - rowsum(g O)), dQ = dS K scale, dK = dS^T Q scale."""
    p = get_array_module(q).exp(_scores(q, k, scale, causal_offset) - lse[..., None])
    dv = p.swapaxes(-1, -2) @ g
    dp = g @ v.swapaxes(-1, -2)
    ds = p * (dp - (g * out).sum(axis=-1, keepdims=True))
    return (ds @ k) * scale, (ds.swapaxes(-1, -2) @ q) * scale, dv
