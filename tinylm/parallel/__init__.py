"""Parallel training (C7): data parallel over MPI, operator parallel threads, device parallel
pipelines, and what gradient synchronisation costs.

The documents' section 3.3 (C7) names three kinds of parallelism and one chore:

* data parallel (``data.py``): every process holds the whole model and a shard of the batch;
  ``DistributedDataParallel`` averages the gradients with ``Allreduce`` after backward;
* operator parallel (``threads.py``): one operation's work split over the cores of one
  process (Numba's ``prange`` threads, BLAS threads);
* device parallel (``pipeline.py``): the model itself split over processes, activations sent
  forward and gradients back (``Pipeline``, a GPT cut by layers);
* gradient synchronisation (``cost.py``): what an all-reduce costs, measured here and
  modelled across machines (ring all-reduce: 2 (N-1)/N x size / bandwidth + 2 (N-1) x latency).

The same script runs as one process or as many::

    python -m tinylm train gpt ...                 one process (mpi4py not even imported)
    mpiexec -n 2 python -m tinylm train gpt ...    2 ranks, each on half of every batch

MPI comes from the ``mpi`` extra (``pip install 'tinylm[mpi]'``: mpi4py and the mpich wheel,
whose ``mpiexec`` lands beside the interpreter, so no system MPI is needed).
"""
from .comm import (OneProcess, ParallelError, abort, abort_on_error, barrier, find_mpiexec,
                   get_comm, idle_barrier, is_root, launched_size, mpi_available, rank,
                   world_size)
from .cost import (fit_latency_bandwidth, measure_allreduce, ring_allreduce_seconds,
                   ring_allreduce_simulated)
from .data import DistributedDataParallel, plan_buckets
from .pipeline import GPTStage, LocalPipeline, Pipeline, bubble_fraction, stage_layers
from .threads import blas_threads, max_numba_threads, numba_threads, softmax_rows

__all__ = [
    "ParallelError", "OneProcess", "get_comm", "rank", "world_size", "is_root", "barrier",
    "idle_barrier", "abort", "abort_on_error", "launched_size", "mpi_available", "find_mpiexec",
    "DistributedDataParallel", "plan_buckets", "Pipeline", "LocalPipeline", "GPTStage",
    "stage_layers", "bubble_fraction", "ring_allreduce_seconds", "ring_allreduce_simulated",
    "measure_allreduce", "fit_latency_bandwidth", "softmax_rows", "numba_threads",
    "blas_threads", "max_numba_threads",
]
