"""Operator parallelism (C7): one operation's work split over the cores of one process.

Two kinds of threads run tinylm's operations:

* Numba's: a loop written ``for i in prange(n)`` in an ``@njit(parallel=True)`` kernel is
  cut into chunks of rows, one per thread. ``NUMBA_NUM_THREADS`` (read once, at import)
  caps the pool; ``numba.set_num_threads(k)`` uses k of them from then on.
* BLAS's (OpenBLAS here): a matrix product split into tiles over its own thread pool,
  sized by ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` or, at run time, threadpoolctl.

``softmax_rows`` below is the row-wise softmax with ``prange`` over the rows: each row is
independent (its max, its exponentials, its sum), so threads never write the same memory
and the result does not depend on the number of threads: bit for bit the same numbers.

tinylm's own kernels (``tinylm.kernels.cpu``) stay on one thread: measured on the 2-core
development machine, Numba's threads and BLAS's fought over the same two cores and the
GPT step got slower. Chapter 16 measures both pools at 1 and 2 threads.
"""
import contextlib

import numba
import numpy as np
from numba import njit, prange

from ..errors import DTypeError, ShapeError
from .comm import ParallelError

__all__ = ["softmax_rows", "numba_threads", "blas_threads", "max_numba_threads"]


@njit(parallel=True, cache=True)
def _softmax_rows(x, out):
    for i in prange(x.shape[0]):            # each thread takes a block of rows
        m = x[i, 0]
        for j in range(1, x.shape[1]):
            m = max(m, x[i, j])
        total = 0.0
        for j in range(x.shape[1]):
            e = np.exp(x[i, j] - m)
            out[i, j] = e
            total += e
        for j in range(x.shape[1]):
            out[i, j] /= total


def softmax_rows(x):
    """softmax over the last axis of a 2-D float array, rows split over Numba's threads:
    y_ij = exp(x_ij - max_k x_ik) / sum_k exp(x_ik - max_k x_ik)."""
    x = np.ascontiguousarray(x)
    if x.dtype.kind != "f":
        raise DTypeError(f"softmax_rows: expected a 2-D float array, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ShapeError(f"softmax_rows: expected a 2-D float array with columns, got shape "
                         f"{x.shape}")
    out = np.empty_like(x)
    _softmax_rows(x, out)
    return out


def max_numba_threads():
    """The size of Numba's pool (``NUMBA_NUM_THREADS``, default: the number of cores)."""
    return numba.config.NUMBA_NUM_THREADS


@contextlib.contextmanager
def numba_threads(n):
    """Run Numba's parallel kernels on ``n`` threads inside the block."""
    if not (isinstance(n, int) and 1 <= n <= max_numba_threads()):
        raise ParallelError(f"numba_threads: need 1 <= n <= NUMBA_NUM_THREADS = "
                            f"{max_numba_threads()}, got {n!r} (set NUMBA_NUM_THREADS before "
                            f"starting Python for more)")
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def blas_threads(n):
    """Run BLAS (matrix products) on ``n`` threads inside the block (threadpoolctl); the CLI's
    ``--blas-threads``.

    tinylm's matrices are small: splitting one product over threads gains little, and on a
    busy machine waking the sleeping threads can cost far more than the product (measured
    here: 7.4 s instead of 0.15 s per GPT step with 2 OpenBLAS threads on 2 shared cores)."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")
