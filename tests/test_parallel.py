"""tinylm.parallel (C7): data parallel over MPI gives the one-process gradients and weights,
the pipeline split gives the unsplit model's loss, a failing rank ends the job, and the
pieces (buckets, ring all-reduce, cost fit, prange kernel) do what they say.

The tests marked ``mpi`` run scripts from tests/mpi_scripts/ under ``mpiexec -n 2`` (a
subprocess with a timeout) and compare with the same code run here as one process; they
skip when mpi4py or mpiexec is missing (``pip install 'tinylm[mpi]'``).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinylm import TinyLMError, checkpoint
from tinylm.io import load_npz
from tinylm.kernels import reference
from tinylm.models import GPT, GPTConfig
from tinylm.optim import clip_grad_norm_
from tinylm.parallel import (DistributedDataParallel, LocalPipeline, ParallelError,
                             bubble_fraction, find_mpiexec, fit_latency_bandwidth,
                             mpi_available, plan_buckets, ring_allreduce_seconds,
                             ring_allreduce_simulated, softmax_rows, stage_layers)
from tinylm.parallel.threads import max_numba_threads, numba_threads
from tinylm.train import Trainer

from chapter_tools import assert_chapter_passes, load_definitions

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "mpi_scripts"
MPIEXEC = find_mpiexec()
needs_mpi = pytest.mark.skipif(not (mpi_available() and MPIEXEC),
                               reason="needs mpi4py and mpiexec: pip install 'tinylm[mpi]'")
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                      "TINYLM_MPI")

sys.path.insert(0, str(SCRIPTS))
import ddp_gpt  # noqa: E402  (a helper script, also run under mpiexec)
import pipeline_gpt  # noqa: E402


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    env.update(extra)
    return env


def run_processes(args, n=2, timeout=180, **env):
    """``mpiexec -n N python ARGS`` (n=None: plain python); on timeout the whole process
    group is killed, so no rank outlives the test."""
    command = ([MPIEXEC, "-n", str(n)] if n else []) + [sys.executable, *map(str, args)]
    proc = subprocess.Popen(command, cwd=ROOT, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    start = time.perf_counter()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(command)} still ran after {timeout} s (a hang?)\n{out}\n{err}")
    return proc.returncode, out, err, time.perf_counter() - start


def tiny_gpt(n_layer=2, dropout=0.0, seed=0):
    return GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=n_layer, n_head=2, n_embd=16,
                         dropout=dropout), seed=seed).to(np.float64)


def batch(seed=1, rows=8):
    x = np.random.default_rng(seed).integers(0, 13, (rows, 8))
    return x, np.roll(x, -1, axis=1)


# --- without MPI ------------------------------------------------------------------------
def test_one_process_needs_no_mpi4py():
    code = ("import sys, tinylm, tinylm.parallel as P; from tinylm.cli import main; "
            "print(P.world_size(), P.rank(), P.is_root(), 'mpi4py' in sys.modules)")
    rc, out, err, _ = run_processes(["-c", code], n=None)
    assert rc == 0, err
    assert out.split() == ["1", "0", "True", "False"]


def test_several_processes_without_mpi4py_ask_for_the_mpi_extra():
    code = ("import sys; sys.modules['mpi4py'] = None; import tinylm.parallel as P\n"
            "try:\n    P.world_size()\nexcept P.ParallelError as e:\n    print(e)")
    rc, out, err, _ = run_processes(["-c", code], n=None, PMI_SIZE="2", PMI_RANK="0")
    assert rc == 0, err
    assert "started 2 processes" in out and "pip install 'tinylm[mpi]'" in out


def test_buckets_hold_every_parameter_once_up_to_the_cap():
    model = tiny_gpt()
    named = list(model.named_parameters())
    cap = 0.004                                   # MiB: 524 float64 values
    buckets = plan_buckets(named, cap)
    assert [n for b in buckets for n in b.names] == [n for n, _ in named]
    for b in buckets:
        assert b.slices[0][0] == 0 and all(s[1] == t[0] for s, t in zip(b.slices, b.slices[1:]))
        assert b.size == b.slices[-1][1] and b.buffer.size == b.size + len(b.params)
        assert b.size * 8 <= cap * 2 ** 20 or len(b.params) == 1   # too big: a bucket alone
    assert len(plan_buckets(named, 25.0)) == 1
    mixed = [("a", tiny_gpt().transformer.ln_f.weight), ("b", GPT(GPTConfig(
        block_size=4, vocab_size=5, n_layer=1, n_head=1, n_embd=4)).transformer.ln_f.weight)]
    assert [b.buffer.dtype for b in plan_buckets(mixed, 25.0)] == [np.float64, np.float32]
    for bad in (0, -1.0, "25"):
        with pytest.raises(TinyLMError, match="bucket_mib"):
            plan_buckets(named, bad)


def test_one_process_wrapper_changes_nothing():
    model, plain = tiny_gpt(), tiny_gpt()
    ddp = DistributedDataParallel(model, bucket_mib=0.004)
    x, y = batch()
    assert np.array_equal(ddp.shard(x), x)
    model(x, y)[1].backward()
    plain(x, y)[1].backward()
    ddp.sync_gradients()
    for p, q in zip(model.parameters(), plain.parameters()):
        assert np.array_equal(p.grad, q.grad)
    assert ddp.allreduce_calls == len(ddp.buckets) > 1
    assert ddp.mean(2.5) == 2.5 and ddp.check_in_sync()
    with pytest.raises(TinyLMError, match="same computation|must wrap"):
        Trainer(plain, plain.configure_optimizers(0.0, 1e-3, (0.9, 0.99)), None,
                parallel=ddp)
    with pytest.raises(TinyLMError, match="batch axis"):
        ddp.shard(3.0)


def test_the_mean_of_shard_gradients_is_the_full_batch_gradient():
    """C7's gradient synchronisation, without MPI: N copies of the model on B/N rows each."""
    x, y = batch(rows=12)
    full = tiny_gpt()
    full(x, y)[1].backward()
    for n in (2, 3, 4):
        total = None
        for r in range(n):
            replica = tiny_gpt()
            rows = slice(r * 12 // n, (r + 1) * 12 // n)
            replica(x[rows], y[rows])[1].backward()
            grads = [p.grad for p in replica.parameters()]
            total = grads if total is None else [a + b for a, b in zip(total, grads)]
        for g, p in zip(total, full.parameters()):
            np.testing.assert_allclose(g / n, p.grad, rtol=0, atol=1e-12)


def test_stage_layers_and_bubble():
    assert stage_layers(3, 2) == [(0, 2), (2, 3)]
    assert stage_layers(12, 4) == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert stage_layers(5, 1) == [(0, 5)]
    for bad in (0, 4, 2.0):
        with pytest.raises(TinyLMError, match="stages"):
            stage_layers(3, bad)
    assert bubble_fraction(2, 1) == 0.5 and bubble_fraction(4, 13) == pytest.approx(3 / 16)


@pytest.mark.parametrize("stages,micro", [(2, 1), (2, 2), (3, 4)])
def test_pipeline_in_one_process_equals_the_unsplit_model(stages, micro):
    whole, split = tiny_gpt(n_layer=3), tiny_gpt(n_layer=3)
    pipe = LocalPipeline(split, stages, micro_batches=micro)
    opt_whole = whole.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    opt_split = pipe.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    for step in range(4):
        x, y = batch(seed=step, rows=4)
        opt_whole.zero_grad()
        loss = whole(x, y)[1]
        loss.backward()
        clip_grad_norm_(whole.parameters(), 1.0)
        opt_whole.step()
        assert pipe.train_step(x, y, opt_split, grad_clip=1.0) == pytest.approx(
            loss.item(), abs=1e-12)
    for p, q in zip(whole.parameters(), split.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=0, atol=1e-12)
    assert pipe.sent_bytes == 4 * 2 * (stages - 1) * 4 * 8 * 16 * 8   # steps, both ways
    with pytest.raises(TinyLMError, match="micro_batches"):
        LocalPipeline(tiny_gpt(n_layer=3), 2, micro_batches=3).forward_backward(*batch(rows=4))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_ring_allreduce_sums_and_sends_2_n_minus_1_over_n_of_the_array(n):
    rng = np.random.default_rng(n)
    arrays = [rng.standard_normal((4, 10)) for _ in range(n)]
    results, sent = ring_allreduce_simulated(arrays)
    for result in results:
        np.testing.assert_allclose(result, sum(arrays), atol=1e-12)
    if 40 % n == 0:
        assert list(sent) == [2 * (n - 1) * 40 // n] * n
    assert abs(sent.mean() - 2 * (n - 1) / n * 40) <= 2 * (n - 1)


def test_ring_cost_formula_and_its_fit_recover_latency_and_bandwidth():
    assert ring_allreduce_seconds(1e9, 1, 1e9, 1e-5) == 0.0
    assert ring_allreduce_seconds(1e9, 2, 1e9, 1e-5) == pytest.approx(1.0 + 2e-5)
    assert ring_allreduce_seconds(1e9, 64, 1e9, 0.0) == pytest.approx(2 * 63 / 64)
    sizes = np.logspace(2, 8, 13)
    for n in (2, 8):
        t = ring_allreduce_seconds(sizes, n, 3e9, 4e-6)
        latency, bandwidth = fit_latency_bandwidth(sizes, t, n)
        assert latency == pytest.approx(4e-6, rel=1e-6)
        assert bandwidth == pytest.approx(3e9, rel=1e-6)
    with pytest.raises(TinyLMError, match="bandwidth"):
        ring_allreduce_seconds(1e6, 2, 0.0, 1e-6)
    with pytest.raises(TinyLMError, match="positive times"):
        fit_latency_bandwidth([1, 2], [1.0], 2)


def test_prange_softmax_is_the_reference_on_any_number_of_threads():
    x = np.random.default_rng(0).standard_normal((64, 33)) * 5
    expected = reference.softmax_forward(x)
    for threads in range(1, max_numba_threads() + 1):
        with numba_threads(threads):
            np.testing.assert_allclose(softmax_rows(x), expected, rtol=1e-13, atol=1e-16)
    assert softmax_rows(x.astype(np.float32)).dtype == np.float32
    with pytest.raises(TinyLMError, match="2-D float"):
        softmax_rows(np.zeros(3))
    with pytest.raises(TinyLMError, match="dtype int64"):
        softmax_rows(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ParallelError, match="NUMBA_NUM_THREADS"):
        with numba_threads(max_numba_threads() + 1):
            pass


# --- under mpiexec -n 2 --------------------------------------------------------------------
@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    rc, stdout, err, _ = run_processes([SCRIPTS / "ddp_gpt.py", out])
    assert rc == 0, f"{stdout}\n{err}"
    one = ddp_gpt.run(False, tmp_path_factory.mktemp("one"))
    return one, load_npz(out / "rank0.npz"), load_npz(out / "rank1.npz")


@pytest.mark.mpi
@needs_mpi
def test_two_ranks_on_half_batches_give_the_gradients_and_weights_of_one(ddp_runs):
    one, rank0, rank1 = ddp_runs
    assert int(rank0["buckets"]) > 1                   # several Allreduce calls per step
    for prefix in ("step.", "grads.", "params."):
        keys = [k for k in one if k.startswith(prefix)]
        assert len(keys) == len(list(tiny_gpt().parameters()))
        for key in keys:
            np.testing.assert_allclose(rank0[key], one[key], rtol=0, atol=1e-12, err_msg=key)
    for key in ("train_loss", "eval_train", "eval_val"):
        np.testing.assert_allclose(rank0[key], one[key], rtol=0, atol=1e-12, err_msg=key)
    for key in rank0:                                   # the replicas are bit for bit equal
        if not key.startswith("step."):
            assert np.array_equal(rank0[key], rank1[key]), key


@pytest.mark.mpi
@needs_mpi
def test_two_ranks_resume_exactly_from_rank_0s_checkpoint_with_dropout(ddp_runs):
    _, rank0, rank1 = ddp_runs
    for rank in (rank0, rank1):
        for key in rank:
            if key.startswith("straight."):
                resumed = "resumed." + key[len("straight."):]
                assert np.array_equal(rank[key], rank[resumed]), key
    assert len(rank0["straight.loss"]) == 6


@pytest.mark.mpi
@needs_mpi
def test_uneven_shards_are_refused(ddp_runs):
    assert bool(ddp_runs[1]["odd_batch_refused"])


@pytest.mark.mpi
@needs_mpi
def test_gpt_split_over_two_ranks_trains_as_the_unsplit_model(tmp_path):
    rc, out, err, _ = run_processes([SCRIPTS / "pipeline_gpt.py", tmp_path])
    assert rc == 0, f"{out}\n{err}"
    expected = pipeline_gpt.reference()
    ranks = [load_npz(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    for m in (1, 2):
        owned = [{k[len(f"m{m}."):] for k in r if k.startswith(f"m{m}.")} for r in ranks]
        assert owned[0] | owned[1] == set(expected) - {"loss"}       # every weight somewhere
        assert owned[0] & owned[1] == {"transformer.wte.weight"}     # only the tied one twice
        assert any(".h.0." in k for k in owned[0]) and any(".h.2." in k for k in owned[1])
        for r, names in zip(ranks, owned):
            np.testing.assert_allclose(r[f"loss.m{m}"], expected["loss"], rtol=0, atol=1e-12)
            for name in names:
                np.testing.assert_allclose(r[f"m{m}.{name}"], expected[name], rtol=0,
                                           atol=1e-12, err_msg=name)


@pytest.mark.mpi
@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_error_instead_of_hanging():
    rc, out, err, seconds = run_processes([SCRIPTS / "failing_rank.py"], timeout=120)
    assert rc != 0
    assert "unreachable" not in out
    assert "the data of rank 1 is unreadable" in err and "rank 1 of 2" in err
    assert "aborting the job" in err


CLI_ARGS = ["-m", "tinylm", "train", "gpt", "--batch-size", "4", "--n-layer", "1",
            "--n-embd", "32", "--eval-interval", "3", "--eval-iters", "2", "--quiet",
            "--score-batches", "1", "--lr-decay-iters", "6"]


@pytest.mark.mpi
@needs_mpi
def test_the_training_command_runs_unchanged_under_mpiexec(tmp_path):
    rc, out, err, _ = run_processes(CLI_ARGS + ["--max-iters", "6", "--out", tmp_path / "one"],
                                    n=None)
    assert rc == 0, err
    rc, out, err, _ = run_processes(CLI_ARGS + ["--max-iters", "3", "--out", tmp_path / "two"])
    assert rc == 0, f"{out}\n{err}"
    assert out.count("wrote ") == 1 and out.count('"final_train_loss"') == 1  # rank 0 alone
    rc, out, err, _ = run_processes(CLI_ARGS + ["--max-iters", "6", "--out", tmp_path / "two",
                                                "--resume"])
    assert rc == 0, f"{out}\n{err}"
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["iters"] == 6
    # float32: the same run to rounding (the shards' sums are grouped differently)
    assert two["final_train_loss"] == pytest.approx(one["final_train_loss"], rel=1e-5)
    assert two["best_val_loss"] == pytest.approx(one["best_val_loss"], rel=1e-5)
    w1, _ = checkpoint.load(tmp_path / "one" / "model.safetensors")
    w2, _ = checkpoint.load(tmp_path / "two" / "model.safetensors")
    for name in w1:
        np.testing.assert_allclose(w2[name], w1[name], rtol=0, atol=1e-4, err_msg=name)


@pytest.mark.mpi
@needs_mpi
def test_a_command_error_on_every_rank_ends_the_job(tmp_path):
    rc, out, err, _ = run_processes(CLI_ARGS + ["--max-iters", "2", "--out", tmp_path,
                                                "--corpus", tmp_path / "missing.txt"],
                                    timeout=120)
    assert rc != 0 and "missing.txt" in err and "does not exist" in err


# --- chapter 16 ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ch16():
    return load_definitions("16_parallel.py")


@pytest.mark.ch16
def test_c7_shard_gradients_combine_to_the_batch_gradient(ch16):
    x, y = ch16.lm_batch(4, 12)
    full = ch16.batch_gradient(ch16.tiny_gpt(), x, y)
    equal = ch16.shard_gradients(ch16.tiny_gpt, x, y, [0, 4, 8, 12])
    assert ch16.max_difference(ch16.combine(equal, [1 / 3] * 3), full) < 1e-12
    uneven = ch16.shard_gradients(ch16.tiny_gpt, x, y, [0, 3, 12])
    assert ch16.max_difference(ch16.combine(uneven, [3 / 12, 9 / 12]), full) < 1e-12
    assert ch16.max_difference(ch16.combine(uneven, [0.5, 0.5]), full) > 1e-4


@pytest.mark.ch16
def test_c7_chapter_data_parallel_step_equals_the_plain_step(ch16):
    losses, model, ddp = ch16.train_tiny(3, parallel=True)
    plain_losses, plain, _ = ch16.train_tiny(3, parallel=False)
    np.testing.assert_allclose(losses, plain_losses, rtol=0, atol=1e-12)
    for p, q in zip(model.parameters(), plain.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=0, atol=1e-12)
    assert ddp.allreduce_calls == 3 * len(ddp.buckets)


@pytest.mark.ch16
def test_c7_chapter_pipeline_and_measurements_run_as_one_process(ch16):
    whole = ch16.train_pipeline(ch16.tiny_gpt(n_layer=3), 2)
    split = ch16.train_pipeline(LocalPipeline(ch16.tiny_gpt(n_layer=3), 2, 2), 2, 2)
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-12)
    assert ch16.measured_on_rank_0(lambda: {"a": [1.5, None]}) == {"a": [1.5, None]}
    assert ch16.copy_bandwidth(2 ** 16, 2) > 0


@pytest.mark.ch16
def test_chapter_16_runs(tmp_path):
    out = assert_chapter_passes("16_parallel.py", tmp_path,
                                ["16_speedup.png", "16_allreduce.png"])
    assert "2 (N - 1)/N" in out


@pytest.mark.ch16
@pytest.mark.mpi
@needs_mpi
def test_chapter_16_runs_under_mpiexec(tmp_path):
    rc, out, err, _ = run_processes([ROOT / "chapters" / "16_parallel.py", "--quick",
                                     "--figures", tmp_path], timeout=300)
    assert rc == 0, f"{out[-4000:]}\n{err[-4000:]}"
    assert "[FAIL]" not in out and out.count("checks passed") == 1     # rank 0 prints
    assert "2 processes" in out
    assert (tmp_path / "16_speedup.png").is_file() and (tmp_path / "16_allreduce.png").is_file()
