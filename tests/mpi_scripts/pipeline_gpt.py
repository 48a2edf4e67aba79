"""A float64 GPT split by layers over the ranks, for tests/test_parallel.py.

    mpiexec -n 2 python tests/mpi_scripts/pipeline_gpt.py OUT_DIR

Each rank trains its stage for STEPS steps with 1 and with 2 micro-batches and writes
OUT_DIR/rank<r>.npz: the losses (``loss.m<M>``) and its stage's parameters under the GPT's
own names (``m<M>.<name>``). ``reference`` gives the same from the unsplit model.
"""
import sys
from pathlib import Path

import numpy as np

from tinylm.io import save_npz
from tinylm.models import GPT, GPTConfig
from tinylm.optim import clip_grad_norm_
from tinylm.parallel import Pipeline, rank

CONFIG = GPTConfig(block_size=8, vocab_size=13, n_layer=3, n_head=2, n_embd=16, dropout=0.0)
STEPS, BATCH = 4, 4


def batches():
    rng = np.random.default_rng(3)
    for _ in range(STEPS):
        x = rng.integers(0, CONFIG.vocab_size, (BATCH, CONFIG.block_size))
        yield x, np.roll(x, -1, axis=1)


def model():
    return GPT(CONFIG, seed=0).to(np.float64)


def reference():
    out = {}
    gpt = model()
    optimizer = gpt.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    losses = []
    for x, y in batches():
        optimizer.zero_grad()
        loss = gpt(x, y)[1]
        loss.backward()
        clip_grad_norm_(gpt.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    out["loss"] = np.array(losses)
    out.update({name: p.data for name, p in gpt.named_parameters()})
    return out


def run():
    out = {}
    for m in (1, 2):
        gpt = model()
        pipe = Pipeline(gpt, micro_batches=m)
        optimizer = pipe.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
        out[f"loss.m{m}"] = np.array([pipe.train_step(x, y, optimizer, grad_clip=1.0)
                                      for x, y in batches()])
        owned = {id(p) for p in pipe.parameters()}
        out.update({f"m{m}.{name}": p.data for name, p in gpt.named_parameters()
                    if id(p) in owned})
        out[f"sent_bytes.m{m}"] = np.array(pipe.sent_bytes)
    return out


if __name__ == "__main__":
    save_npz(Path(sys.argv[1]) / f"rank{rank()}.npz", **run())
