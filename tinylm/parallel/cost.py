"""What gradient synchronisation costs (C7): the ring all-reduce, on paper and measured.

Ring all-reduce (Patarasuk and Yuan 2009; what NCCL and MPI use for large messages): the N
ranks stand in a ring and each splits its array into N chunks.

* reduce-scatter, N - 1 steps: every rank sends one chunk to its right-hand neighbour and
  adds the chunk it receives; afterwards rank r holds the complete sum of chunk r + 1;
* all-gather, N - 1 more steps: the finished chunks travel once around the ring.

Every rank sends 2 (N - 1) messages of size/N bytes, so with a latency ``alpha`` per message
and a bandwidth ``beta`` per link

    t(N, size) = 2 (N - 1) alpha + 2 (N - 1)/N x size / beta

The bandwidth term tends to 2 x size / beta however many ranks there are: adding ranks does
not make the synchronisation of a fixed model slower, only the latency term grows.
"""
import time

import numpy as np

from ..errors import TinyLMError
from .comm import ParallelError, get_comm

__all__ = ["ring_allreduce_seconds", "ring_allreduce_simulated", "measure_allreduce",
           "fit_latency_bandwidth"]


def ring_allreduce_seconds(nbytes, n, bandwidth, latency):
    """t = 2 (N - 1) latency + 2 (N - 1)/N x nbytes / bandwidth (bandwidth in bytes/s)."""
    n = np.asarray(n, dtype=float)
    if np.any(n < 1) or not (bandwidth > 0 and latency >= 0):
        raise TinyLMError(f"ring_allreduce_seconds: need N >= 1, bandwidth > 0, latency >= 0; "
                          f"got N={n}, bandwidth={bandwidth}, latency={latency}")
    return 2 * (n - 1) * latency + 2 * (n - 1) / n * np.asarray(nbytes, float) / bandwidth


def ring_allreduce_simulated(arrays):
    """The ring algorithm run on N arrays in one process, step by step as N ranks would.

    Returns ``(results, sent)``: each rank's final array (all equal to the sum) and the
    number of elements each rank sent (2 (N - 1)/N x size when N divides the size)."""
    n = len(arrays)
    if n < 1 or len({a.shape for a in arrays}) != 1:
        raise TinyLMError("ring_allreduce_simulated: expected N >= 1 arrays of one shape")
    data = [np.array(a, dtype=float).reshape(-1) for a in arrays]
    bounds = np.linspace(0, data[0].size, n + 1).astype(int)
    chunk = [slice(bounds[i], bounds[i + 1]) for i in range(n)]
    sent = np.zeros(n, dtype=int)
    for phase in ("reduce-scatter", "all-gather"):
        for step in range(n - 1):
            # every rank sends at once: the messages are taken before any is applied
            messages = []
            for r in range(n):
                c = (r - step) % n if phase == "reduce-scatter" else (r + 1 - step) % n
                messages.append(((r + 1) % n, c, data[r][chunk[c]].copy()))
                sent[r] += messages[-1][2].size
            for dest, c, values in messages:
                if phase == "reduce-scatter":
                    data[dest][chunk[c]] += values
                else:
                    data[dest][chunk[c]] = values
    return [d.reshape(arrays[0].shape) for d in data], sent


def measure_allreduce(sizes_bytes, repeats=10, comm=None, dtype=np.float32):
    """Seconds of one ``Allreduce`` (sum) per message size, on every rank of ``comm`` (a
    collective: all ranks call it). Per size: one warm-up call, then the median of
    ``repeats`` calls, each started together after a barrier; the slowest rank's median."""
    from mpi4py import MPI   # noqa: F401  (a clear error below first, without MPI)
    comm = get_comm() if comm is None else comm
    if comm.Get_size() < 2:
        raise ParallelError("measure_allreduce: needs at least 2 ranks (mpiexec -n 2)")
    itemsize = np.dtype(dtype).itemsize
    seconds = []
    for nbytes in sizes_bytes:
        send = np.ones(max(1, int(nbytes) // itemsize), dtype=dtype)
        recv = np.empty_like(send)
        times = []
        for i in range(repeats + 1):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(send, recv, op=MPI.SUM)
            if i:
                times.append(time.perf_counter() - start)
        slowest = np.array([np.median(times)])
        comm.Allreduce(MPI.IN_PLACE, slowest, op=MPI.MAX)
        seconds.append(float(slowest[0]))
    return seconds


def fit_latency_bandwidth(sizes_bytes, seconds, n):
    """``(latency, bandwidth)`` of the ring model fitted to measured all-reduce times.

    t = a + b x size is linear, with a = 2 (N - 1) latency and b = 2 (N - 1)/(N bandwidth);
    the fit minimises RELATIVE errors (weights 1/t), so the small messages, which fix the
    latency, count as much as the large ones, which fix the bandwidth."""
    size, t = np.asarray(sizes_bytes, float), np.asarray(seconds, float)
    if size.shape != t.shape or size.size < 2 or n < 2 or np.any(t <= 0):
        raise TinyLMError(f"fit_latency_bandwidth: need >= 2 positive times, one per size, "
                          f"and N >= 2; got {size.size} sizes, {t.size} times, N={n}")
    design = np.stack([np.ones_like(size), size], axis=1) / t[:, None]
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    if b <= 0:
        raise TinyLMError("fit_latency_bandwidth: the times do not grow with the size")
    if a < 0:                        # noise below the latency's resolution: through the origin
        a, b = 0.0, float(np.sum(size / t) / np.sum((size / t) ** 2))
    return a / (2 * (n - 1)), 2 * (n - 1) / (n * b)
