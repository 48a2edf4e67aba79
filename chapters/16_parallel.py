# %% [markdown]
# # Chapter 16: parallel training
#
# The documents' section 3.3 (C7; again in 9.3) lists three ways to spread training over
# hardware, and one chore they share:
#
# * **data parallel**: several devices each take a shard of the batch, run the whole model
#   on it, and their gradients are synchronised;
# * **operator parallel**: one operation (a matrix product, a softmax) is split into pieces
#   that run at the same time;
# * **device parallel** (model parallel): the model itself is split over devices, and the
#   intermediate results are passed between them;
# * **gradient synchronisation**: whatever the split, the devices must agree on one update.
#
# The documents give no formulas for any of it. This chapter supplies them and runs each
# kind on this machine:
#
# 1. the proof that averaging the shards' gradients gives the full batch's gradient, checked
#    numerically (and what breaks it: unequal shards);
# 2. `tinylm.parallel.DistributedDataParallel`: the explicit `sync_gradients()` step, the
#    gradient buckets, training that matches one process to 1e-12;
# 3. operator parallelism: Numba's `prange` threads and BLAS threads at 1 and 2 threads;
# 4. device parallelism: a GPT cut by layers into a pipeline (activations forward, gradients
#    back), equal to the unsplit model, and its bubble;
# 5. the measured speed-ups, as a plot;
# 6. across machines: the ring all-reduce, its cost `2 (N-1)/N x size / bandwidth +
#    2 (N-1) x latency`, this machine's measured all-reduce plugged in, and GPT-2 sizes.
#
# Run it as one process (`python chapters/16_parallel.py`; it starts a 2-process job for its
# measurements when MPI is installed) or as two: `mpiexec -n 2 python
# chapters/16_parallel.py`, where rank 0 prints and draws and every rank checks.

# %%
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinylm.models import GPT, GPTConfig
from tinylm.optim import clip_grad_norm_
from tinylm.parallel import (DistributedDataParallel, LocalPipeline, OneProcess, Pipeline,
                             bubble_fraction, find_mpiexec, fit_latency_bandwidth, get_comm,
                             idle_barrier, mpi_available, plan_buckets, rank,
                             ring_allreduce_seconds, ring_allreduce_simulated, world_size)
from tinylm.parallel.measure import measure_all, timing_gpt
from tinylm.parallel.threads import (_softmax_rows, blas_threads, max_numba_threads,
                                     numba_threads, softmax_rows)

# %% [markdown]
# ## The tools of this chapter
#
# Small float64 GPTs for the exactness checks, the gradient of a batch and of its shards,
# a timer, and the measurements. The tests (`tests/test_parallel.py`, marker `ch16`) use
# them.

# %%
# GPT-2's four sizes (parameters) and two networks between machines: typical published
# figures, ASSUMED here, not measured (latency per message, bandwidth per link)
GPT2_PARAMETERS = {"GPT-2 124M": 124e6, "GPT-2 355M": 355e6, "GPT-2 774M": 774e6,
                   "GPT-2 1.5B": 1558e6}
NETWORKS = {"10 Gb/s Ethernet": (30e-6, 1.25e9), "100 Gb/s InfiniBand": (2e-6, 12.5e9)}
GPU_FLOPS = 300e12           # an assumed data-centre GPU's sustained rate (FLOP/s)
GPT2_TOKENS_PER_STEP = 0.5e6     # GPT-2's batch: about half a million tokens per step
RANK = rank()                # this process's number under mpiexec (0 without MPI)
SIZE = world_size()          # the number of processes (1 without MPI)


def tiny_gpt(n_layer=2, seed=0):
    """A small float64 GPT: every exactness check below runs in float64."""
    return GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=n_layer, n_head=2, n_embd=16,
                         dropout=0.0), seed=seed).to(np.float64)


def lm_batch(seed, rows, vocab=13, block=8):
    x = np.random.default_rng(seed).integers(0, vocab, (rows, block))
    return x, np.roll(x, -1, axis=1)


def batch_gradient(model, x, y):
    """dL/dtheta of the mean loss over the rows of (x, y), one array per parameter."""
    model.zero_grad()
    model(x, y)[1].backward()
    return [p.grad.copy() for p in model.parameters()]


def shard_gradients(make_model, x, y, bounds):
    """The gradient of each shard x[a:b] (its own mean loss), on a fresh copy of the model:
    what N data-parallel ranks compute before they synchronise."""
    return [batch_gradient(make_model(), x[a:b], y[a:b]) for a, b in zip(bounds, bounds[1:])]


def combine(grads, weights):
    """sum_r w_r g_r, parameter by parameter."""
    return [sum(w * g[i] for w, g in zip(weights, grads)) for i in range(len(grads[0]))]


def max_difference(a, b):
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


def data_parallel_step(model, ddp, optimizer, x, y):
    """One data-parallel step, every stage spelled out (C7)."""
    x, y = ddp.shard(x), ddp.shard(y)          # this rank's B/N rows of the batch
    loss = model(x, y)[1]                      # the mean over the shard
    optimizer.zero_grad()
    loss.backward()                            # this shard's gradient
    ddp.sync_gradients()                       # -> the mean over ranks = the batch's gradient
    clip_grad_norm_(model.parameters(), 1.0)   # the same on every rank: same gradients
    optimizer.step()                           # the same step on every rank
    return ddp.mean(loss.item())               # the batch's loss


def train_tiny(steps, parallel):
    """``steps`` steps of the tiny GPT on batches of 8 rows: data parallel over this job's
    ranks, or (``parallel=False``) one process on the whole batch. Returns losses, model."""
    model = tiny_gpt()
    optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    ddp = DistributedDataParallel(model, bucket_mib=0.004) if parallel else None
    losses = []
    for step in range(steps):
        x, y = lm_batch(100 + step, 8)
        if parallel:
            losses.append(data_parallel_step(model, ddp, optimizer, x, y))
        else:
            optimizer.zero_grad()
            loss = model(x, y)[1]
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
    return np.array(losses), model, ddp


def train_pipeline(pipe_or_model, steps, micro_batches=1):
    """Train the 3-layer tiny GPT ``steps`` steps, split (a pipeline object) or whole (a
    GPT); the losses."""
    losses = []
    if isinstance(pipe_or_model, GPT):
        model = pipe_or_model
        optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
        for step in range(steps):
            x, y = lm_batch(200 + step, 4)
            optimizer.zero_grad()
            loss = model(x, y)[1]
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
        return np.array(losses)
    optimizer = pipe_or_model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    for step in range(steps):
        losses.append(pipe_or_model.train_step(*lm_batch(200 + step, 4), optimizer,
                                                grad_clip=1.0))
    return np.array(losses)


def median_seconds(function, repeats):
    """Median wall time of ``function()`` over ``repeats`` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def operator_timings(quick):
    """Seconds of a prange softmax (Numba threads) and of a matrix product (BLAS threads)
    at [1, 2] threads; None where this process cannot have 2 Numba threads."""
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((2048 if quick else 8192, 512))
    n = 384 if quick else 1024
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    repeats = 5 if quick else 20
    out = {"numba": [], "blas": [], "softmax_shape": list(rows.shape), "matmul_n": n}
    for threads in (1, 2):
        if threads <= max_numba_threads():
            with numba_threads(threads):
                out["numba"].append(median_seconds(lambda: softmax_rows(rows), repeats))
        else:
            out["numba"].append(None)
        with blas_threads(threads):
            out["blas"].append(median_seconds(lambda: a @ b, repeats))
    return out


def measured_on_rank_0(function):
    """``function()`` run by rank 0 ALONE, its (JSON-able) result given to every rank: the
    other ranks sleep meanwhile (``idle_barrier``), so one-process timings get the machine
    to themselves."""
    result = function() if RANK == 0 else None
    if SIZE == 1:
        return result
    comm = get_comm()
    idle_barrier(comm)
    blob = np.frombuffer(json.dumps(result).encode(), np.uint8) if RANK == 0 else None
    length = np.array([blob.size if RANK == 0 else 0])
    comm.Bcast(length, root=0)
    buffer = blob.copy() if RANK == 0 else np.empty(int(length[0]), np.uint8)
    comm.Bcast(buffer, root=0)
    return json.loads(buffer.tobytes().decode())


def spawn_measurements(quick, processes=2):
    """Run ``python -m tinylm.parallel.measure`` under ``mpiexec -n 2`` and read its JSON
    (for a one-process run of this chapter); None when MPI is not installed or fails."""
    mpiexec = find_mpiexec()
    if not (mpi_available() and mpiexec):
        return None
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "measure.json"
        command = [mpiexec, "-n", str(processes), sys.executable, "-m",
                   "tinylm.parallel.measure", "--json", str(out)] + (["--quick"] if quick else [])
        try:
            subprocess.run(command, env=env, capture_output=True, timeout=300, check=True)
            return json.loads(out.read_text())
        except (subprocess.SubprocessError, OSError, ValueError):
            return None


def copy_bandwidth(nbytes=2 ** 24, repeats=10):
    """Bytes per second of one in-memory copy: the stand-in for the all-reduce bandwidth
    when no second process can be started (an upper bound: MPI on one machine copies
    through shared memory)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    return nbytes / median_seconds(lambda: np.copyto(dst, src), repeats)


# %%
if RANK != 0:                        # under mpiexec: rank 0 prints and draws, all check
    sys.stdout = open(os.devnull, "w")
from tinylm.chapter import Chapter, plt  # noqa: E402  (after silencing the other ranks)

ch = Chapter(16, "Parallel training")
if SIZE > 2:
    raise SystemExit("chapter 16 runs as one process or as two (mpiexec -n 2)")
ch.note(f"This run: {SIZE} process{'es' if SIZE > 1 else ''}"
        f"{' (mpiexec, MPI)' if SIZE > 1 else ' (no MPI)'}.")

# %% [markdown]
# ## 1. Data parallel: why the mean of the shards' gradients is the batch's gradient
#
# A batch of B examples has the mean loss `L = (1/B) sum_i l_i`, so its gradient is
# `dL = (1/B) sum_i dl_i`. Split the batch into N shards S_r of b = B/N examples. Rank r
# computes the mean loss of its shard, `L_r = (1/b) sum_{i in S_r} l_i`, and its gradient.
# The mean of those gradients is
#
#     (1/N) sum_r dL_r = (1/N) sum_r (1/b) sum_{i in S_r} dl_i = (1/(N b)) sum_i dl_i = dL
#
# because every example sits in exactly one shard and N b = B. Nothing about the model
# enters the proof: only that the loss is a mean over examples and that the shards are the
# same size. With unequal shards (b_r rows) the plain mean weighs a small shard's examples
# more; the right weights are `b_r / B`.

# %%
ch.section("1. C7, gradient synchronisation: the mean of shard gradients is the batch's")
ch.formula("L = (1/B) sum_i l_i,   L_r = (1/b) sum_{i in S_r} l_i,   b = B/N",
           "(1/N) sum_r dL_r = (1/(N b)) sum_i dl_i = dL")
ch.code(shard_gradients)
X1, Y1 = lm_batch(1, 12)
full = batch_gradient(tiny_gpt(), X1, Y1)
for n in (2, 3, 4):
    bounds = [r * 12 // n for r in range(n + 1)]
    mean = combine(shard_gradients(tiny_gpt, X1, Y1, bounds), [1 / n] * n)
    ch.check(f"N = {n} equal shards of {12 // n} rows: the mean of the shard gradients is "
             f"the full gradient (float64)", (max_difference(mean, full), 0.0, 1e-12))
grads = shard_gradients(tiny_gpt, X1, Y1, [0, 2, 12])          # shards of 2 and 10 rows
plain = max_difference(combine(grads, [0.5, 0.5]), full)
weighted = max_difference(combine(grads, [2 / 12, 10 / 12]), full)
ch.show("shards of 2 and 10 rows: max |plain mean - full|", plain)
ch.show("                         max |(b_r/B)-weighted mean - full|", weighted)
ch.check("unequal shards: the plain mean is wrong, the b_r/B-weighted mean is right",
         plain > 1e-4 and weighted < 1e-12)

# %% [markdown]
# ## 2. Gradient synchronisation with MPI: `DistributedDataParallel`
#
# Under `mpiexec -n N` the same script runs N times; each copy (a *rank*) builds the same
# model from the same seed, and `DistributedDataParallel` copies rank 0's weights to the
# others anyway (a model built from fresh entropy would otherwise differ). Every rank draws
# the SAME batch and keeps its rows; after `backward()`, `sync_gradients()` sums every
# gradient over the ranks with MPI's `Allreduce` and divides by N: section 1's mean. Then
# every rank holds the batch's gradient, takes the same optimiser step, and stays
# identical, optimiser state included, without ever sending a weight.
#
# The step, spelled out (the `Trainer`, and so `python -m tinylm train` under `mpiexec`, do
# exactly this):

# %%
ch.section("2. The data-parallel step and its buckets")
ch.code(data_parallel_step)
model = tiny_gpt()
for mib in (25.0, 0.004):
    buckets = plan_buckets(list(model.named_parameters()), mib)
    ch.show(f"bucket_mib = {mib:g}: Allreduce calls per step for "
            f"{len(list(model.parameters()))} parameters", len(buckets))
ch.note("Each Allreduce pays a latency (microseconds here, tens of microseconds across a "
        "network) besides its bytes, so the gradients are copied into a few flat buffers "
        "('buckets', 25 MiB each by default, as in PyTorch's DDP) and each buffer is summed "
        "in one call. Below, a tiny cap makes the GPT's gradients travel in several.")
steps = 3 if ch.quick else 6
dp_losses, dp_model, dp = train_tiny(steps, parallel=True)
ref_losses, ref_model, _ = train_tiny(steps, parallel=False)
ch.show(f"losses, data parallel over {SIZE} rank(s)", dp_losses)
ch.show("losses, one process on the whole batch", ref_losses)
ch.check(f"{SIZE} rank(s) on {8 // SIZE} rows each = one process on 8 rows: the losses "
         f"(float64, {steps} steps)", (dp_losses, ref_losses, 1e-12))
ch.check("... and the weights after them",
         (max_difference([p.data for p in dp_model.parameters()],
                         [p.data for p in ref_model.parameters()]), 0.0, 1e-12))
ch.check("the replicas are bit for bit identical, optimiser state included (a CRC-32 of "
         "every array, gathered from every rank)", dp.check_in_sync())
ch.show("Allreduce calls made (steps x buckets)", dp.allreduce_calls)

# %% [markdown]
# ## 3. Operator parallel: threads inside one operation
#
# One process can still use several cores: an operation splits its own work. Two kinds run
# in tinylm:
#
# * **Numba's threads**: `for i in prange(rows)` in an `@njit(parallel=True)` kernel hands
#   blocks of rows to a pool of `NUMBA_NUM_THREADS` threads. Below, a row-wise softmax
#   (each row: its max, its exponentials, their sum) whose rows share no memory, so the
#   result is bit for bit the same on any number of threads.
# * **BLAS's threads**: a matrix product cut into tiles over OpenBLAS's own pool
#   (`OMP_NUM_THREADS`, or threadpoolctl at run time).
#
# The two pools do not know about each other: on a 2-core machine, 2 Numba threads and 2
# BLAS threads fight over the same cores. That is why tinylm's own kernels run Numba on one
# thread and leave the cores to BLAS (the note in `tinylm/kernels/cpu.py`).

# %%
ch.section("3. Operator parallel: a prange softmax and a BLAS product at 1 and 2 threads")
ch.code(_softmax_rows.py_func)
x_soft = np.random.default_rng(1).standard_normal((257, 31)) * 4
with numba_threads(1):
    soft_one = softmax_rows(x_soft)
if max_numba_threads() >= 2:
    with numba_threads(2):
        ch.check("prange softmax on 2 threads: the 1-thread numbers, bit for bit",
                 np.array_equal(softmax_rows(x_soft), soft_one))
e = np.exp(x_soft - x_soft.max(axis=1, keepdims=True))
ch.check("... and it is the softmax", (soft_one, e / e.sum(axis=1, keepdims=True), 1e-15))
ops = measured_on_rank_0(lambda: operator_timings(ch.quick))
for kind, label in (("numba", f"prange softmax {tuple(ops['softmax_shape'])}"),
                    ("blas", f"matrix product {ops['matmul_n']} x {ops['matmul_n']}")):
    t1, t2 = ops[kind]
    ch.show(label, f"{t1 * 1e3:.2f} ms on 1 thread, " + (
        f"{t2 * 1e3:.2f} ms on 2: speed-up {t1 / t2:.2f}x" if t2 else
        "2 threads unavailable (NUMBA_NUM_THREADS=1)"))
core_flops = 2 * ops["matmul_n"] ** 3 / ops["blas"][0]
ch.show("one core's matrix-product rate (GFLOP/s)", core_flops / 1e9)

# %% [markdown]
# ## 4. Device parallel: a GPT cut into a pipeline
#
# Split the model instead of the batch: rank 0 holds the embeddings and the first blocks,
# rank 1 the last blocks, the final layer norm, the head and the loss. Forward, rank 0
# `Send`s its activations `x` (B x T x E numbers); rank 1 receives them as a leaf tensor
# with `requires_grad=True`, finishes the forward and the loss, and runs backward, which
# leaves dL/dx in that leaf's `.grad`. It sends dL/dx back, and rank 0 calls
# `x.backward(dL/dx)`: the chain rule, cut in two at x, with the wire carrying the cut.
#
# GPT's head shares its weight with the token embedding (weight tying), and the two now
# live on different ranks: each keeps a copy, and after backward they swap gradients and
# add them (a + b = b + a exactly), so both copies take the same step.
#
# A pipeline idles: rank 1 waits for the first activations, rank 0 for the first
# gradients. Cutting the batch into M micro-batches (GPipe) lets rank 0 compute piece m + 1
# while rank 1 works on piece m; the idle share of a step (the *bubble*) is
# `(S - 1)/(M + S - 1)` for S stages. `LocalPipeline` runs the same stages and schedule in
# one process, handing the arrays over instead of sending them.

# %%
ch.section("4. Device parallel: a GPT split by layers, activations forward, gradients back")
ch.code(Pipeline.forward_backward)
steps = 3 if ch.quick else 5
whole = train_pipeline(tiny_gpt(n_layer=3), steps)
for stages, micro in ((2, 1), (2, 2), (3, 4)):
    local = train_pipeline(LocalPipeline(tiny_gpt(n_layer=3), stages, micro), steps, micro)
    ch.check(f"{stages} stages, {micro} micro-batch(es), in one process: the unsplit "
             f"model's losses", (local, whole, 1e-12))
if SIZE > 1:
    gpt = tiny_gpt(n_layer=3)
    pipe = Pipeline(gpt, micro_batches=2)
    split = train_pipeline(pipe, steps, 2)
    ch.check(f"{SIZE} ranks, one stage each, Send/Recv between them: the unsplit model's "
             f"losses", (split, whole, 1e-12))
    ch.show(f"rank 0's stage holds {sum(p.size for p in pipe.parameters())} of the "
            f"{gpt.num_parameters()} parameters; bytes it sent per step",
            pipe.sent_bytes // steps)
for m in (1, 4, 16):
    ch.show(f"bubble of S = 2 stages with M = {m:2d} micro-batches, (S-1)/(M+S-1)",
            bubble_fraction(2, m))

# %% [markdown]
# ## 5. The speed-ups measured on this machine
#
# One GPT training step (nanoGPT's CPU Shakespeare settings; smaller with `--quick`), with
# one BLAS thread per process so that 1 process uses 1 core and 2 processes use 2:
#
# * data parallel: 2 ranks on half the batch each, plus the gradient all-reduce;
# * pipeline: 2 stages, 4 micro-batches;
# * beside them, section 3's operator-parallel timings.
#
# A one-process run of this chapter starts the 2-process measurements as a separate job,
# `mpiexec -n 2 python -m tinylm.parallel.measure`. On a machine shared with other work the
# figures move from run to run: they are printed and drawn, not checked.

# %%
ch.section("5. Speed-up at 1 and 2 processes or threads")
one = measured_on_rank_0(lambda: measure_all(ch.quick, comm=OneProcess()))
two = measure_all(ch.quick) if SIZE > 1 else spawn_measurements(ch.quick)
config, batch_size = timing_gpt(ch.quick)
ch.note(f"GPT: {config.n_layer} layers, {config.n_embd} wide, block {config.block_size}, "
        f"batch {batch_size}; gradients {one['data_parallel']['grad_bytes'] / 1e6:.2f} MB.")
t_one = one["data_parallel"]["step_s"]
speedups = {}
ch.show("1 process, whole batch: ms per step", t_one * 1e3)
if two is None:
    ch.note("MPI is not installed (pip install 'tinylm[mpi]'), so the 2-process figures "
            "are missing below.")
else:
    dp2 = two["data_parallel"]
    speedups["data parallel\n(processes)"] = t_one / dp2["step_s"]
    ch.show("2 processes, data parallel: ms per step (of it: gradient all-reduce)",
            f"{dp2['step_s'] * 1e3:.2f} ({dp2['sync_s'] * 1e3:.2f})")
    if "pipeline" in two:
        pp2 = two["pipeline"]
        speedups["pipeline, M = 4\n(processes)"] = t_one / pp2["step_s"]
        ch.show("2 processes, pipeline: ms per step (of it: waiting for the neighbour)",
                f"{pp2['step_s'] * 1e3:.2f} ({pp2['wait_s'] * 1e3:.2f})")
if ops["numba"][1]:
    speedups["Numba prange\n(threads)"] = ops["numba"][0] / ops["numba"][1]
speedups["BLAS product\n(threads)"] = ops["blas"][0] / ops["blas"][1]
for name, value in speedups.items():
    ch.show(f"speed-up, {' '.join(name.split())}", f"{value:.2f}x (ideal 2x)")
ch.check("every speed-up measured is a finite positive number",
         all(math.isfinite(v) and v > 0 for v in speedups.values()))
if RANK == 0:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = list(speedups)
    ax.bar(range(len(names)), [speedups[n] for n in names], color="C0")
    ax.axhline(2.0, ls="--", color="C2", label="ideal with 2 cores")
    ax.axhline(1.0, ls=":", color="gray", label="no gain")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("speed-up, 1 -> 2")
    ax.set_title("C7 on this machine: 2 processes or 2 threads against 1", fontsize=10)
    ax.legend(fontsize=8)
    ch.savefig(fig, "16_speedup.png")

# %% [markdown]
# ## 6. Across machines: what the all-reduce costs
#
# Data parallelism sends every gradient every step. How long that takes decides how far it
# scales. The ring all-reduce (what MPI and NCCL run for large messages) puts the N ranks
# in a ring and cuts each array into N chunks:
#
# * **reduce-scatter**, N - 1 steps: every rank sends one chunk to its right-hand
#   neighbour and adds the chunk it receives; after N - 1 steps rank r holds the complete
#   sum of chunk r + 1;
# * **all-gather**, N - 1 more steps: the finished chunks travel once around the ring.
#
# Each rank sends 2 (N - 1) messages of size/N bytes, so with a latency alpha per message
# and a bandwidth beta per link,
#
#     t(N, size) = 2 (N - 1) alpha + 2 (N - 1)/N x size / beta
#
# The bandwidth term approaches 2 x size / beta for any N: the traffic per link does not
# grow with the number of machines, only the latency term does. Below: the ring run step
# by step in NumPy, this machine's all-reduce measured between 2 processes and fitted to
# the formula, and the formula applied to GPT-2's sizes on this machine and on two typical
# networks (their figures assumed, not measured).

# %%
ch.section("6. The ring all-reduce: t = 2 (N - 1)/N x size / bandwidth + 2 (N - 1) latency")
ch.formula("t(N, size) = 2 (N - 1) alpha + 2 (N - 1)/N x size / beta")
ch.code(ring_allreduce_simulated)
rng = np.random.default_rng(0)
for n in (2, 3, 4, 8):
    arrays = [rng.standard_normal(24) for _ in range(n)]
    results, sent = ring_allreduce_simulated(arrays)
    ch.check(f"N = {n}: every rank ends with the sum, having sent 2 (N - 1)/N x 24 = "
             f"{2 * (n - 1) * 24 // n} numbers",
             all(np.allclose(r, sum(arrays), atol=1e-12) for r in results)
             and set(sent.tolist()) == {2 * (n - 1) * 24 // n})
    alpha, beta = 1e-5, 1e9
    counted = 2 * (n - 1) * alpha + sent[0] * 8 / beta      # messages x latency + bytes/beta
    ch.check(f"N = {n}: the formula equals the simulation's count of messages and bytes",
             (ring_allreduce_seconds(24 * 8, n, beta, alpha), counted, 1e-18))
if two is not None and "allreduce" in two:
    sizes, seconds = np.array(two["allreduce"]["bytes"]), np.array(two["allreduce"]["seconds"])
    latency, bandwidth = fit_latency_bandwidth(sizes, seconds, 2)
    for size, t in zip(sizes, seconds):
        ch.show(f"  Allreduce of {size:>9d} bytes between 2 processes",
                f"{t * 1e6:9.1f} us  ({size / t / 1e9:.2f} GB/s)")
    source = "measured between 2 processes (fitted to the formula)"
else:
    sizes = seconds = None
    latency, bandwidth = 1e-6, copy_bandwidth()
    source = "no MPI: an in-memory copy's bandwidth, latency assumed 1 us"
ch.show(f"this machine, {source}: latency (us)", latency * 1e6)
ch.show(f"this machine, {source}: bandwidth (GB/s)", bandwidth / 1e9)
links = {"as measured here (one machine)": (latency, bandwidth), **NETWORKS}
counts = np.array([2, 4, 8, 16, 32, 64])
print("\nPredicted all-reduce of the fp32 gradients (seconds per step):")
print(f"{'model':>12} {'link':>30} " + " ".join(f"N={n:<5d}" for n in counts))
for model_name, params in GPT2_PARAMETERS.items():
    for link, (a, b) in links.items():
        t = ring_allreduce_seconds(4 * params, counts, b, a)
        print(f"{model_name:>12} {link:>30} " + " ".join(f"{x:7.3f}" for x in t))
flops = 6 * GPT2_PARAMETERS["GPT-2 124M"] * GPT2_TOKENS_PER_STEP / counts  # per rank
sync = ring_allreduce_seconds(4 * GPT2_PARAMETERS["GPT-2 124M"], counts,
                              NETWORKS["10 Gb/s Ethernet"][1], NETWORKS["10 Gb/s Ethernet"][0])
ch.show("GPT-2 124M, 0.5M tokens a step, N = 2..64: compute per rank on one core here (s)",
        flops / core_flops)
ch.show("... on an assumed 300 TFLOP/s GPU per rank (s)", flops / GPU_FLOPS)
ch.show("... the all-reduce of its gradients over 10 Gb/s Ethernet (s)", sync)
ch.note("6 x parameters x tokens is the usual count of a training step's arithmetic "
        "(forward 2, backward 4 FLOPs per parameter and token). On CPU cores it dwarfs the "
        "synchronisation; on GPUs the same all-reduce takes longer than the arithmetic as "
        "soon as N passes a few ranks, which is why GPU clusters sit on 100+ Gb/s links "
        "and overlap the all-reduce with the backward pass.")
ch.check("the bandwidth term tends to 2 x size / beta: at N = 64 it is 2 x 63/64 of it",
         (ring_allreduce_seconds(1e9, 64, 1e9, 0.0), 2 * 63 / 64, 1e-15))
if RANK == 0:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    grid = np.logspace(3, 8, 50)
    if sizes is not None:
        left.loglog(sizes, seconds * 1e6, "o", label="measured, 2 processes")
    left.loglog(grid, ring_allreduce_seconds(grid, 2, bandwidth, latency) * 1e6, "-",
                label=f"formula: {latency * 1e6:.1f} us, {bandwidth / 1e9:.2f} GB/s")
    left.set_xlabel("message (bytes)")
    left.set_ylabel("all-reduce time (us)")
    left.set_title("this machine", fontsize=10)
    left.legend(fontsize=8)
    for link, (a, b) in links.items():
        right.semilogy(counts, ring_allreduce_seconds(4 * 124e6, counts, b, a), "o-",
                       label=link)
    right.set_xscale("log", base=2)
    right.set_xlabel("ranks N")
    right.set_ylabel("seconds per step")
    right.set_title("ring all-reduce of GPT-2 124M's fp32 gradients (496 MB)", fontsize=10)
    right.legend(fontsize=8)
    ch.savefig(fig, "16_allreduce.png")

# %% [markdown]
# ## Summary
#
# * Data parallel: N ranks on B/N rows each and one all-reduce of the gradients give the
#   one-process gradient exactly (float64, 1e-12), because the batch loss is a mean and the
#   shards are equal; unequal shards need the weights b_r/B. The optimiser needs no
#   synchronisation: same weights + same gradients = same state.
# * Gradient synchronisation is bucketed: few large Allreduce calls, not one per tensor.
# * Operator parallel: threads split one operation (Numba's `prange`, BLAS); the speed-up
#   depends on whether the cores are free, and two thread pools can fight over them.
# * Device parallel: a model cut by layers trains exactly like the whole when activations
#   go forward and their gradients back; micro-batches shrink the idle bubble
#   (S - 1)/(M + S - 1).
# * Across machines the ring all-reduce costs 2 (N-1)/N x size / bandwidth +
#   2 (N-1) x latency: bandwidth-bound and nearly independent of N for large models.

# %%
ch.finish()
