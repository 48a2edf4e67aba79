"""CUDA kernels for CuPy arrays: the formulas of ``reference.py``, one pass each on the GPU.

Each public function has the signature of its namesake in ``reference.py`` and returns the
same values (to rounding: ``tests/test_gpu.py`` compares them on a GPU), so
``kernels.kernel(name, *arrays)`` hands CuPy arrays here as it hands NumPy arrays to
``cpu.py``. Matrix products are not here: ``a @ b`` on CuPy arrays is ``cupy.matmul``, which
calls cuBLAS, and the engine's ``MatMul`` already shapes them as single large products.

How the kernels are written. Each is CUDA C++ in a string, templated on the element type
``T`` (``float`` or ``double``), compiled by CuPy (NVRTC) the first time it is used and cached
on disk by CuPy. Three launch shapes cover them all:

* elementwise (GELU, Adam, the LSTM/GRU gate arithmetic, the embedding scatter): a
  grid-stride loop, ``BLOCK`` threads per block, each thread taking every
  (gridDim * BLOCK)-th element;
* one block per row (softmax, log-softmax, cross-entropy, layer norm): ``BLOCK`` threads walk
  the row together, and the row's max and sums come from a block reduction through shared
  memory (``block_sum`` / ``block_max`` below: halve the active threads each round);
* attention: one block per (head, tile of queries) in the forward, per (head, tile of keys) in
  the backward, with tiles of keys, values and queries staged in shared memory (see there).

Scalars are passed as NumPy scalars of the array's dtype, sizes as int64, so the C types match
exactly what the kernel declares. ``fastmath`` is off (no ``--use_fast_math``): results must
match the reference.
"""
import functools
import math

import cupy
import numpy as np

from . import reference

BLOCK = 256                    # threads per block for the elementwise and row kernels
ATTENTION_THREADS = 128        # threads per block for the attention kernels
SHARED_BYTES = 48 * 1024       # shared memory a block may use without opting in to more
MAX_GRID = 65535 * 32          # enough blocks to fill any GPU; grid-stride loops do the rest

_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

PRELUDE = rf"""
#define BLOCK {BLOCK}
#define SQRT_HALF {reference.SQRT_HALF!r}
#define INV_SQRT_2PI {reference.INV_SQRT_2PI!r}
#define GELU_TANH_C {reference.GELU_TANH_C!r}
#define GELU_TANH_K {reference.GELU_TANH_K!r}

template <typename T> __device__ T neg_inf();
template <> __device__ float neg_inf<float>() {{ return __int_as_float(0xff800000); }}
template <> __device__ double neg_inf<double>() {{
    return __longlong_as_double(0xfff0000000000000LL); }}

// The sum of one value per thread over the block: each round the lower half of the active
// threads adds the upper half's values, so after log2(BLOCK) rounds buf[0] holds the total.
// The last barrier lets the caller reuse buf at once.
template <typename T> __device__ T block_sum(T v, T* buf) {{
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {{
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }}
    T total = buf[0];
    __syncthreads();
    return total;
}}

template <typename T> __device__ T block_max(T v, T* buf) {{
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {{
        if (threadIdx.x < s && buf[threadIdx.x + s] > buf[threadIdx.x])
            buf[threadIdx.x] = buf[threadIdx.x + s];
        __syncthreads();
    }}
    T best = buf[0];
    __syncthreads();
    return best;
}}
"""


@functools.lru_cache(maxsize=None)
def _module(source, names):
    """The compiled ``cupy.RawModule`` for ``source``, with each template in ``names``
    instantiated for float and double."""
    expressions = tuple(f"{n}<{t}>" for n in names for t in _TYPES.values())
    return cupy.RawModule(code=PRELUDE + source, options=("--std=c++14",),
                          name_expressions=expressions)


def _function(source, names, name, dtype):
    return _module(source, names).get_function(f"{name}<{_TYPES[np.dtype(dtype)]}>")


def _grid(n):
    """Blocks for a grid-stride loop over ``n`` elements."""
    return (max(1, min((n + BLOCK - 1) // BLOCK, MAX_GRID)),)


def _c(a, dtype=None):
    """``a`` as a C-contiguous CuPy array (of ``dtype``), copying only when needed."""
    return cupy.ascontiguousarray(a, dtype=dtype)


def _rows(a):
    """A contiguous 2-D (rows, last axis) view of ``a`` and its row count and length."""
    a = _c(a)
    cols = a.shape[-1] if a.ndim else 1
    return a.reshape(-1, cols), a.size // max(cols, 1), cols


# =========================================================================================
# GELU
# =========================================================================================
_GELU = r"""
// y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2; saved = Phi(x) for the backward.
// tanh form (GPT-2): y = 0.5 x (1 + t), t = tanh(sqrt(2/pi) (x + 0.044715 x^3)); saved = t.
template <typename T>
__global__ void gelu_forward(const T* x, T* y, T* saved, long long n, int tanh_form) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        T xi = x[i];
        if (tanh_form) {
            T t = tanh(T(GELU_TANH_C) * (xi + T(GELU_TANH_K) * xi * xi * xi));
            saved[i] = t;
            y[i] = T(0.5) * xi * (T(1) + t);
        } else {
            T c = T(0.5) * (T(1) + erf(xi * T(SQRT_HALF)));
            saved[i] = c;
            y[i] = xi * c;
        }
    }
}

// dGELU/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi);
// tanh form: 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
template <typename T>
__global__ void gelu_backward(const T* x, const T* saved, const T* g, T* out, long long n,
                              int tanh_form) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        T xi = x[i], s = saved[i];
        if (tanh_form) {
            T dinner = T(GELU_TANH_C) * (T(1) + T(3) * T(GELU_TANH_K) * xi * xi);
            out[i] = g[i] * (T(0.5) * (T(1) + s) + T(0.5) * xi * (T(1) - s * s) * dinner);
        } else {
            out[i] = g[i] * (s + xi * exp(T(-0.5) * xi * xi) * T(INV_SQRT_2PI));
        }
    }
}
"""
_GELU_NAMES = ("gelu_forward", "gelu_backward")


def gelu_forward(x, approximate="none"):
    """GELU(x) and what its backward needs (Phi(x), or the tanh); see ``reference``."""
    x = _c(x)
    y, saved = cupy.empty_like(x), cupy.empty_like(x)
    _function(_GELU, _GELU_NAMES, "gelu_forward", x.dtype)(
        _grid(x.size), (BLOCK,), (x, y, saved, np.int64(x.size), np.int32(approximate == "tanh")))
    return y, saved


def gelu_backward(x, saved, g, approximate="none"):
    x = _c(x)
    out = cupy.empty_like(x)
    _function(_GELU, _GELU_NAMES, "gelu_backward", x.dtype)(
        _grid(x.size), (BLOCK,), (x, _c(saved, x.dtype), _c(g, x.dtype), out,
                                  np.int64(x.size), np.int32(approximate == "tanh")))
    return out


# =========================================================================================
# softmax and log-softmax over the last axis: one block per row
# =========================================================================================
_SOFTMAX = r"""
// softmax(x)_j = e^(x_j - m) / sum_k e^(x_k - m), m = max_k x_k (so no exp overflows);
// log form: x_j - m - log sum_k e^(x_k - m). Three passes over the row: max, sum, write.
template <typename T>
__global__ void softmax_rows(const T* x, T* out, long long cols, int log_form) {
    __shared__ T buf[BLOCK];
    const T* row = x + blockIdx.x * cols;
    T* o = out + blockIdx.x * cols;
    T m = neg_inf<T>();
    for (long long j = threadIdx.x; j < cols; j += BLOCK) m = row[j] > m ? row[j] : m;
    m = block_max(m, buf);
    T s = 0;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) s += exp(row[j] - m);
    s = block_sum(s, buf);
    if (log_form) {
        T lse = m + log(s);
        for (long long j = threadIdx.x; j < cols; j += BLOCK) o[j] = row[j] - lse;
    } else {
        T inv = T(1) / s;
        for (long long j = threadIdx.x; j < cols; j += BLOCK) o[j] = exp(row[j] - m) * inv;
    }
}

// softmax: dx = y (g - sum_k g_k y_k);  log-softmax (y = log p): dx = g - e^y sum_k g_k.
template <typename T>
__global__ void softmax_rows_grad(const T* y, const T* g, T* out, long long cols,
                                  int log_form) {
    __shared__ T buf[BLOCK];
    const T* yr = y + blockIdx.x * cols;
    const T* gr = g + blockIdx.x * cols;
    T* o = out + blockIdx.x * cols;
    T s = 0;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) s += log_form ? gr[j] : gr[j] * yr[j];
    s = block_sum(s, buf);
    for (long long j = threadIdx.x; j < cols; j += BLOCK)
        o[j] = log_form ? gr[j] - exp(yr[j]) * s : yr[j] * (gr[j] - s);
}
"""
_SOFTMAX_NAMES = ("softmax_rows", "softmax_rows_grad")


def _softmax(x, log_form):
    rows, n, cols = _rows(x)
    out = cupy.empty_like(rows)
    if n and cols:
        _function(_SOFTMAX, _SOFTMAX_NAMES, "softmax_rows", rows.dtype)(
            (n,), (BLOCK,), (rows, out, np.int64(cols), np.int32(log_form)))
    return out.reshape(x.shape)


def _softmax_grad(y, g, log_form):
    rows, n, cols = _rows(y)
    out = cupy.empty_like(rows)
    if n and cols:
        _function(_SOFTMAX, _SOFTMAX_NAMES, "softmax_rows_grad", rows.dtype)(
            (n,), (BLOCK,), (rows, _c(g, rows.dtype), out, np.int64(cols), np.int32(log_form)))
    return out.reshape(y.shape)


def log_softmax_forward(x):
    return _softmax(x, True)


def log_softmax_backward(out, g):
    return _softmax_grad(out, g, True)


def softmax_forward(x):
    return _softmax(x, False)


def softmax_backward(y, g):
    return _softmax_grad(y, g, False)


# =========================================================================================
# cross-entropy fused with log-softmax (C4): one block per row
# =========================================================================================
_CROSS_ENTROPY = r"""
// lse_i = log sum_j e^(x_ij) (with the max taken out first);
// loss_i = lse_i - (1 - e) x_(i, t_i) - e mean_j x_ij, and 0 on rows that are not valid.
template <typename T>
__global__ void cross_entropy_rows(const T* x, const long long* target, const bool* valid,
                                   T smoothing, T* loss, T* lse, long long cols) {
    __shared__ T buf[BLOCK];
    const long long r = blockIdx.x;
    const T* row = x + r * cols;
    T m = neg_inf<T>();
    for (long long j = threadIdx.x; j < cols; j += BLOCK) m = row[j] > m ? row[j] : m;
    m = block_max(m, buf);
    T s = 0, total = 0;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) {
        s += exp(row[j] - m);
        total += row[j];
    }
    s = block_sum(s, buf);
    total = block_sum(total, buf);
    if (threadIdx.x == 0) {
        T l = m + log(s);
        lse[r] = l;
        loss[r] = valid[r] ? l - (T(1) - smoothing) * row[target[r]] - smoothing * total / T(cols)
                           : T(0);
    }
}

// d loss_i / d x_ij = (e^(x_ij - lse_i) - e / C - (1 - e) [j = t_i]) * row_scale_i; 0 on rows
// that are not valid (their target may be ignore_index, so it is never read there).
template <typename T>
__global__ void cross_entropy_rows_grad(const T* x, const T* lse, const long long* target,
                                        const bool* valid, T smoothing, const T* row_scale,
                                        T* out, long long cols) {
    const long long r = blockIdx.x;
    const T* row = x + r * cols;
    T* o = out + r * cols;
    if (!valid[r]) {
        for (long long j = threadIdx.x; j < cols; j += BLOCK) o[j] = T(0);
        return;
    }
    const T scale = row_scale[r], l = lse[r], uniform = smoothing / T(cols);
    const long long t = target[r];
    for (long long j = threadIdx.x; j < cols; j += BLOCK) {
        T v = exp(row[j] - l) - uniform;
        if (j == t) v -= T(1) - smoothing;
        o[j] = v * scale;
    }
}
"""
_CROSS_ENTROPY_NAMES = ("cross_entropy_rows", "cross_entropy_rows_grad")


def cross_entropy_forward(logits, target, valid, smoothing):
    x = _c(logits)
    n, cols = x.shape
    loss, lse = cupy.empty(n, dtype=x.dtype), cupy.empty(n, dtype=x.dtype)
    if n:
        _function(_CROSS_ENTROPY, _CROSS_ENTROPY_NAMES, "cross_entropy_rows", x.dtype)(
            (n,), (BLOCK,), (x, _c(target, np.int64), _c(valid, np.bool_),
                             x.dtype.type(smoothing), loss, lse, np.int64(cols)))
    return loss, lse


def cross_entropy_backward(logits, lse, target, valid, smoothing, row_scale):
    x = _c(logits)
    n, cols = x.shape
    out = cupy.empty_like(x)
    scale = _c(cupy.broadcast_to(cupy.asarray(row_scale, dtype=x.dtype), (n,)))
    if n:
        _function(_CROSS_ENTROPY, _CROSS_ENTROPY_NAMES, "cross_entropy_rows_grad", x.dtype)(
            (n,), (BLOCK,), (x, _c(lse, x.dtype), _c(target, np.int64), _c(valid, np.bool_),
                             x.dtype.type(smoothing), scale, out, np.int64(cols)))
    return out


# =========================================================================================
# layer normalisation over the last axis (A9, D5, A11): one block per row
# =========================================================================================
_LAYER_NORM = r"""
// x_hat = (x - mu) / sqrt(var + eps), mu and var the row's mean and (biased) variance, the
// variance from a second pass over (x - mu) (no cancellation in E[x^2] - mu^2).
template <typename T>
__global__ void layer_norm_rows(const T* x, T eps, T* out, T* inv_std, long long cols) {
    __shared__ T buf[BLOCK];
    const long long r = blockIdx.x;
    const T* row = x + r * cols;
    T* o = out + r * cols;
    T s = 0;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) s += row[j];
    const T mu = block_sum(s, buf) / T(cols);
    T q = 0;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) {
        T d = row[j] - mu;
        q += d * d;
    }
    const T rstd = T(1) / sqrt(block_sum(q, buf) / T(cols) + eps);
    if (threadIdx.x == 0) inv_std[r] = rstd;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) o[j] = (row[j] - mu) * rstd;
}

// A11: dx = (g - mean(g) - x_hat mean(g x_hat)) / sqrt(var + eps).
template <typename T>
__global__ void layer_norm_rows_grad(const T* x_hat, const T* inv_std, const T* g, T* out,
                                     long long cols) {
    __shared__ T buf[BLOCK];
    const long long r = blockIdx.x;
    const T* xr = x_hat + r * cols;
    const T* gr = g + r * cols;
    T* o = out + r * cols;
    T sg = 0, sgx = 0;
    for (long long j = threadIdx.x; j < cols; j += BLOCK) {
        sg += gr[j];
        sgx += gr[j] * xr[j];
    }
    const T mean_g = block_sum(sg, buf) / T(cols);
    const T mean_gx = block_sum(sgx, buf) / T(cols);
    const T rstd = inv_std[r];
    for (long long j = threadIdx.x; j < cols; j += BLOCK)
        o[j] = (gr[j] - mean_g - xr[j] * mean_gx) * rstd;
}
"""
_LAYER_NORM_NAMES = ("layer_norm_rows", "layer_norm_rows_grad")


def layer_norm_forward(x, eps):
    x = _c(x)
    n, cols = x.shape
    out = cupy.empty_like(x)
    inv_std = cupy.empty((n, 1), dtype=x.dtype)
    if n:
        _function(_LAYER_NORM, _LAYER_NORM_NAMES, "layer_norm_rows", x.dtype)(
            (n,), (BLOCK,), (x, x.dtype.type(eps), out, inv_std, np.int64(cols)))
    return out, inv_std


def layer_norm_backward(x_hat, inv_std, g):
    x_hat = _c(x_hat)
    n, cols = x_hat.shape
    out = cupy.empty_like(x_hat)
    if n:
        _function(_LAYER_NORM, _LAYER_NORM_NAMES, "layer_norm_rows_grad", x_hat.dtype)(
            (n,), (BLOCK,), (x_hat, _c(inv_std, x_hat.dtype), _c(g, x_hat.dtype), out,
                             np.int64(cols)))
    return out


# =========================================================================================
# embedding backward (A10): scatter-add with atomics
# =========================================================================================
_EMBEDDING = r"""
// dW[ids[i], j] += g[i, j]: one thread per element of g. Two rows of g with the same id add
// into the same row of dW, so the addition is atomic (the order of the additions, and so
// the last bits of a float sum, may vary from run to run).
template <typename T>
__global__ void scatter_rows(const T* g, const long long* ids, T* out, long long n,
                             long long dim) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        atomicAdd(out + ids[i / dim] * dim + i % dim, g[i]);
}
"""


def embedding_backward(g, ids, num_rows):
    g = _c(g)
    out = cupy.zeros((num_rows, g.shape[-1]), dtype=g.dtype)
    if g.size:
        _function(_EMBEDDING, ("scatter_rows",), "scatter_rows", g.dtype)(
            _grid(g.size), (BLOCK,), (g, _c(ids, np.int64), out, np.int64(g.size),
                                      np.int64(g.shape[-1])))
    return out


# =========================================================================================
# Adam / AdamW step, in place
# =========================================================================================
_ADAM = r"""
// AdamW: p <- p (1 - lr wd);  Adam: g <- g + wd p
// m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,  AMSGrad: v_max <- max(v_max, v), used as v
// p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)      (PyTorch's grouping)
template <typename T>
__global__ void adam(T* p, const T* g, T* m, T* v, T* v_max, T lr, T beta1, T beta2, T eps,
                     T bias1, T bias2_sqrt, T weight_decay, int decoupled, int amsgrad,
                     long long n) {
    const T step_size = lr / bias1, shrink = T(1) - lr * weight_decay;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        T gi = g[i], pi = p[i];
        if (decoupled) pi *= shrink;
        else gi += weight_decay * pi;
        T mi = beta1 * m[i] + (T(1) - beta1) * gi;
        T vi = beta2 * v[i] + (T(1) - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            vi = v_max[i] > vi ? v_max[i] : vi;
            v_max[i] = vi;
        }
        p[i] = pi - step_size * (mi / (sqrt(vi) / bias2_sqrt + eps));
    }
}
"""


def adam_step(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled, v_max=None):
    """One Adam(W) update of ``p``, ``m``, ``v`` (and ``v_max``) in place; see ``reference``."""
    arrays = (p, m, v) + (() if v_max is None else (v_max,))
    if not _contiguous(*arrays):                        # updated in place: no copies allowed
        return reference.adam_step(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay,
                                   decoupled, v_max)
    f = p.dtype.type
    _function(_ADAM, ("adam",), "adam", p.dtype)(
        _grid(p.size), (BLOCK,),
        (p, _c(g, p.dtype), m, v, v if v_max is None else v_max, f(lr), f(beta1), f(beta2),
         f(eps), f(1 - beta1 ** step), f(math.sqrt(1 - beta2 ** step)), f(weight_decay),
         np.int32(bool(decoupled)), np.int32(v_max is not None), np.int64(p.size)))


# =========================================================================================
# one step of the LSTM and GRU backward (B3, A11), the gate arithmetic, in place
# =========================================================================================
_RECURRENT = r"""
// LSTM: one thread per (b, j), j < H; gates = [i, f, g, o] activated, (B, 4H).
//   dc   <- dc + dh o (1 - tanh(c_t)^2)
//   dA_t  = [dc g i (1-i), dc c_{t-1} f (1-f), dc i (1 - g^2), dh tanh(c_t) o (1-o)]
//   dc   <- dc f                                  (dL/dc_{t-1}, written back into dc)
template <typename T>
__global__ void lstm_cell_backward(const T* gates, const T* tanh_c, const T* c_prev,
                                   const T* dh, T* dc, T* d_pre, long long B, long long H) {
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < B * H;
         k += (long long)gridDim.x * blockDim.x) {
        const long long b = k / H, j = k % H;
        const T* gate = gates + b * 4 * H;
        T* d = d_pre + b * 4 * H;
        const T i = gate[j], f = gate[H + j], g = gate[2 * H + j], o = gate[3 * H + j];
        const T tc = tanh_c[k], dhk = dh[k];
        const T c = dc[k] + dhk * o * (T(1) - tc * tc);
        d[j] = c * g * i * (T(1) - i);
        d[H + j] = c * c_prev[k] * f * (T(1) - f);
        d[2 * H + j] = c * i * (T(1) - g * g);
        d[3 * H + j] = dhk * tc * o * (T(1) - o);
        dc[k] = c * f;
    }
}

// GRU: rzn = [r, z, n] activated (B, 3H), u = W_hn h_{t-1} + b_hn.
//   dan = dh (1 - z) (1 - n^2),  dar = dan u r (1-r),  daz = dh (h_{t-1} - n) z (1-z)
//   d_x = [dar, daz, dan],  d_h = [dar, daz, dan r],  dh <- dh z
template <typename T>
__global__ void gru_cell_backward(const T* rzn, const T* u, const T* h_prev, T* dh, T* d_x,
                                  T* d_h, long long B, long long H) {
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < B * H;
         k += (long long)gridDim.x * blockDim.x) {
        const long long b = k / H, j = k % H;
        const T* gate = rzn + b * 3 * H;
        T* dx = d_x + b * 3 * H;
        T* dhw = d_h + b * 3 * H;
        const T r = gate[j], z = gate[H + j], n = gate[2 * H + j], d = dh[k];
        const T dan = d * (T(1) - z) * (T(1) - n * n);
        const T dar = dan * u[k] * r * (T(1) - r);
        const T daz = d * (h_prev[k] - n) * z * (T(1) - z);
        dx[j] = dhw[j] = dar;
        dx[H + j] = dhw[H + j] = daz;
        dx[2 * H + j] = dan;
        dhw[2 * H + j] = dan * r;
        dh[k] = d * z;
    }
}
"""
_RECURRENT_NAMES = ("lstm_cell_backward", "gru_cell_backward")


def _contiguous(*arrays):
    return all(a.flags.c_contiguous for a in arrays)


def lstm_cell_backward(gates, tanh_c, c_prev, dh, dc, d_pre):
    """One LSTM step backwards; ``dc`` and ``d_pre`` are written in place (see ``reference``)."""
    if not _contiguous(dc, d_pre):
        return reference.lstm_cell_backward(gates, tanh_c, c_prev, dh, dc, d_pre)
    B, H = dh.shape
    t = dc.dtype
    _function(_RECURRENT, _RECURRENT_NAMES, "lstm_cell_backward", t)(
        _grid(B * H), (BLOCK,), (_c(gates, t), _c(tanh_c, t), _c(c_prev, t), _c(dh, t), dc,
                                 d_pre, np.int64(B), np.int64(H)))


def gru_cell_backward(rzn, u, h_prev, dh, d_x, d_h):
    """One GRU step backwards; ``dh``, ``d_x`` and ``d_h`` are written in place."""
    if not _contiguous(dh, d_x, d_h):
        return reference.gru_cell_backward(rzn, u, h_prev, dh, d_x, d_h)
    B, H = dh.shape
    t = dh.dtype
    _function(_RECURRENT, _RECURRENT_NAMES, "gru_cell_backward", t)(
        _grid(B * H), (BLOCK,), (_c(rzn, t), _c(u, t), _c(h_prev, t), dh, d_x, d_h,
                                 np.int64(B), np.int64(H)))


# =========================================================================================
# attention (A8 / D4 / E4): fused and streaming, the online softmax of FlashAttention
# =========================================================================================
_ATTENTION = r"""
#define NT blockDim.x

// Forward. Block (query tile qt, head bh) owns queries q0 .. q0 + nq - 1 of one head.
// Shared memory holds that tile of Q (pre-scaled), the running output acc, and one tile of
// K and V at a time, plus the tile's scores S (t x t) and per row the running max m, the
// running sum l and the rescale factor alpha. For each tile of keys:
//     S = Q K^T (masked: -inf where key > query + offset, or outside the sequence)
//     m' = max(m, max_c S_rc),  alpha = e^(m - m'),  P = e^(S - m')
//     l  = l alpha + sum_c P_rc,  acc = acc alpha + P V,  m = m'
// so after the last tile acc / l = softmax(Q K^T scale) V exactly, and lse = m + log l is
// kept for the backward. K rows are stored with stride dk + 1 so that the threads of a warp,
// each reading a different key row, hit different shared-memory banks.
template <typename T>
__global__ void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse,
                                  long long L, long long S, int dk, int dv, int t, T scale,
                                  int causal, long long offset) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* sq = reinterpret_cast<T*>(smem_raw);   // t x dk
    T* sk = sq + t * dk;                       // t x (dk + 1)
    T* sv = sk + t * (dk + 1);                 // t x dv
    T* acc = sv + t * dv;                      // t x dv
    T* ss = acc + t * dv;                      // t x t
    T* sm = ss + t * t;                        // t
    T* sl = sm + t;                            // t
    T* salpha = sl + t;                        // t
    const long long bh = blockIdx.y, q0 = (long long)blockIdx.x * t;
    const int nq = (int)(L - q0 < t ? L - q0 : t);
    const T* Q = q + (bh * L + q0) * dk;
    const T* K = k + bh * S * dk;
    const T* V = v + bh * S * dv;
    for (int i = threadIdx.x; i < t * dk; i += NT) sq[i] = i / dk < nq ? Q[i] * scale : T(0);
    for (int i = threadIdx.x; i < t * dv; i += NT) acc[i] = T(0);
    for (int r = threadIdx.x; r < t; r += NT) { sm[r] = neg_inf<T>(); sl[r] = T(0); }
    // keys after the last query's causal line are never needed
    long long kend = S;
    if (causal && q0 + nq + offset < S) kend = q0 + nq + offset;
    for (long long k0 = 0; k0 < kend; k0 += t) {
        const int nk = (int)(kend - k0 < t ? kend - k0 : t);
        __syncthreads();   // the previous tile is finished with sk, sv and ss
        for (int i = threadIdx.x; i < t * dk; i += NT) {
            const int c = i / dk, e = i % dk;
            sk[c * (dk + 1) + e] = c < nk ? K[(k0 + c) * dk + e] : T(0);
        }
        for (int i = threadIdx.x; i < t * dv; i += NT)
            sv[i] = i / dv < nk ? V[k0 * dv + i] : T(0);
        __syncthreads();
        for (int i = threadIdx.x; i < t * t; i += NT) {
            const int r = i / t, c = i % t;
            T s = neg_inf<T>();
            if (r < nq && c < nk && (!causal || k0 + c <= q0 + r + offset)) {
                s = T(0);
                for (int e = 0; e < dk; ++e) s += sq[r * dk + e] * sk[c * (dk + 1) + e];
            }
            ss[i] = s;
        }
        __syncthreads();
        for (int r = threadIdx.x; r < t; r += NT) {   // one thread per query row
            T* row = ss + r * t;
            const T m_old = sm[r];
            T m_new = m_old;
            for (int c = 0; c < t; ++c) m_new = row[c] > m_new ? row[c] : m_new;
            T alpha = T(1), total = T(0);
            if (m_new == neg_inf<T>()) {              // nothing to see yet (a padding row)
                for (int c = 0; c < t; ++c) row[c] = T(0);
            } else {
                alpha = exp(m_old - m_new);            // 0 on the first tile (m_old = -inf)
                for (int c = 0; c < t; ++c) {
                    const T p = exp(row[c] - m_new);   // 0 where masked (-inf)
                    row[c] = p;
                    total += p;
                }
            }
            sm[r] = m_new;
            sl[r] = sl[r] * alpha + total;
            salpha[r] = alpha;
        }
        __syncthreads();
        for (int i = threadIdx.x; i < t * dv; i += NT) {
            const int r = i / dv, e = i % dv;
            T a = acc[i] * salpha[r];
            for (int c = 0; c < nk; ++c) a += ss[r * t + c] * sv[c * dv + e];
            acc[i] = a;
        }
    }
    __syncthreads();
    T* O = out + (bh * L + q0) * dv;
    for (int i = threadIdx.x; i < nq * dv; i += NT) O[i] = acc[i] / sl[i / dv];
    for (int r = threadIdx.x; r < nq; r += NT) lse[bh * L + q0 + r] = sm[r] + log(sl[r]);
}

// Backward. Block (key tile kt, head bh) owns keys k0 .. k0 + nk - 1 and accumulates their
// dK and dV in shared memory while it walks the tiles of queries that can see them; each
// query tile's share of dQ is added to global memory atomically (other key tiles add theirs).
// With P rebuilt from the saved lse and delta_r = sum_e g_re O_re:
//     P = e^(Q K^T scale - lse),  dV += P^T G,  dP = G V^T,  dS = P (dP - delta),
//     dK += dS^T Q scale,  dQ += dS K scale.
template <typename T>
__global__ void attention_backward(const T* q, const T* k, const T* v, const T* g,
                                   const T* lse, const T* delta, T* dq, T* dkey, T* dval,
                                   long long L, long long S, int dk, int dv, int t, T scale,
                                   int causal, long long offset) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* sk = reinterpret_cast<T*>(smem_raw);   // t x (dk + 1)
    T* sv = sk + t * (dk + 1);                 // t x (dv + 1)
    T* sdk = sv + t * (dv + 1);                // t x dk
    T* sdv = sdk + t * dk;                     // t x dv
    T* sq = sdv + t * dv;                      // t x dk
    T* sg = sq + t * dk;                       // t x dv
    T* sp = sg + t * dv;                       // t x t   P (rows: queries, columns: keys)
    T* sds = sp + t * t;                       // t x t   dS
    T* slse = sds + t * t;                     // t
    T* sdelta = slse + t;                      // t
    const long long bh = blockIdx.y, k0 = (long long)blockIdx.x * t;
    const int nk = (int)(S - k0 < t ? S - k0 : t);
    const T* K = k + (bh * S + k0) * dk;
    const T* V = v + (bh * S + k0) * dv;
    for (int i = threadIdx.x; i < t * dk; i += NT) {
        const int c = i / dk, e = i % dk;
        sk[c * (dk + 1) + e] = c < nk ? K[i] : T(0);
        sdk[i] = T(0);
    }
    for (int i = threadIdx.x; i < t * dv; i += NT) {
        const int c = i / dv, e = i % dv;
        sv[c * (dv + 1) + e] = c < nk ? V[i] : T(0);
        sdv[i] = T(0);
    }
    // queries before k0 - offset see none of these keys (causal)
    long long qstart = 0;
    if (causal && k0 - offset > 0) qstart = k0 - offset;
    for (long long q0 = qstart; q0 < L; q0 += t) {
        const int nq = (int)(L - q0 < t ? L - q0 : t);
        __syncthreads();   // the previous query tile is finished with sq, sg, sp and sds
        const T* Q = q + (bh * L + q0) * dk;
        const T* G = g + (bh * L + q0) * dv;
        for (int i = threadIdx.x; i < t * dk; i += NT) sq[i] = i / dk < nq ? Q[i] : T(0);
        for (int i = threadIdx.x; i < t * dv; i += NT) sg[i] = i / dv < nq ? G[i] : T(0);
        for (int r = threadIdx.x; r < t; r += NT) {
            slse[r] = r < nq ? lse[bh * L + q0 + r] : T(0);
            sdelta[r] = r < nq ? delta[bh * L + q0 + r] : T(0);
        }
        __syncthreads();
        for (int i = threadIdx.x; i < t * t; i += NT) {
            const int r = i / t, c = i % t;
            T p = T(0), dp = T(0);
            if (r < nq && c < nk && (!causal || k0 + c <= q0 + r + offset)) {
                T s = T(0);
                for (int e = 0; e < dk; ++e) s += sq[r * dk + e] * sk[c * (dk + 1) + e];
                p = exp(s * scale - slse[r]);
                for (int e = 0; e < dv; ++e) dp += sg[r * dv + e] * sv[c * (dv + 1) + e];
            }
            sp[i] = p;
            sds[i] = p * (dp - sdelta[r]);
        }
        __syncthreads();
        for (int i = threadIdx.x; i < t * dv; i += NT) {   // dV += P^T G
            const int c = i / dv, e = i % dv;
            T a = T(0);
            for (int r = 0; r < nq; ++r) a += sp[r * t + c] * sg[r * dv + e];
            sdv[i] += a;
        }
        for (int i = threadIdx.x; i < t * dk; i += NT) {   // dK += dS^T Q scale
            const int c = i / dk, e = i % dk;
            T a = T(0);
            for (int r = 0; r < nq; ++r) a += sds[r * t + c] * sq[r * dk + e];
            sdk[i] += a * scale;
        }
        for (int i = threadIdx.x; i < nq * dk; i += NT) {  // dQ += dS K scale (atomically)
            const int r = i / dk, e = i % dk;
            T a = T(0);
            for (int c = 0; c < nk; ++c) a += sds[r * t + c] * sk[c * (dk + 1) + e];
            atomicAdd(dq + (bh * L + q0) * dk + i, a * scale);
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nk * dk; i += NT) dkey[(bh * S + k0) * dk + i] = sdk[i];
    for (int i = threadIdx.x; i < nk * dv; i += NT) dval[(bh * S + k0) * dv + i] = sdv[i];
}
"""
_ATTENTION_NAMES = ("attention_forward", "attention_backward")


def _forward_shared(t, dk, dv, size):
    return (t * dk + t * (dk + 1) + 2 * t * dv + t * t + 3 * t) * size


def _backward_shared(t, dk, dv, size):
    return (t * (dk + 1) + t * (dv + 1) + 2 * t * dk + 2 * t * dv + 2 * t * t + 2 * t) * size


def attention_tile(dk, dv, dtype, backward=False):
    """The largest tile (64, 32, ... 1 rows) whose staging fits in ``SHARED_BYTES``; 0 when
    even one row does not (very wide heads: the reference formula runs instead)."""
    need = _backward_shared if backward else _forward_shared
    size = np.dtype(dtype).itemsize
    return next((t for t in (64, 32, 16, 8, 4, 2, 1) if need(t, dk, dv, size) <= SHARED_BYTES),
                0)


def _heads(a, dtype):
    return _c(a, dtype).reshape((-1,) + a.shape[-2:])


def attention_forward(q, k, v, scale, causal_offset=None):
    """softmax(Q K^T * scale, causal) V without the (L, S) weights, and the log-sum-exp of
    each row; one block per (head, tile of queries). See the kernel's comment."""
    dt = q.dtype
    q3, k3, v3 = _heads(q, dt), _heads(k, dt), _heads(v, dt)
    bh, L, dk = q3.shape
    S, dv = k3.shape[1], v3.shape[-1]
    t = attention_tile(dk, dv, dt)
    if t == 0:
        return reference.attention_forward(q, k, v, scale, causal_offset)
    out = cupy.empty((bh, L, dv), dtype=dt)
    lse = cupy.empty((bh, L), dtype=dt)
    if out.size:
        _function(_ATTENTION, _ATTENTION_NAMES, "attention_forward", dt)(
            ((L + t - 1) // t, bh), (ATTENTION_THREADS,),
            (q3, k3, v3, out, lse, np.int64(L), np.int64(S), np.int32(dk), np.int32(dv),
             np.int32(t), dt.type(scale), np.int32(causal_offset is not None),
             np.int64(causal_offset or 0)),
            shared_mem=_forward_shared(t, dk, dv, dt.itemsize))
    return out.reshape(q.shape[:-1] + v.shape[-1:]), lse.reshape(q.shape[:-1])


def attention_backward(q, k, v, out, lse, g, scale, causal_offset=None):
    """dQ, dK, dV from the saved lse, without the (L, S) weights; one block per (head, tile of
    keys), dQ added atomically. delta = rowsum(g * out) is one CuPy reduction first."""
    dt = q.dtype
    q3, k3, v3 = _heads(q, dt), _heads(k, dt), _heads(v, dt)
    bh, L, dk = q3.shape
    S, dv = k3.shape[1], v3.shape[-1]
    t = attention_tile(dk, dv, dt, backward=True)
    if t == 0:
        return reference.attention_backward(q, k, v, out, lse, g, scale, causal_offset)
    g3 = _heads(g, dt)
    delta = (g3 * _heads(out, dt)).sum(axis=-1)
    dq, dk_, dv_ = cupy.zeros_like(q3), cupy.empty_like(k3), cupy.empty_like(v3)
    if k3.size or v3.size:
        _function(_ATTENTION, _ATTENTION_NAMES, "attention_backward", dt)(
            ((S + t - 1) // t, bh), (ATTENTION_THREADS,),
            (q3, k3, v3, g3, _c(lse, dt).reshape(bh, L), delta, dq, dk_, dv_, np.int64(L),
             np.int64(S), np.int32(dk), np.int32(dv), np.int32(t), dt.type(scale),
             np.int32(causal_offset is not None), np.int64(causal_offset or 0)),
            shared_mem=_backward_shared(t, dk, dv, dt.itemsize))
    return dq.reshape(q.shape), dk_.reshape(k.shape), dv_.reshape(v.shape)
