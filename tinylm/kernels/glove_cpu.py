"""Numba kernels for GloVe (C10, standard form): co-occurrence counting and one AdaGrad epoch.

Counting (Pennington et al. 2014, section 4.2; ``cooccur.c``): in a sentence stored as word ids
``s[0..n)``, every pair of positions ``p < q`` with ``q - p <= window`` adds ``1 / (q - p)`` to
``X[s[q], s[p]]`` (the context ``s[p]`` is on the left of the word ``s[q]``); with
``symmetric=True`` it also adds ``1 / (q - p)`` to ``X[s[p], s[q]]``, so ``X`` is symmetric.
``emit_pairs`` writes each contribution as a key ``i * V + j`` and a weight; the caller sums
equal keys (sort + ``np.add.reduceat``), one chunk of sentences at a time, so the memory used is
that of one chunk's pairs plus the nonzeros, never ``V * V``.

Training (``glove.c``): for the nonzero entries ``(i, j, X_ij)`` in a shuffled order,

    diff  = w_i . w~_j + b_i + b~_j - log X_ij
    J_ij  = f(X_ij) diff^2,        f(x) = (x / x_max)^alpha if x < x_max else 1

and AdaGrad steps with per-parameter accumulators ``G`` that start at 1 (glove.c's choice, so the
first step is ``eta * g``): for each parameter ``theta`` with gradient ``g``,

    theta -= eta * g / sqrt(G);   G += g^2

where, as in glove.c, ``g`` is the gradient of ``J_ij / 2`` (``f diff w~_j`` for ``w_i``,
``f diff w_i`` for ``w~_j``, ``f diff`` for both biases): the factor 2 of ``dJ/dtheta`` is folded
into ``eta``. ``w_i`` and ``w~_j`` are both read before either is written. The epoch returns
``sum_ij J_ij`` as met during the epoch (each entry's loss before its own step).

Threads: the shuffled entries are cut into ``n_chunks`` contiguous runs under ``prange``; the
threads update the shared arrays without locks ("Hogwild", as glove.c does with pthreads). With
one chunk the result is fixed by the order; with several it depends on thread timing.
"""
import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def count_pairs(offsets, s0, s1, window, symmetric):
    """How many (key, weight) pairs ``emit_pairs`` writes for sentences ``s0 .. s1 - 1``."""
    total = 0
    for s in range(s0, s1):
        n = offsets[s + 1] - offsets[s]
        for p in range(n):
            total += min(window, n - 1 - p)
    return total * (2 if symmetric else 1)


@njit(cache=True)
def emit_pairs(ids, offsets, s0, s1, window, V, symmetric, keys, weights):
    """Write ``key = i * V + j`` and ``weight = 1 / distance`` for every pair of sentences
    ``s0 .. s1 - 1`` (see the module docstring); returns how many were written."""
    k = 0
    for s in range(s0, s1):
        a, b = offsets[s], offsets[s + 1]
        for q in range(a, b):
            word = np.int64(ids[q])
            for p in range(max(a, q - window), q):
                context = np.int64(ids[p])
                w = 1.0 / (q - p)
                keys[k] = word * V + context
                weights[k] = w
                k += 1
                if symmetric:
                    keys[k] = context * V + word
                    weights[k] = w
                    k += 1
    return k


@njit(cache=True, parallel=True)
def train_epoch(rows, cols, log_x, f_x, order, n_chunks, W, Wc, b, bc, gW, gWc, gb, gbc, eta):
    """One AdaGrad epoch over the entries ``order[0..nnz)`` (indices into rows/cols/log_x/f_x).
    ``W, Wc`` (V, d) and ``b, bc`` (V,) are the word/context vectors and biases, ``g*`` their
    squared-gradient accumulators, all updated in place. Returns the loss of each chunk."""
    nnz = order.shape[0]
    d = W.shape[1]
    losses = np.zeros(n_chunks)
    for c in prange(n_chunks):
        start, stop = c * nnz // n_chunks, (c + 1) * nnz // n_chunks
        loss = 0.0
        for t in range(start, stop):
            e = order[t]
            i, j = rows[e], cols[e]
            diff = b[i] + bc[j] - log_x[e]
            for k in range(d):
                diff += W[i, k] * Wc[j, k]
            fdiff = f_x[e] * diff
            loss += fdiff * diff
            for k in range(d):
                g_w = fdiff * Wc[j, k]          # both gradients from the old values
                g_c = fdiff * W[i, k]
                W[i, k] -= eta * g_w / math.sqrt(gW[i, k])
                Wc[j, k] -= eta * g_c / math.sqrt(gWc[j, k])
                gW[i, k] += g_w * g_w
                gWc[j, k] += g_c * g_c
            b[i] -= eta * fdiff / math.sqrt(gb[i])
            bc[j] -= eta * fdiff / math.sqrt(gbc[j])
            gb[i] += fdiff * fdiff
            gbc[j] += fdiff * fdiff
        losses[c] = loss
    return losses


@njit(cache=True)
def coo_matmul(rows, cols, values, n_out, B):
    """``X @ B`` for a sparse matrix ``X`` given as COO arrays (used by the TF-IDF + NMF count
    model of ``embeddings/count_models.py``): each nonzero adds ``value * B[col]`` to output
    row ``row``. ``B`` (n, k) C-contiguous; O(nnz k) work, no (nnz, k) temporary."""
    k = B.shape[1]
    out = np.zeros((n_out, k))
    for e in range(rows.shape[0]):
        r, c, v = rows[e], cols[e], values[e]
        for t in range(k):
            out[r, t] += v * B[c, t]
    return out
