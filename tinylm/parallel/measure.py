"""This machine's parallel speeds: a GPT training step at 1 or N processes (data parallel and
pipeline) and the all-reduce time per message size. Chapter 16 plots them.

    python -m tinylm.parallel.measure                       one process: the plain step
    mpiexec -n 2 python -m tinylm.parallel.measure --json out.json   2 ranks, all of it

Every function here is collective: every rank calls it, each times its own part, and the
slowest rank's time is the job's (a step ends when the last rank finishes). Times are
medians over repeated steps, after one warm-up step, with one BLAS thread per process (so
N processes use N cores, one process one core).
"""
import argparse
import json
import sys
import time

import numpy as np

from ..models import GPT, GPTConfig
from ..optim import clip_grad_norm_
from .comm import get_comm
from .cost import measure_allreduce
from .data import DistributedDataParallel
from .pipeline import Pipeline
from .threads import blas_threads

__all__ = ["timing_gpt", "data_parallel_step", "pipeline_step", "measure_all"]


def timing_gpt(quick):
    """The GPT timed: (config, batch size). Full: nanoGPT's CPU Shakespeare settings."""
    if quick:
        return GPTConfig(block_size=32, vocab_size=65, n_layer=2, n_head=2, n_embd=64,
                         dropout=0.0), 8
    return GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128,
                     dropout=0.0), 16


def _batch(config, batch_size):
    x = np.random.default_rng(0).integers(0, config.vocab_size, (batch_size, config.block_size))
    return x, np.roll(x, -1, axis=1)


def _slowest(comm, seconds):
    if comm.Get_size() == 1:
        return float(seconds)
    from mpi4py import MPI
    value = np.array([float(seconds)])
    comm.Allreduce(MPI.IN_PLACE, value, op=MPI.MAX)
    return float(value[0])


def data_parallel_step(config, batch_size, steps, comm=None):
    """Median seconds of one data-parallel training step (each rank on B/N rows) and of its
    gradient synchronisation alone."""
    comm = get_comm() if comm is None else comm
    model = GPT(config, seed=0)
    ddp = DistributedDataParallel(model, comm=comm)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    x, y = (ddp.shard(a) for a in _batch(config, batch_size))
    step_times, sync_times = [], []
    with blas_threads(1):
        for i in range(steps + 1):
            comm.Barrier()
            start = time.perf_counter()
            optimizer.zero_grad()
            model(x, y)[1].backward()
            synced = time.perf_counter()
            ddp.sync_gradients()
            sync = time.perf_counter() - synced
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if i:
                step_times.append(time.perf_counter() - start)
                sync_times.append(sync)
    return {"step_s": _slowest(comm, np.median(step_times)),
            "sync_s": _slowest(comm, np.median(sync_times)),
            "grad_bytes": int(sum(b.nbytes for b in ddp.buckets))}


def pipeline_step(config, batch_size, steps, micro_batches, comm=None):
    """Median seconds of one pipelined training step (one stage per rank), and of this
    rank's waiting for its neighbours within it (the slowest rank's)."""
    comm = get_comm() if comm is None else comm
    pipe = Pipeline(GPT(config, seed=0), micro_batches=micro_batches, comm=comm)
    optimizer = pipe.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    x, y = _batch(config, batch_size)
    times, waits = [], []
    with blas_threads(1):
        for i in range(steps + 1):
            comm.Barrier()
            pipe.wait_seconds = 0.0
            start = time.perf_counter()
            pipe.train_step(x, y, optimizer, grad_clip=1.0)
            if i:
                times.append(time.perf_counter() - start)
                waits.append(pipe.wait_seconds)
    return {"step_s": _slowest(comm, np.median(times)),
            "wait_s": _slowest(comm, np.median(waits)), "micro_batches": micro_batches}


def measure_all(quick, comm=None):
    """Everything chapter 16 plots, as a JSON-able dict (every rank gets it)."""
    comm = get_comm() if comm is None else comm
    config, batch_size = timing_gpt(quick)
    steps = 4 if quick else 15
    out = {"processes": comm.Get_size(), "quick": bool(quick),
           "gpt": {"n_layer": config.n_layer, "n_embd": config.n_embd,
                   "block_size": config.block_size, "batch_size": batch_size},
           "data_parallel": data_parallel_step(config, batch_size, steps, comm)}
    if comm.Get_size() > 1:
        if comm.Get_size() <= config.n_layer:       # a stage needs at least one block
            out["pipeline"] = pipeline_step(config, batch_size, steps, 4, comm)
        sizes = [2 ** k for k in range(10, 23 if quick else 27, 2)]
        out["allreduce"] = {"bytes": sizes, "seconds": measure_allreduce(
            sizes, repeats=5 if quick else 20, comm=comm)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinylm.parallel.measure",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller GPT, fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="also write the results here (rank 0)")
    args = parser.parse_args(argv)
    comm = get_comm()
    results = measure_all(args.quick, comm)
    if comm.Get_rank() == 0:
        dp = results["data_parallel"]
        print(f"{results['processes']} process(es): GPT step {dp['step_s'] * 1e3:.1f} ms, "
              f"gradient sync {dp['sync_s'] * 1e3:.2f} ms of it")
        if "allreduce" in results:
            for size, t in zip(results["allreduce"]["bytes"], results["allreduce"]["seconds"]):
                print(f"  Allreduce {size:>10d} bytes: {t * 1e6:9.1f} us "
                      f"({size / t / 1e9:.2f} GB/s)")
        print(json.dumps(results))
        if args.json:
            from ..io import save_json
            save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
