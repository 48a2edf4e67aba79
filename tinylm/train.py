"""One training loop for every model: schedule, clipping, evaluation, logs, checkpoints, resume.

    trainer = Trainer(model, optimizer, get_batch, TrainConfig(max_iters=2000, out_dir="out"))
    history = trainer.fit()              # or fit(resume=True) to continue from out/ckpt

``get_batch(split, rng)`` returns ``(x, y)`` for ``split`` in "train"/"val", drawing with the
``numpy.random.Generator`` it is given; ``loss_fn(model, x, y)`` returns the scalar loss
Tensor (default: nanoGPT's call, ``model(x, y)[1]``).

Each iteration: set the learning rate (linear warmup, cosine decay to ``min_lr``, as
nanoGPT), forward, backward, clip the global gradient norm, step. Every ``eval_interval``
iterations the mean loss over ``eval_iters`` batches of each split is logged; evaluation
batches come from their own generator seeded by (seed, iteration), so evaluating does not
change the training batches.

At the end, ``out_dir/model.safetensors`` holds the weights alone under the model's own
names (for a GPT, nanoGPT's: PyTorch loads them as they are).

A checkpoint (``out_dir/ckpt.safetensors``, written atomically) holds the model, the
optimiser state, the iteration, the log and the state of EVERY random generator (the batch
sampler's and each dropout layer's), so ``fit(resume=True)`` continues exactly: the losses
after a resume are the losses an uninterrupted run gives.

Data parallel (C7): ``Trainer(..., parallel=DistributedDataParallel(model))`` under
``mpiexec -n N``: every rank draws the same batch, trains on its B/N rows, averages the
gradients (``sync_gradients``) and takes the same step; the logged losses are the whole
batch's, and rank 0 alone prints and writes files (every rank can resume from them).

When things go wrong: a loss that turns NaN or infinite, or a gradient norm that does, stops
the run with a ``NumericalError`` before the weights are touched, and no checkpoint is ever
written from weights that are not finite, so the last checkpoint stays the last good one.
Ctrl-C (SIGINT) lets the current step finish, writes a checkpoint and raises
``KeyboardInterrupt`` (a second Ctrl-C stops at once; the checkpoint file is written
atomically, so it is never half-written). A killed run (SIGKILL, power cut) resumes from its
last checkpoint with ``fit(resume=True)``, with the losses an uninterrupted run gives.
"""
import csv
import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import checkpoint
from .backend import get_array_module
from .errors import NumericalError, TinyLMError
from .io import atomic_write, save_json
from .optim import clip_grad_norm_, warmup_cosine_lr
from .tensor import no_grad
from .text.batching import lm_blocks

__all__ = ["TrainConfig", "Trainer", "lm_window_loss"]

CHECKPOINT_NAME = "ckpt.safetensors"


@dataclass
class TrainConfig:
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = None          # default: max_iters
    decay_lr: bool = True
    grad_clip: float = 1.0              # 0: no clipping
    eval_interval: int = 250
    eval_iters: int = 20
    checkpoint_interval: int = None     # default: eval_interval
    out_dir: str = None                 # None: no files written
    seed: int = 1337
    progress: bool = True

    def __post_init__(self):
        for name in ("max_iters", "eval_interval", "eval_iters"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise TinyLMError(f"TrainConfig: {name} must be a positive integer, got "
                                  f"{getattr(self, name)!r}")
        if self.lr_decay_iters is None:
            self.lr_decay_iters = self.max_iters
        if self.checkpoint_interval is None:
            self.checkpoint_interval = self.eval_interval
        if not isinstance(self.checkpoint_interval, int) or self.checkpoint_interval < 1:
            raise TinyLMError(f"TrainConfig: checkpoint_interval must be a positive integer, "
                              f"got {self.checkpoint_interval!r}")
        if not (isinstance(self.grad_clip, (int, float)) and 0 <= self.grad_clip < math.inf):
            raise TinyLMError(f"TrainConfig: grad_clip must be a finite number >= 0 (0: no "
                              f"clipping), got {self.grad_clip!r}")
        if not 0 <= self.warmup_iters <= self.lr_decay_iters:
            raise TinyLMError(f"TrainConfig: need 0 <= warmup_iters <= lr_decay_iters, got "
                              f"{self.warmup_iters} and {self.lr_decay_iters}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise TinyLMError(f"TrainConfig: need lr > 0 and 0 <= min_lr <= lr, got lr="
                              f"{self.lr}, min_lr={self.min_lr}")

    def lr_at(self, it):
        if not self.decay_lr:
            return self.lr
        return warmup_cosine_lr(it, max_lr=self.lr, min_lr=self.min_lr,
                                warmup_steps=self.warmup_iters, decay_steps=self.lr_decay_iters)


def _default_loss(model, x, y):
    return model(x, y)[1]


class Trainer:
    def __init__(self, model, optimizer, get_batch, config=None, loss_fn=None, metadata=None,
                 parallel=None):
        if parallel is not None and parallel.module is not model:
            raise TinyLMError("Trainer: parallel= must wrap this trainer's model")
        for name, value, ok, expected in (
                ("model", model, callable(getattr(model, "parameters", None)), "a Module"),
                ("optimizer", optimizer, hasattr(optimizer, "param_groups"), "an optimiser"),
                ("get_batch", get_batch, callable(get_batch), "a function (split, rng) -> "
                                                              "(x, y)")):
            if not ok:
                raise TinyLMError(f"Trainer: {name} must be {expected}, got "
                                  f"{type(value).__name__}")
        self.model, self.optimizer, self.get_batch = model, optimizer, get_batch
        self.parallel = parallel                # None: one process
        self.is_root = parallel is None or parallel.rank == 0     # prints and writes files
        self.config = config or TrainConfig()
        self.loss_fn = loss_fn or _default_loss
        self.metadata = metadata or {}          # saved with checkpoints (model config, ...)
        self.out_dir = Path(self.config.out_dir) if self.config.out_dir else None
        self.data_rng = np.random.default_rng(self.config.seed)
        self.iter = 0
        self.best_val_loss = math.inf
        self.history = {"train": [], "eval": []}
        self.train_seconds = 0.0
        self.tokens = 0
        self.last_checkpoint_iter = None        # the iteration the checkpoint on disk holds
        self._stop_requested = False            # set by Ctrl-C (see _catch_ctrl_c)

    # --- the loop ----------------------------------------------------------------------
    def fit(self, resume=False):
        """Train to ``max_iters``; returns the history ({"train": rows, "eval": rows})."""
        cfg = self.config
        if self.out_dir and self.is_root:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.out_dir.glob(f".{CHECKPOINT_NAME}.*.tmp"):
                stale.unlink(missing_ok=True)    # a write a killed run left half done
        if resume:
            self.load_checkpoint(self._checkpoint_path(must_exist=True))
        bar = self._progress_bar()
        restore_ctrl_c = self._catch_ctrl_c()
        try:
            while self.iter < cfg.max_iters:
                it = self.iter
                if it % cfg.eval_interval == 0:
                    self._evaluate_and_log(it)
                start = time.perf_counter()
                loss, n_tokens = self._step(it)
                self.train_seconds += time.perf_counter() - start
                self.tokens += n_tokens
                self.history["train"].append({"iter": it, "loss": loss,
                                              "lr": self.optimizer.param_groups[0]["lr"]})
                self.iter = it + 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}",
                                    tok_s=f"{self.tokens / max(self.train_seconds, 1e-9):.0f}")
                if self.out_dir and self.iter % cfg.checkpoint_interval == 0:
                    self.save_checkpoint(self._checkpoint_path())
                if self._stop_requested:
                    self._stop_after_ctrl_c()
            self._evaluate_and_log(self.iter)
        finally:
            restore_ctrl_c()
            if bar is not None:
                bar.close()
        if self.out_dir:
            self.save_checkpoint(self._checkpoint_path())
            if self.is_root:
                self._write_logs()
        return self.history

    def _step(self, it):
        lr = self.config.lr_at(it)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        x, y = self._batch("train", self.data_rng)
        n_tokens = int(np.size(x))
        if self.parallel is not None:           # this rank's rows of the batch
            x, y = self.parallel.shard(x), self.parallel.shard(y)
        loss = self._loss(x, y)
        value = loss.item()
        if self.parallel is not None:           # the batch's loss: the mean of the shards'
            value = self.parallel.mean(value)
        if not math.isfinite(value):
            raise NumericalError(f"train: the loss is {value} at iteration {it} (lr {lr:.3g}); "
                                 f"lower the learning rate or check the data "
                                 f"(tinylm.detect_anomaly() names the op). "
                                 f"{self._last_good_note()}")
        self.optimizer.zero_grad()
        loss.backward()
        if self.parallel is not None:           # mean gradient over the ranks (C7)
            self.parallel.sync_gradients()
        if self.config.grad_clip:
            norm = clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            if not math.isfinite(norm):         # clipping would spread it: stop before the step
                raise NumericalError(f"train: the gradient norm is {norm} at iteration {it} "
                                     f"(loss {value:.4g}, lr {lr:.3g}); the weights were not "
                                     f"updated. {self._last_good_note()}")
        self.optimizer.step()
        return value, n_tokens

    def _batch(self, split, rng):
        batch = self.get_batch(split, rng)
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TinyLMError(f"train: get_batch({split!r}, rng) must return a pair (x, y), "
                              f"got {type(batch).__name__}")
        return batch

    def _loss(self, x, y):
        loss = self.loss_fn(self.model, x, y)
        if not (hasattr(loss, "backward") and getattr(loss, "size", 0) == 1):
            raise TinyLMError(f"train: loss_fn must return a scalar Tensor, got "
                              f"{type(loss).__name__} of shape {getattr(loss, 'shape', None)}")
        return loss

    @no_grad()
    def evaluate(self, it=0):
        """Mean loss over ``eval_iters`` batches of each split (dropout off, no graph
        recorded: nothing is differentiated here)."""
        self.model.eval()
        rng = np.random.default_rng([self.config.seed, it, 1])
        out = {}
        shard = self.parallel.shard if self.parallel is not None else (lambda a: a)
        for split in ("train", "val"):
            losses = [self._loss(*map(shard, self._batch(split, rng))).item()
                      for _ in range(self.config.eval_iters)]
            out[split] = float(np.mean(losses)) if self.parallel is None else \
                self.parallel.mean(np.mean(losses))
        self.model.train()
        return out

    def _evaluate_and_log(self, it):
        if self.history["eval"] and self.history["eval"][-1]["iter"] == it:
            return                                # already evaluated (resumed at this point)
        losses = self.evaluate(it)
        self.history["eval"].append({"iter": it, "train_loss": losses["train"],
                                     "val_loss": losses["val"]})
        self.best_val_loss = min(self.best_val_loss, losses["val"])
        if self.config.progress and self.is_root:
            print(f"iter {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}",
                  flush=True)

    def _progress_bar(self):
        if not (self.config.progress and self.is_root):
            return None
        from tqdm import tqdm
        return tqdm(total=self.config.max_iters, initial=self.iter, desc="train",
                    dynamic_ncols=True, leave=True)

    # --- stopping: Ctrl-C, and numbers that are not finite ------------------------------
    def _catch_ctrl_c(self):
        """From here on, Ctrl-C (SIGINT) asks the loop to stop after the current step (see
        ``_stop_after_ctrl_c``); a second Ctrl-C interrupts at once. Returns the function
        that puts the previous handler back. Only in the main thread of a single process:
        signals reach the main thread alone, and under MPI the ranks would stop at different
        steps (there Ctrl-C interrupts, and the last checkpoint is the one to resume from)."""
        self._stop_requested = False
        if self.parallel is not None or threading.current_thread() is not \
                threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)
        if previous is None:                    # installed outside Python: restore the default
            previous = signal.default_int_handler

        def request_stop(signum, frame):
            self._stop_requested = True
            signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGINT, request_stop)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _stop_after_ctrl_c(self):
        """Write a checkpoint of the step just finished (unless the loop just did) and raise
        ``KeyboardInterrupt`` saying where it is."""
        where = "nothing saved (TrainConfig(out_dir=None))"
        if self.out_dir:
            path = self._checkpoint_path()
            if self.last_checkpoint_iter != self.iter:
                self.save_checkpoint(path)
            where = f"checkpoint saved to {path}; continue with fit(resume=True) (or --resume)"
        if self.config.progress and self.is_root:
            print(f"\ninterrupted after iteration {self.iter}: {where}", flush=True)
        raise KeyboardInterrupt(f"train: interrupted after iteration {self.iter}; {where}")

    def _last_good_note(self):
        if self.last_checkpoint_iter is None:
            return "No checkpoint was written."
        return (f"The last checkpoint, {self._checkpoint_path()} (iteration "
                f"{self.last_checkpoint_iter}), is intact: resume from it with a lower lr.")

    def _check_finite_weights(self):
        for name, p in self.model.named_parameters():
            xp = get_array_module(p.data)
            if not bool(xp.isfinite(p.data).all()):
                raise NumericalError(f"train: the weights of {name} are not finite after "
                                     f"iteration {self.iter}; the checkpoint was not "
                                     f"overwritten. {self._last_good_note()}")

    # --- checkpoints and logs ---------------------------------------------------------
    def _checkpoint_path(self, must_exist=False):
        if self.out_dir is None:
            raise TinyLMError("train: checkpoints need TrainConfig(out_dir=...)")
        path = self.out_dir / CHECKPOINT_NAME
        if must_exist and not path.is_file():
            raise TinyLMError(f"train: cannot resume, {path} does not exist")
        return path

    def _generators(self):
        """Every random generator the run draws from, by a stable name."""
        gens = {"data": self.data_rng}
        for name, module in self.model.named_modules():
            rng = getattr(module, "rng", None)
            if isinstance(rng, np.random.Generator):
                gens[f"module:{name}"] = rng
        return gens

    def save_checkpoint(self, path):
        """Write the checkpoint. With ``parallel`` every rank calls this: the replicas are
        checked to be identical, rank 0 alone writes, and all return once the file is
        complete (so any rank may load it next)."""
        self._check_finite_weights()            # never replace a good checkpoint by NaNs
        if self.parallel is not None:
            self.parallel.check_in_sync(self.optimizer)
        if self.is_root:
            self._write_checkpoint(path)
        if self.parallel is not None:
            self.parallel.barrier()
        self.last_checkpoint_iter = self.iter

    def _write_checkpoint(self, path):
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt = self.optimizer.state_dict()
        scalars = {}
        for index, entries in opt["state"].items():
            for key, value in entries.items():
                if isinstance(value, np.ndarray):
                    tensors[f"optim.{index}.{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        meta = {"iter": self.iter, "best_val_loss": self.best_val_loss,
                "train_seconds": self.train_seconds, "tokens": self.tokens,
                "history": self.history, "train_config": asdict(self.config),
                "optim": {"param_groups": opt["param_groups"], "scalars": scalars},
                "rng": {name: g.bit_generator.state for name, g in self._generators().items()},
                **{"model_metadata": self.metadata}}
        checkpoint.save(path, tensors, json.loads(json.dumps(meta, default=_jsonable)))

    def load_checkpoint(self, path):
        tensors, meta = checkpoint.load(path)
        try:
            self.model.load_state_dict({k[6:]: v for k, v in tensors.items()
                                        if k.startswith("model.")})
        except TinyLMError as exc:              # names the parameter; say which file too
            raise type(exc)(f"train: cannot resume from {path}: {exc}") from None
        state = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for index, entries in meta["optim"]["scalars"].items():
            state.setdefault(int(index), {}).update(entries)
        self.optimizer.load_state_dict({"state": state,
                                        "param_groups": meta["optim"]["param_groups"]})
        gens = self._generators()
        missing = set(meta["rng"]) ^ set(gens)
        if missing:
            raise TinyLMError(f"train: the checkpoint's random generators do not match this "
                              f"model's (differ in {sorted(missing)}); is it the same model?")
        for name, g in gens.items():
            g.bit_generator.state = meta["rng"][name]
        if self.parallel is not None:           # the file holds rank 0's dropout streams
            self.parallel.decorrelate_generators()
        self.iter, self.best_val_loss = meta["iter"], meta["best_val_loss"]
        self.train_seconds, self.tokens = meta["train_seconds"], meta["tokens"]
        self.history = meta["history"]
        self.last_checkpoint_iter = self.iter
        return meta

    def metrics(self):
        train = self.history["train"]
        return {"best_val_loss": self.best_val_loss,
                "final_train_loss": train[-1]["loss"] if train else None,
                "final_val_loss": self.history["eval"][-1]["val_loss"]
                if self.history["eval"] else None,
                "iters": self.iter, "train_seconds": round(self.train_seconds, 3),
                "tokens_per_second": round(self.tokens / max(self.train_seconds, 1e-9), 1)}

    def _write_logs(self):
        # the weights alone under the model's own (PyTorch) names, so torch/safetensors code
        # loads them directly: safetensors.torch.load_file("model.safetensors")
        checkpoint.save(self.out_dir / "model.safetensors", self.model.state_dict(),
                        json.loads(json.dumps(self.metadata, default=_jsonable)))
        save_json(self.out_dir / "metrics.json", self.metrics())
        save_json(self.out_dir / "log.json", self.history)
        with atomic_write(self.out_dir / "log.csv", "w", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["iter", "loss", "lr"])
            for row in self.history["train"]:
                writer.writerow([row["iter"], f"{row['loss']:.6f}", f"{row['lr']:.6g}"])
        self._plot_losses(self.out_dir / "loss.png")

    def _plot_losses(self, path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        train = self.history["train"]
        ax.plot([r["iter"] for r in train], [r["loss"] for r in train], lw=0.8, alpha=0.6,
                label="train (per batch)")
        ev = self.history["eval"]
        ax.plot([r["iter"] for r in ev], [r["val_loss"] for r in ev], "o-", label="val")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.legend()
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)


def _jsonable(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


@no_grad()
def lm_window_loss(model, ids, block_size, batch_size, max_batches=None):
    """``(mean loss, tokens scored)`` of a language model over consecutive, non-overlapping
    windows of ``block_size`` ids (``lm_blocks``), ``batch_size`` windows per forward pass; the
    first ``max_batches`` batches only when given. Every token is scored once with at most
    ``block_size - 1`` tokens of context, so the figure is deterministic (unlike the Trainer's
    random evaluation batches) and ``exp`` of it is the perplexity (E1)."""
    x, y = lm_blocks(ids, block_size)
    n = len(x) if not max_batches else min(len(x), max_batches * batch_size)
    total = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        total += model(x[start:stop], y[start:stop])[1].item() * (stop - start)
    return total / n, n * block_size
