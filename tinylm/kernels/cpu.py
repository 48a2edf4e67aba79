"""Numba kernels for the CPU: the formulas of ``reference.py``, fused into one pass each.

Each public function has the signature of its namesake in ``reference.py`` and gives the same
numbers (to rounding: a test compares them). What compiling buys: NumPy evaluates
``g * (cdf + x * pdf)`` as five passes over memory with four temporaries; a loop body does it
in one pass with none. Matrix products stay with BLAS (``np.dot``/``@`` in the callers);
these kernels fuse what sits around them.

Threads: the Numba kernels run on one thread; the cores belong to BLAS, which does the matrix
products between them. Measured on the 2-core development machine: a ``prange`` GELU made the
GPT step of ``bench_gpt_step.py`` 226 ms instead of 148 ms, Numba's two worker threads
fighting OpenBLAS's two for the same cores; at a GPT's sizes a fused pass takes well under a
millisecond anyway. The streaming attention at the end is NumPy + BLAS, not Numba: measured
faster (see its comment).

Compiled on first use for each dtype and cached on disk (``cache=True``), so only the first
run on a machine pays the compile time (``benchmarks/bench_kernels.py`` reports it).
``fastmath`` stays off (results must match the reference) except ``reassoc`` for the sums of
``_sum``. exp and the normal CDF come from ``vector_math.py``: in float32, arithmetic that
LLVM turns into SIMD code, where the C library's ``math.exp`` would run one element at a time.
"""
import math

import numpy as np
from numba import njit, vectorize

from . import reference
from .reference import GELU_TANH_C, GELU_TANH_K, INV_SQRT_2PI
from .vector_math import exp_nonpositive, normal_cdf


# float32 first: a ufunc takes the first loop its input casts to safely, so with float64
# listed first a float32 array would silently come back as float64
@vectorize(["float32(float32)", "float64(float64)"], cache=True)
def erf(x):
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, via the C library's ``erf``."""
    return math.erf(x)


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


# --- GELU ------------------------------------------------------------------------------------
# error_model="numpy" (no ZeroDivisionError check) and constants in the array's dtype (passed
# in by the caller): both are needed for LLVM to vectorise the float32 loop, see vector_math
@njit(cache=True, error_model="numpy")
def _gelu_exact(x, out, cdf):
    for i in range(x.size):
        c = normal_cdf(x[i])
        cdf[i] = c
        out[i] = x[i] * c


@njit(cache=True)
def _gelu_tanh(x, out, t):
    for i in range(x.size):
        xi = x[i]
        t[i] = math.tanh(GELU_TANH_C * (xi + GELU_TANH_K * xi * xi * xi))
        out[i] = 0.5 * xi * (1.0 + t[i])


@njit(cache=True, error_model="numpy")
def _gelu_exact_grad(x, cdf, g, out, neg_half, inv_sqrt_2pi):
    for i in range(x.size):
        xi = x[i]
        out[i] = g[i] * (cdf[i] + xi * exp_nonpositive(neg_half * xi * xi) * inv_sqrt_2pi)


@njit(cache=True)
def _gelu_tanh_grad(x, t, g, out):
    for i in range(x.size):
        xi = x[i]
        dinner = GELU_TANH_C * (1.0 + 3.0 * GELU_TANH_K * xi * xi)
        out[i] = g[i] * (0.5 * (1.0 + t[i]) + 0.5 * xi * (1.0 - t[i] * t[i]) * dinner)


def gelu_forward(x, approximate="none"):
    out, saved = np.empty(x.shape, dtype=x.dtype), np.empty(x.shape, dtype=x.dtype)
    (_gelu_tanh if approximate == "tanh" else _gelu_exact)(_flat(x), out.reshape(-1),
                                                             saved.reshape(-1))
    return out, saved


def gelu_backward(x, saved, g, approximate="none"):
    out = np.empty(x.shape, dtype=x.dtype)
    arrays = (_flat(x), _flat(saved), _flat(g.astype(x.dtype, copy=False)), out.reshape(-1))
    if approximate == "tanh":
        _gelu_tanh_grad(*arrays)
    else:
        f = x.dtype.type
        _gelu_exact_grad(*arrays, f(-0.5), f(INV_SQRT_2PI))
    return out


# --- softmax and log-softmax over rows ------------------------------------------------------
@njit(cache=True)
def _row_max(x, i):
    """max_j x[i, j]: the shift that keeps every exp(x - max) <= 1 (no overflow)."""
    m = x[i, 0]
    for j in range(1, x.shape[1]):
        m = max(m, x[i, j])
    return m


@njit(cache=True, fastmath={"reassoc"})
def _sum(a):
    """sum_j a[j] in float64. ``reassoc`` lets LLVM add in four lanes (a different order of
    the same sum: rounding differs from NumPy's pairwise sum by a few ulp) and only this
    function gets it, so the Cody-Waite exp elsewhere keeps its exact order of operations."""
    s = 0.0
    for j in range(a.size):
        s += a[j]
    return s


@njit(cache=True, error_model="numpy")
def _exp_shifted(row, m, out):
    """out_j = e^{row_j - m}, m = max(row): every exponent <= 0 (no overflow)."""
    for j in range(row.size):
        out[j] = exp_nonpositive(row[j] - m)


@njit(cache=True, error_model="numpy")
def _log_softmax_rows(x, out, log):
    n, c = x.shape
    for i in range(n):
        m = _row_max(x, i)
        _exp_shifted(x[i], m, out[i])
        s = _sum(out[i])
        if log:
            lse = m + math.log(s)
            for j in range(c):
                out[i, j] = x[i, j] - lse
        else:
            inv = out.dtype.type(1.0 / s)
            for j in range(c):
                out[i, j] *= inv


@njit(cache=True, error_model="numpy")
def _softmax_rows_grad(y, g, out, log):
    n, c = y.shape
    for i in range(n):
        if log:                         # y = log-softmax: dx = g - e^y sum(g)
            s = out.dtype.type(_sum(g[i]))
            _exp_shifted(y[i], out.dtype.type(0), out[i])
            for j in range(c):
                out[i, j] = g[i, j] - out[i, j] * s
        else:                           # y = softmax: dx = y (g - sum(g y))
            for j in range(c):
                out[i, j] = g[i, j] * y[i, j]
            s = out.dtype.type(_sum(out[i]))
            for j in range(c):
                out[i, j] = y[i, j] * (g[i, j] - s)


def _rows_op(kernel, first, *rest, log):
    a = np.ascontiguousarray(first)
    out = np.empty_like(a)
    kernel(a.reshape(-1, a.shape[-1]),
           *(np.ascontiguousarray(r, dtype=a.dtype).reshape(-1, a.shape[-1]) for r in rest),
           out.reshape(-1, a.shape[-1]), log)
    return out


def log_softmax_forward(x):
    return _rows_op(_log_softmax_rows, x, log=True)


def log_softmax_backward(out, g):
    return _rows_op(_softmax_rows_grad, out, g, log=True)


def softmax_forward(x):
    return _rows_op(_log_softmax_rows, x, log=False)


def softmax_backward(y, g):
    return _rows_op(_softmax_rows_grad, y, g, log=False)


# --- cross-entropy fused with log-softmax -----------------------------------------------
@njit(cache=True, error_model="numpy")
def _cross_entropy_rows(x, target, valid, smoothing, loss, lse):
    n, c = x.shape
    exps = np.empty(c, dtype=x.dtype)
    for i in range(n):
        m = _row_max(x, i)
        _exp_shifted(x[i], m, exps)
        log_sum = math.log(_sum(exps))
        lse[i] = m + log_sum
        if valid[i]:
            # lse - (1-eps) x_t - eps mean(x), written around the max m: (m - x_t) is exact,
            # where lse - x_t would lose the small loss under large logits (|x| ~ 1e4 in float32)
            loss[i] = log_sum + (1.0 - smoothing) * (m - x[i, target[i]])
            if smoothing:       # (skipped at 0: a -inf logit would make it 0 * inf = NaN)
                loss[i] += smoothing * (m - _sum(x[i]) / c)
        else:
            loss[i] = 0.0


@njit(cache=True, error_model="numpy")
def _cross_entropy_rows_grad(x, lse, target, valid, smoothing, row_scale, out):
    n, c = x.shape
    for i in range(n):
        if not valid[i]:
            for j in range(c):
                out[i, j] = 0.0
            continue
        scale = row_scale[i]
        uniform = out.dtype.type(smoothing / c)
        _exp_shifted(x[i], lse[i], out[i])          # softmax = e^{x - lse}
        for j in range(c):
            out[i, j] = (out[i, j] - uniform) * scale
        out[i, target[i]] -= (1.0 - smoothing) * scale


def cross_entropy_forward(logits, target, valid, smoothing):
    x = np.ascontiguousarray(logits)
    loss = np.empty(len(x), dtype=x.dtype)
    lse = np.empty(len(x), dtype=x.dtype)
    _cross_entropy_rows(x, np.ascontiguousarray(target, dtype=np.int64), valid, smoothing,
                        loss, lse)
    return loss, lse


def cross_entropy_backward(logits, lse, target, valid, smoothing, row_scale):
    x = np.ascontiguousarray(logits)
    out = np.empty_like(x)
    scale = np.broadcast_to(np.asarray(row_scale, dtype=x.dtype), (len(x),))
    _cross_entropy_rows_grad(x, lse, np.ascontiguousarray(target, dtype=np.int64), valid,
                             smoothing, np.ascontiguousarray(scale), out)
    return out


# --- layer normalisation over rows ---------------------------------------------------------
@njit(cache=True, fastmath={"reassoc"})
def _sum_squared_deviations(a, mu):
    """sum_j (a[j] - mu)^2 in float64, in four lanes (see ``_sum``)."""
    s = 0.0
    for j in range(a.size):
        d = a[j] - mu
        s += d * d
    return s


@njit(cache=True, error_model="numpy")
def _layer_norm_rows(x, eps, out, inv_std):
    n, c = x.shape
    for i in range(n):
        mu = _sum(x[i]) / c
        # two passes: no cancellation as in E[x^2] - mu^2
        r = 1.0 / math.sqrt(_sum_squared_deviations(x[i], mu) / c + eps)
        inv_std[i, 0] = r
        for j in range(c):
            out[i, j] = (x[i, j] - mu) * r


@njit(cache=True, fastmath={"reassoc"})
def _dot(a, b):
    """sum_j a[j] b[j] in float64, in four lanes (see ``_sum``)."""
    s = 0.0
    for j in range(a.size):
        s += a[j] * b[j]
    return s


@njit(cache=True, error_model="numpy")
def _layer_norm_rows_grad(x_hat, inv_std, g, out):
    n, c = x_hat.shape
    for i in range(n):
        mean_g = out.dtype.type(_sum(g[i]) / c)
        mean_gx = out.dtype.type(_dot(g[i], x_hat[i]) / c)
        for j in range(c):
            out[i, j] = (g[i, j] - mean_g - x_hat[i, j] * mean_gx) * inv_std[i, 0]


def layer_norm_forward(x, eps):
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    inv_std = np.empty((len(x), 1), dtype=x.dtype)
    _layer_norm_rows(x, eps, out, inv_std)
    return out, inv_std


def layer_norm_backward(x_hat, inv_std, g):
    out = np.empty_like(x_hat)
    _layer_norm_rows_grad(x_hat, inv_std, np.ascontiguousarray(g, dtype=x_hat.dtype), out)
    return out


# --- embedding backward ----------------------------------------------------------------------
@njit(cache=True)
def _scatter_rows(g, ids, out):
    # serial on purpose: two rows of g may add into the same row of out (a repeated id)
    for i in range(ids.size):
        r = ids[i]
        for j in range(g.shape[1]):
            out[r, j] += g[i, j]


def embedding_backward(g, ids, num_rows):
    g = np.ascontiguousarray(g)
    out = np.zeros((num_rows, g.shape[-1]), dtype=g.dtype)
    _scatter_rows(g, np.ascontiguousarray(ids, dtype=np.int64), out)
    return out


# --- Adam / AdamW ----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _adam(p, g, m, v, lr, beta1, beta2, eps, bias1, bias2_sqrt, weight_decay, decoupled):
    # every scalar arrives in p's dtype, so a float32 loop stays float32, and with
    # error_model="numpy" (no ZeroDivisionError check in the loop) LLVM vectorises it
    one = p.dtype.type(1.0)
    step_size = lr / bias1
    shrink = one - lr * weight_decay
    for i in range(p.size):
        gi = g[i]
        if decoupled:
            p[i] *= shrink
        else:
            gi += weight_decay * p[i]
        m[i] = beta1 * m[i] + (one - beta1) * gi
        v[i] = beta2 * v[i] + (one - beta2) * gi * gi
        p[i] -= step_size * (m[i] / (math.sqrt(v[i]) / bias2_sqrt + eps))


def adam_step(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled, v_max=None):
    if v_max is not None or not all(a.flags.c_contiguous for a in (p, g, m, v)):
        # AMSGrad, or arrays the flat views below cannot alias: the reference's arithmetic
        return reference.adam_step(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay,
                                   decoupled, v_max)
    f = p.dtype.type
    p, g, m, v = (a.reshape(-1) for a in (p, g, m, v))     # views: the arrays are contiguous
    _adam(p, g, m, v, f(lr), f(beta1), f(beta2), f(eps), f(1 - beta1 ** step),
          f(math.sqrt(1 - beta2 ** step)), f(weight_decay), decoupled)


# --- one step of the LSTM and GRU backward --------------------------------------------------
# No transcendental function here (the forward saved tanh(c_t) and the activated gates), so
# the loop is plain arithmetic that LLVM vectorises: one pass instead of NumPy's dozen.
@njit(cache=True)
def lstm_cell_backward(gates, tanh_c, c_prev, dh, dc, d_pre):
    B, H = dh.shape
    one = gates.dtype.type(1)
    for b in range(B):
        for j in range(H):
            i, f = gates[b, j], gates[b, H + j]
            g, o = gates[b, 2 * H + j], gates[b, 3 * H + j]
            tc = tanh_c[b, j]
            c = dc[b, j] + dh[b, j] * o * (one - tc * tc)
            d_pre[b, j] = c * g * i * (one - i)
            d_pre[b, H + j] = c * c_prev[b, j] * f * (one - f)
            d_pre[b, 2 * H + j] = c * i * (one - g * g)
            d_pre[b, 3 * H + j] = dh[b, j] * tc * o * (one - o)
            dc[b, j] = c * f


@njit(cache=True)
def gru_cell_backward(rzn, u, h_prev, dh, d_x, d_h):
    B, H = dh.shape
    one = rzn.dtype.type(1)
    for b in range(B):
        for j in range(H):
            r, z, n = rzn[b, j], rzn[b, H + j], rzn[b, 2 * H + j]
            d = dh[b, j]
            dan = d * (one - z) * (one - n * n)
            d_x[b, j] = d_h[b, j] = dan * u[b, j] * r * (one - r)
            d_x[b, H + j] = d_h[b, H + j] = d * (h_prev[b, j] - n) * z * (one - z)
            d_x[b, 2 * H + j] = dan
            d_h[b, 2 * H + j] = dan * r
            dh[b, j] = d * z


# --- attention: streaming, online softmax over tiles of queries x keys ---------------------
# A first version ran one query row at a time in Numba (the FlashAttention loop written out):
# 1008 ms for the causal forward at T = 2048 against the naive formula's 927 ms, because a row
# at a time re-reads every key for every query and Numba's scalar exp cannot keep up with
# NumPy's SIMD one. Tiles of TILE queries x TILE keys turn the work into BLAS products of
# (TILE x d) @ (d x TILE) and NumPy passes over TILE x TILE scores: the memory stays
# O(TILE^2 + T d) per head instead of O(T^2), and the products run at BLAS speed.
TILE = 256


def _tile_scores(qb, k, ks, ke, qs, causal, offset):
    """Scores of queries qs.. (already scaled) against keys ks:ke, -inf above the causal line."""
    s = qb @ k[:, ks:ke].swapaxes(-1, -2)
    if causal and ke - 1 > qs + offset:           # some key in the tile is in the future
        rows = np.arange(qs, qs + qb.shape[1])[:, None]
        s = np.where(np.arange(ks, ke)[None, :] <= rows + offset, s, -np.inf)
    return s


def _key_stop(qe, n_k, causal, offset):
    """One past the last key the query tile ending at ``qe`` may see (its last query,
    qe - 1, sees keys up to qe - 1 + offset)."""
    return min(n_k, qe + offset) if causal else n_k


def attention_forward(q, k, v, scale, causal_offset=None):
    """The online softmax: for each tile of queries, the running max m, running sum l and
    running output acc are rescaled by exp(m_old - m_new) whenever a tile of keys raises the
    max, so after the last tile acc / l is exactly softmax(Q K^T * scale) V."""
    q3, k3, v3 = _heads(q), _heads(k), _heads(v)
    causal, offset = causal_offset is not None, int(causal_offset or 0)
    bh, n_q, _ = q3.shape
    out = np.empty((bh, n_q, v3.shape[-1]), dtype=q.dtype)
    lse = np.empty((bh, n_q), dtype=q.dtype)
    for qs in range(0, n_q, TILE):
        qe = min(qs + TILE, n_q)
        qb = q3[:, qs:qe] * q.dtype.type(scale)
        m = np.full((bh, qe - qs), -np.inf, dtype=q.dtype)
        total = np.zeros((bh, qe - qs), dtype=q.dtype)
        acc = np.zeros((bh, qe - qs, v3.shape[-1]), dtype=q.dtype)
        stop = _key_stop(qe, k3.shape[1], causal, offset)
        for ks in range(0, stop, TILE):
            ke = min(ks + TILE, stop)
            s = _tile_scores(qb, k3, ks, ke, qs, causal, offset)
            m_new = np.maximum(m, s.max(axis=-1))
            alpha = np.exp(m - m_new)                 # 0 on the first tile (m = -inf)
            p = np.exp(s - m_new[..., None])
            total = total * alpha + p.sum(axis=-1)
            acc = acc * alpha[..., None] + p @ v3[:, ks:ke]
            m = m_new
        out[:, qs:qe] = acc / total[..., None]
        lse[:, qs:qe] = m + np.log(total)
    return out.reshape(q.shape[:-1] + v.shape[-1:]), lse.reshape(q.shape[:-1])


def attention_backward(q, k, v, out, lse, g, scale, causal_offset=None):
    """Without the (L, S) weights: each tile of P = exp(S - lse) is rebuilt from q, k and the
    saved lse, then dS = P (g V^T - rowsum(g O)) gives the tiles of dQ, dK and dV."""
    q3, k3, v3 = _heads(q), _heads(k), _heads(v)
    g3, lse3 = _heads(g.astype(q.dtype, copy=False)), lse.reshape(q3.shape[:2])
    causal, offset = causal_offset is not None, int(causal_offset or 0)
    scale = q.dtype.type(scale)
    delta = (g3 * _heads(out)).sum(axis=-1)
    dq, dk, dv = np.zeros_like(q3), np.zeros_like(k3), np.zeros_like(v3)
    for qs in range(0, q3.shape[1], TILE):
        qe = min(qs + TILE, q3.shape[1])
        qb, gb = q3[:, qs:qe] * scale, g3[:, qs:qe]
        stop = _key_stop(qe, k3.shape[1], causal, offset)
        for ks in range(0, stop, TILE):
            ke = min(ks + TILE, stop)
            p = np.exp(_tile_scores(qb, k3, ks, ke, qs, causal, offset)
                       - lse3[:, qs:qe, None])
            dv[:, ks:ke] += p.swapaxes(-1, -2) @ gb
            ds = p * (gb @ v3[:, ks:ke].swapaxes(-1, -2) - delta[:, qs:qe, None])
            dq[:, qs:qe] += (ds @ k3[:, ks:ke]) * scale
            dk[:, ks:ke] += ds.swapaxes(-1, -2) @ qb
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)


def _heads(a):
    return np.ascontiguousarray(a).reshape((-1,) + a.shape[-2:])
