"""Data-parallel training of a small float64 GPT, for tests/test_parallel.py.

    mpiexec -n 2 python tests/mpi_scripts/ddp_gpt.py OUT_DIR

Every rank writes OUT_DIR/rank<r>.npz (``run``'s arrays); the test also calls ``run`` in
its own process with ``parallel=False`` (one process on the whole batch) and compares:

* ``step.*``: the gradients of one explicit step (shard, backward, ``sync_gradients``);
* ``params.*``, ``grads.*``, ``train_loss``, ``eval_*``: a Trainer run of several steps;
* ``resumed.*`` vs ``straight.*``: with dropout, 3 steps + resume to 6 against 6 at once.
"""
import sys
from pathlib import Path

import numpy as np

from tinylm.io import save_npz
from tinylm.models import GPT, GPTConfig
from tinylm.parallel import DistributedDataParallel, ParallelError, rank
from tinylm.text import random_windows
from tinylm.train import TrainConfig, Trainer

CONFIG = dict(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16)
BATCH = 8
BUCKET_MIB = 0.004          # small: the GPT's gradients travel in several buckets
TEXT = np.random.default_rng(0).integers(0, CONFIG["vocab_size"], 400)


get_batch = random_windows({"train": TEXT[:300], "val": TEXT[300:]}, CONFIG["block_size"], BATCH)


def make_model(dropout=0.0):
    return GPT(GPTConfig(**CONFIG, dropout=dropout), seed=0).to(np.float64)


def make_trainer(parallel, max_iters, dropout=0.0, out_dir=None):
    model = make_model(dropout)
    ddp = DistributedDataParallel(model, bucket_mib=BUCKET_MIB) if parallel else None
    optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    config = TrainConfig(max_iters=max_iters, lr=1e-2, min_lr=1e-3, warmup_iters=2,
                         lr_decay_iters=6, eval_interval=3, eval_iters=2, seed=5,
                         grad_clip=1.0, progress=False, out_dir=out_dir)
    return Trainer(model, optimizer, get_batch, config, parallel=ddp)


def explicit_step(parallel):
    """The step chapter 16 shows: this rank's shard, backward, then sync_gradients()."""
    model = make_model()
    x, y = get_batch("train", np.random.default_rng(1))
    out = {}
    if parallel:
        ddp = DistributedDataParallel(model, bucket_mib=BUCKET_MIB)
        x, y = ddp.shard(x), ddp.shard(y)
        out["buckets"] = np.array(len(ddp.buckets))
        try:
            ddp.shard(np.zeros((3, 2)))
            out["odd_batch_refused"] = np.array(False)
        except ParallelError:
            out["odd_batch_refused"] = np.array(True)
    loss = model(x, y)[1]
    loss.backward()
    if parallel:
        ddp.sync_gradients()
    out.update({f"step.{n}": p.grad for n, p in model.named_parameters()})
    return out


def run(parallel, out_dir):
    out_dir = Path(out_dir)
    results = explicit_step(parallel)
    trainer = make_trainer(parallel, 5)
    history = trainer.fit()
    results["train_loss"] = np.array([r["loss"] for r in history["train"]])
    results["eval_train"] = np.array([r["train_loss"] for r in history["eval"]])
    results["eval_val"] = np.array([r["val_loss"] for r in history["eval"]])
    for name, p in trainer.model.named_parameters():
        results[f"params.{name}"], results[f"grads.{name}"] = p.data, p.grad
    # exact resume with dropout: the checkpoint holds rank 0's generators, the others jump
    straight = make_trainer(parallel, 6, 0.1, str(out_dir / "straight"))
    straight.fit()
    first = make_trainer(parallel, 3, 0.1, str(out_dir / "resumed"))
    first.fit()
    resumed = make_trainer(parallel, 6, 0.1, str(out_dir / "resumed"))
    resumed.fit(resume=True)
    for tag, t in (("straight", straight), ("resumed", resumed)):
        results[f"{tag}.loss"] = np.array([r["loss"] for r in t.history["train"]])
        for name, p in t.model.named_parameters():
            results[f"{tag}.{name}"] = p.data
    return results


if __name__ == "__main__":
    out = Path(sys.argv[1])
    save_npz(out / f"rank{rank()}.npz", **run(True, out))
