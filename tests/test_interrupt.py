"""Interrupted training: a run killed with SIGKILL between checkpoint writes, inside one, or at
a random moment, then resumed, ends with exactly the losses of a run that never stopped; the
checkpoint on disk is never half-written. Ctrl-C (SIGINT) saves a checkpoint and exits
cleanly, from the Trainer and from ``python -m tinylm train``.

The killed runs are real processes (``python -c CHILD``) training a small GPT with dropout
(so every random generator's state must survive too), writing a checkpoint after every
step and printing ``SAVED <iteration>`` after each write. With ``--slow-write SECONDS`` the
checkpoint's file object pauses after its first bytes, like a slow disk, so a kill can be
aimed inside a write.
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

from tinylm import checkpoint
from tinylm.models import GPT, GPTConfig
from tinylm.text import random_windows
from tinylm.train import CHECKPOINT_NAME, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
MAX_ITERS = 150

CHILD = r'''
import contextlib, sys, time
import numpy as np
from tinylm import checkpoint
from tinylm.models import GPT, GPTConfig
from tinylm.text import random_windows
from tinylm.train import TrainConfig, Trainer

out, max_iters, resume, slow = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4])
TEXT = np.array(list(b"abcabdabcabdabcabe" * 20), dtype=np.int64) - 97


get_batch = random_windows({"train": TEXT[:300], "val": TEXT[300:]}, 8, 4)   # (x, y) windows


class SlowFile:
    """A file that pauses after its first write: a slow disk, so a kill can land mid-write."""
    def __init__(self, f):
        self.f, self.paused = f, False
    def write(self, data):
        n = self.f.write(data)
        if not self.paused:
            self.paused = True
            self.f.flush()
            print("WRITING", flush=True)
            time.sleep(slow)
        return n
    def __getattr__(self, name):
        return getattr(self.f, name)


if slow:
    real_atomic_write = checkpoint.atomic_write

    @contextlib.contextmanager
    def slow_atomic_write(path, mode="wb", encoding=None):
        with real_atomic_write(path, mode, encoding) as f:
            yield SlowFile(f)
    checkpoint.atomic_write = slow_atomic_write


class Reporting(Trainer):
    def save_checkpoint(self, path):
        super().save_checkpoint(path)
        print(f"SAVED {self.iter}", flush=True)


model = GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=16,
                      dropout=0.1), seed=0)
cfg = TrainConfig(max_iters=max_iters, lr=1e-2, min_lr=1e-3, warmup_iters=2, eval_interval=5,
                  eval_iters=2, checkpoint_interval=1, seed=7, progress=False, out_dir=out)
Reporting(model, model.configure_optimizers(0.1, 1e-2, (0.9, 0.99)), get_batch, cfg).fit(
    resume=resume)
print("DONE", flush=True)
'''


class Child:
    """One training process and its output, read line by line."""

    def __init__(self, out, resume, slow=0.0):
        env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(out), str(MAX_ITERS), "1" if resume else "0",
             str(slow)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=ROOT)

    def wait_for(self, wanted, timeout=120):
        """Read lines until one equals ``wanted`` (or starts with it, for a prefix)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"the child ended before {wanted!r}: "
                                     f"{self.proc.stderr.read()[-2000:]}")
            if line.strip() == wanted or line.startswith(wanted):
                return line.strip()
        raise AssertionError(f"no {wanted!r} within {timeout} s")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        assert self.proc.returncode == -signal.SIGKILL
        self.close()

    def finish(self):
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err[-3000:]
        assert out.strip().endswith("DONE")
        self.close()

    def close(self):
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream and not stream.closed:
                stream.close()


def saved_iteration(out):
    """The iteration the checkpoint holds; loading also verifies its checksum."""
    _, meta = checkpoint.load(out / CHECKPOINT_NAME)
    return meta["iter"]


def final_history(out):
    _, meta = checkpoint.load(out / CHECKPOINT_NAME)
    return meta["history"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The losses of a run that was never interrupted."""
    out = tmp_path_factory.mktemp("reference")
    Child(out, resume=False).finish()
    history = final_history(out)
    assert len(history["train"]) == MAX_ITERS
    return history


@pytest.mark.slow
def test_sigkill_between_during_and_at_random_points_then_resume(tmp_path, reference):
    out = tmp_path / "run"
    kills = []

    # 1. between writes: right after the checkpoint of iteration 3 is complete
    child = Child(out, resume=False)
    child.wait_for("SAVED 3")
    child.kill()
    kills.append(("after a write", saved_iteration(out)))
    assert kills[-1][1] >= 3

    # 2. during a write: the slow disk pauses after the first bytes of the next checkpoint
    child = Child(out, resume=True, slow=30.0)
    child.wait_for("WRITING")
    before = saved_iteration(out)
    temp_files = list(out.glob(f".{CHECKPOINT_NAME}.*.tmp"))
    assert len(temp_files) == 1 and temp_files[0].stat().st_size == 8   # half-written
    child.kill()
    assert saved_iteration(out) == before          # the old checkpoint, complete and verified
    kills.append(("during a write", before))

    # 3. at random moments (a seeded schedule): whatever the process was doing (kill()
    # checks that it was still running)
    delays = np.random.default_rng(0).uniform(0.0, 0.3, size=5)
    for delay in delays:
        child = Child(out, resume=True)
        child.wait_for("SAVED")                     # running: one step done since the resume
        time.sleep(float(delay))
        child.kill()
        kills.append((f"{delay:.2f} s later", saved_iteration(out)))

    # 4. to the end; the half-written temp file of kill 2 is cleaned up on the way
    Child(out, resume=True).finish()
    assert not list(out.glob(f".{CHECKPOINT_NAME}.*.tmp"))
    resumed = final_history(out)
    assert [r["loss"] for r in resumed["train"]] == [r["loss"] for r in reference["train"]]
    assert resumed["train"] == reference["train"]   # iterations and learning rates as well
    # the killed runs evaluated where the reference did, and at resume points in between
    expected_eval = {r["iter"]: r for r in reference["eval"]}
    assert all(r == expected_eval[r["iter"]] for r in resumed["eval"]
               if r["iter"] in expected_eval)
    assert len(kills) == 7
    print(f"\nkills survived: {len(kills)}: {kills}")


# --- Ctrl-C --------------------------------------------------------------------------------
TEXT = np.array(list(b"abcabdabcabdabcabe" * 20), dtype=np.int64) - 97


get_batch = random_windows({"train": TEXT[:300], "val": TEXT[300:]}, 8, 4)   # (x, y) windows


def make_trainer(out, max_iters=12, loss_fn=None):
    model = GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=8,
                          dropout=0.1), seed=0)
    cfg = TrainConfig(max_iters=max_iters, lr=1e-2, min_lr=1e-3, warmup_iters=2,
                      lr_decay_iters=12, eval_interval=5, eval_iters=1, checkpoint_interval=4,
                      seed=3, progress=False, out_dir=str(out))
    return Trainer(model, model.configure_optimizers(0.1, 1e-2, (0.9, 0.99)), get_batch, cfg,
                   loss_fn=loss_fn)


def ctrl_c_at(calls_before, times=1):
    """A loss function that presses Ctrl-C (SIGINT to this process) on one call."""
    count = {"n": 0}

    def loss_fn(model, x, y):
        count["n"] += 1
        if count["n"] == calls_before + 1:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return model(x, y)[1]
    return loss_fn


def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(tmp_path):
    full = [r["loss"] for r in make_trainer(tmp_path / "full").fit()["train"]]
    previous_handler = signal.getsignal(signal.SIGINT)
    # loss calls: 2 evaluating at iteration 0, steps 0-4, 2 evaluating at 5, step 5; the
    # next one, step 6, gets the Ctrl-C
    stopped = make_trainer(tmp_path / "run", loss_fn=ctrl_c_at(2 + 5 + 2 + 1))
    with pytest.raises(KeyboardInterrupt, match=r"train: interrupted after iteration 7; "
                                                r"checkpoint saved to .*ckpt.safetensors"):
        stopped.fit()
    assert signal.getsignal(signal.SIGINT) is previous_handler      # handler put back
    assert saved_iteration(tmp_path / "run") == 7                   # between two intervals
    resumed = make_trainer(tmp_path / "run").fit(resume=True)
    assert [r["loss"] for r in resumed["train"]] == full


def test_a_second_ctrl_c_stops_at_once_and_the_checkpoint_stays_whole(tmp_path):
    stopped = make_trainer(tmp_path / "run", loss_fn=ctrl_c_at(2 + 5 + 2 + 1, times=2))
    with pytest.raises(KeyboardInterrupt) as info:
        stopped.fit()
    assert "checkpoint saved" not in str(info.value)               # Python's own interrupt
    assert saved_iteration(tmp_path / "run") == 4                   # the last regular one
    assert not list((tmp_path / "run").glob(f".{CHECKPOINT_NAME}.*.tmp"))


def _cli(out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "tinylm", "train", "gpt", "--n-layer", "1", "--n-head", "2",
            "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--eval-iters", "1",
            "--lr-decay-iters", "100", "--score-batches", "1", "--out", str(out), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)


@pytest.mark.slow
def test_ctrl_c_in_the_train_command_saves_and_exits_cleanly(tmp_path):
    out = tmp_path / "gpt"
    proc = _cli(out, "--max-iters", "100000", "--eval-interval", "100000")
    line = proc.stdout.readline()                     # "iter 0: train loss ..." (evaluated)
    assert line.startswith("iter 0:"), (line, proc.stderr.read()[-2000:] if not line else "")
    time.sleep(1.0)                                   # some steps
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("tinylm: interrupted: train: interrupted after iteration "), last
    stopped_at = int(last.split("after iteration ")[1].split(";")[0])
    assert "checkpoint saved to" in last and saved_iteration(out) == stopped_at > 0
    # resume to a few steps more; a fresh run to the same point gives the same losses
    total = str(stopped_at + 3)
    assert _cli(out, "--resume", "--max-iters", total, "--eval-interval", "1000",
                "--quiet").wait(timeout=300) == 0
    assert _cli(tmp_path / "fresh", "--max-iters", total, "--eval-interval", "1000",
                "--quiet").wait(timeout=300) == 0
    resumed = json.loads((out / "log.json").read_text())["train"]
    fresh = json.loads((tmp_path / "fresh" / "log.json").read_text())["train"]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in fresh]
