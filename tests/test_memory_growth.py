"""Memory: a long run keeps no graph alive across steps.

10,000 training steps of a small GPT (dropout on, AdamW, gradient clipping, a fresh batch each
step) in a fresh process, its resident memory (``/proc/self/statm``) read every 250 steps:
after the first 1,000 steps (buffers, Numba's compiled kernels, the optimiser's moments) it
must stay flat. One step's graph here holds about 0.3 MB of activations, so a graph kept per
step would add gigabytes; the bound, 2 MB over 9,000 steps, also catches a leak of a few
hundred bytes per step. A second test shows why: with the garbage collector off, the loss,
its graph and its activations are freed by reference counting as soon as the next step
replaces them.
"""
import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

from tinylm import optim
from tinylm.models import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[1]
STEPS, WARMUP, EVERY = 10_000, 1_000, 250

CHILD = r'''
import json, os, sys
import numpy as np
from tinylm import optim
from tinylm.models import GPT, GPTConfig

steps, every = int(sys.argv[1]), int(sys.argv[2])
page = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page


model = GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=16,
                      dropout=0.1), seed=0)
opt = optim.AdamW(model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
samples, losses = [], []
for step in range(1, steps + 1):
    x, y = rng.integers(0, 16, (4, 8)), rng.integers(0, 16, (4, 8))
    _, loss = model(x, y)
    opt.zero_grad()
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % every == 0:
        samples.append([step, rss()])
        losses.append(loss.item())
print(json.dumps({"samples": samples, "losses": losses}))
'''


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_ten_thousand_steps_do_not_grow_resident_memory():
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CHILD, str(STEPS), str(EVERY)], env=env,
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    steps, rss = np.array(result["samples"]).T
    after_warmup = rss[steps >= WARMUP]
    growth = after_warmup.max() - after_warmup[0]
    slope = np.polyfit(steps[steps >= WARMUP], after_warmup, 1)[0]      # bytes per step
    print(f"\nRSS at step {WARMUP}: {after_warmup[0] / 2**20:.1f} MiB, at {STEPS}: "
          f"{rss[-1] / 2**20:.1f} MiB; largest growth after step {WARMUP}: "
          f"{growth / 2**20:.2f} MiB; fitted slope {slope:.1f} bytes/step")
    assert len(steps) == STEPS // EVERY and np.isfinite(result["losses"]).all()
    assert growth < 2 * 2**20, f"resident memory grew by {growth / 2**20:.2f} MiB"
    assert slope < 100, f"resident memory grows by {slope:.0f} bytes per step"


def test_each_step_frees_the_previous_graph_without_the_garbage_collector():
    model = GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=16,
                          dropout=0.1), seed=0)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    enabled = gc.isenabled()
    gc.disable()
    try:
        refs = []
        for _ in range(3):
            x, y = rng.integers(0, 16, (4, 8)), rng.integers(0, 16, (4, 8))
            logits, loss = model(x, y)
            refs.append((weakref.ref(loss), weakref.ref(loss.creator),
                         weakref.ref(logits)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            del logits, loss           # what the next step's assignment does in a loop
            assert all(r() is None for r in refs[-1]), "the step's graph is still alive"
    finally:
        if enabled:
            gc.enable()
