"""Rank 1 fails in the middle of data-parallel training while rank 0 waits for it in an
Allreduce; the job must end at once with the error, not hang (tests/test_parallel.py).

    mpiexec -n 2 python tests/mpi_scripts/failing_rank.py
"""
import numpy as np

from tinylm import TinyLMError
from tinylm.models import GPT, GPTConfig
from tinylm.parallel import DistributedDataParallel, rank
from tinylm.train import TrainConfig, Trainer

calls = 0


def get_batch(split, rng):
    global calls
    calls += 1
    if rank() == 1 and calls == 3:
        raise TinyLMError("the data of rank 1 is unreadable (a planted failure)")
    x = rng.integers(0, 7, (4, 8))
    return x, np.roll(x, -1, axis=1)


model = GPT(GPTConfig(block_size=8, vocab_size=7, n_layer=1, n_head=2, n_embd=8), seed=0)
trainer = Trainer(model, model.configure_optimizers(0.0, 1e-3, (0.9, 0.99)), get_batch,
                  TrainConfig(max_iters=10, warmup_iters=2, eval_interval=5, eval_iters=1,
                              progress=False),
                  parallel=DistributedDataParallel(model))
trainer.fit()
print("unreachable: rank 1 failed, so the job must have ended")
