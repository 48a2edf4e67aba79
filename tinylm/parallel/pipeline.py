"""Device (model) parallelism (C7): a GPT split by layers over ranks, run as a pipeline.

Stage s of S holds a contiguous run of the Transformer blocks; the first stage also holds
the embeddings, the last the final layer norm, the head and the loss. No rank holds the
whole model, which is the point: a model too large for one device's memory still trains.

    forward    stage 0: ids -> x  ==Send==>  stage 1: x -> ... -> loss
    backward   stage 0: x.backward(g)  <==Send==  stage 1: g = dloss/dx

The wire carries activations forward and their gradients back: stage 1 treats the received
``x`` as a leaf (``requires_grad=True``), and after its backward ``x.grad`` is exactly
dL/dx, which stage 0 feeds to ``x.backward(dL/dx)`` to finish the chain rule on its side.

Micro-batches (GPipe, Huang et al. 2019): the batch goes through in M pieces, all forwards
then all backwards, so that while stage 1 works on piece m stage 0 already computes piece
m + 1. Each stage still idles for S - 1 of the M + S - 1 time slots of a step (the "bubble",
a fraction (S - 1)/(M + S - 1)); the loss is the mean of the pieces' means, which is the
batch's mean, so the gradients are the unsplit model's.

Weight tying: GPT's head reuses the token embedding, which sits on the first stage. The last
stage keeps its own copy; after backward the two exchange their gradients and each adds the
other's (as Megatron-LM does), so both copies take the same step and stay equal.

    pipe = Pipeline(GPT(config, seed=0), micro_batches=4)      # under mpiexec -n 2
    optimizer = pipe.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    loss = pipe.train_step(x, y, optimizer, grad_clip=1.0)      # the same x, y on every rank

``LocalPipeline`` runs the same stages and the same schedule in one process (the "wire" is
a hand-over of arrays), so the split can be checked without MPI.
"""
import math
import time

import numpy as np

from .. import functional as F
from ..errors import ShapeError, TinyLMError
from ..models.gpt import GPT
from ..nn import Module, ModuleList
from ..optim import AdamW, clip_grad_norm_, decay_groups
from ..tensor import Tensor
from .comm import ParallelError, get_comm

__all__ = ["stage_layers", "GPTStage", "Pipeline", "LocalPipeline", "bubble_fraction"]


def stage_layers(n_layer, n_stages):
    """``[(start, stop), ...]``: the blocks of each stage, as even as possible (earlier
    stages take the remainder)."""
    if not (isinstance(n_stages, int) and 1 <= n_stages <= n_layer):
        raise TinyLMError(f"pipeline: need 1 <= stages <= n_layer = {n_layer}, got {n_stages!r}")
    bounds = np.cumsum([0] + [n_layer // n_stages + (s < n_layer % n_stages)
                              for s in range(n_stages)])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def bubble_fraction(n_stages, micro_batches):
    """The idle share of a GPipe step: (S - 1) / (M + S - 1)."""
    return (n_stages - 1) / (micro_batches + n_stages - 1)


class GPTStage(Module):
    """Stage ``stage`` of ``n_stages`` of ``gpt`` (its modules, shared, not copied)."""

    def __init__(self, gpt, stage, n_stages):
        super().__init__()
        if not isinstance(gpt, GPT):
            raise TinyLMError(f"GPTStage: expected a tinylm GPT, got {type(gpt).__name__}")
        layers = stage_layers(gpt.config.n_layer, n_stages)
        if not (isinstance(stage, int) and 0 <= stage < n_stages):
            raise TinyLMError(f"GPTStage: stage must be in 0..{n_stages - 1}, got {stage!r}")
        start, stop = layers[stage]
        self.stage, self.n_stages, self.config = stage, n_stages, gpt.config
        self.first, self.last = stage == 0, stage == n_stages - 1
        self.layers = (start, stop)
        self.blocks = ModuleList(list(gpt.transformer.h)[start:stop])
        if self.first:
            self.wte, self.wpe = gpt.transformer.wte, gpt.transformer.wpe
            self.drop = gpt.transformer.drop
        if self.last:
            self.ln_f, self.lm_head = gpt.transformer.ln_f, gpt.lm_head
        self._gpt_check = gpt._check_ids
        self._saved = []

    @property
    def tied_weight(self):
        """The token embedding (first stage) or the head's copy of it (last stage)."""
        if self.first:
            return self.wte.weight
        return self.lm_head.weight if self.last else None

    def forward(self, inp, targets=None):
        """First stage: ids (B, T) in; other stages: activations (B, T, E). Last stage:
        returns the mean cross-entropy against ``targets``; others: the activations."""
        if self.first:
            idx = self._gpt_check(inp, "idx")
            x = self.drop(self.wte(idx) + self.wpe(np.arange(idx.shape[1])))
        else:
            x = inp
        for block in self.blocks:
            x = block(x)
        if not self.last:
            return x
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits, self._gpt_check(targets, "targets", True),
                               ignore_index=-1)

    # --- one micro-batch at a time, as the schedule calls them ---------------------------
    def forward_micro(self, inp, targets=None):
        """Run one micro-batch and keep what its backward needs. Returns the activations to
        send on (an array) or, on the last stage, the loss (a float)."""
        if not self.first:        # the received activations: a leaf whose gradient goes back
            inp = Tensor(inp, requires_grad=True)
        out = self(inp, targets)
        self._saved.append((inp, out))
        return out.item() if self.last else out.data

    def backward_micro(self, grad, scale):
        """Backward of the most recent micro-batch not yet done (last in, first out):
        ``grad`` is dL/d(output) from the next stage (None on the last stage, whose loss is
        scaled by ``scale`` = 1/M). Returns dL/d(input) for the previous stage, or None."""
        inp, out = self._saved.pop()
        if self.last:
            out.backward(np.full(out.shape, scale, dtype=out.dtype))
        else:
            out.backward(grad)
        return None if self.first else inp.grad


def _micro_batches(x, y, m):
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.shape != x.shape:
        raise ShapeError(f"pipeline: expected ids x and targets y of one shape (B, T), got "
                         f"{x.shape} and {y.shape}")
    if not (isinstance(m, int) and m >= 1) or x.shape[0] % m:
        raise TinyLMError(f"pipeline: a batch of {x.shape[0]} rows does not split into "
                          f"micro_batches={m!r} equal pieces")
    b = x.shape[0] // m
    return [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(m)]


class _Schedule:
    """What the one-process and the MPI pipelines share: the training step around the
    schedule (``forward_backward``), the tied-weight exchange and the global clipping."""

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        return AdamW(decay_groups(self.parameters(), weight_decay), lr=learning_rate,
                     betas=tuple(betas))

    def train_step(self, x, y, optimizer, grad_clip=0.0):
        """zero_grad, the pipelined forward and backward, tied-weight exchange, clipping of
        the global gradient norm (all stages together), step. Returns the batch's loss."""
        optimizer.zero_grad()
        loss = self.forward_backward(x, y)
        self.sync_tied_gradients()
        if grad_clip:
            self.clip_grad_norm_(grad_clip)
        optimizer.step()
        return loss

    def clip_grad_norm_(self, max_norm):
        """``tinylm.optim.clip_grad_norm_`` over every stage's gradients (the tied weight
        counted once): total = sqrt(sum over stages of the squared norms)."""
        return clip_grad_norm_(self.parameters(), max_norm,
                               total_norm=math.sqrt(self._sum_of_squares()))


class LocalPipeline(_Schedule):
    """All ``n_stages`` stages of ``gpt`` in this process, run in the pipeline's order; the
    tied weight is one shared parameter here, so its two gradients simply add up in it."""

    def __init__(self, gpt, n_stages=2, micro_batches=1):
        self.gpt, self.micro_batches = gpt, micro_batches
        self.stages = [GPTStage(gpt, s, n_stages) for s in range(n_stages)]
        self.sent_bytes = 0

    def parameters(self):
        return self.gpt.parameters()

    def forward_backward(self, x, y):
        pieces = _micro_batches(x, y, self.micro_batches)
        losses = []
        for xm, ym in pieces:
            a = xm
            for stage in self.stages:
                a = stage.forward_micro(a, ym if stage.last else None)
                if not stage.last:
                    self.sent_bytes += a.nbytes
                    a = a.copy()                        # what arrives is a copy: no sharing
            losses.append(a)
        for _ in pieces:
            g = None
            for stage in reversed(self.stages):
                g = stage.backward_micro(g, 1.0 / len(pieces))
                if g is not None:
                    self.sent_bytes += g.nbytes
                    g = g.copy()
        return float(np.mean(losses))

    def sync_tied_gradients(self):
        pass                    # one shared parameter: both gradients already went into it

    def _sum_of_squares(self):
        return sum(float(np.sum(p.grad * p.grad)) for p in self.parameters()
                   if p.grad is not None)


class Pipeline(_Schedule):
    """One stage of ``gpt`` per rank of ``comm`` (every rank builds the same GPT, keeps its
    own stage; the caller may drop the rest). ``wait_seconds`` adds up the time this rank
    spent waiting for its neighbours (the bubble, plus the transfers)."""

    def __init__(self, gpt, micro_batches=1, comm=None):
        self.comm = get_comm() if comm is None else comm
        self.rank, self.n_stages = self.comm.Get_rank(), self.comm.Get_size()
        self.stage = GPTStage(gpt, self.rank, self.n_stages)
        self.micro_batches = micro_batches
        self.dtype = next(iter(self.stage.blocks.parameters())).dtype
        self.wait_seconds, self.sent_bytes = 0.0, 0

    def parameters(self):
        return self.stage.parameters()

    def _send(self, array, dest):
        self.comm.Send(np.ascontiguousarray(array), dest=dest)
        self.sent_bytes += array.nbytes

    def _recv(self, shape, source):
        buffer = np.empty(shape, dtype=self.dtype)
        start = time.perf_counter()
        self.comm.Recv(buffer, source=source)
        self.wait_seconds += time.perf_counter() - start
        return buffer

    def forward_backward(self, x, y):
        """This rank's part of the GPipe schedule; returns the batch's loss on every rank."""
        if self.n_stages == 1:
            raise ParallelError("Pipeline: needs at least 2 ranks (run under mpiexec -n 2); "
                                "LocalPipeline runs the stages in one process")
        stage, r = self.stage, self.rank
        pieces = _micro_batches(x, y, self.micro_batches)
        shape = pieces[0][0].shape + (self.stage.config.n_embd,)
        losses = []
        for xm, ym in pieces:
            inp = xm if stage.first else self._recv(shape, r - 1)
            out = stage.forward_micro(inp, ym if stage.last else None)
            if stage.last:
                losses.append(out)
            else:
                self._send(out, r + 1)
        for _ in pieces:
            grad = None if stage.last else self._recv(shape, r + 1)
            grad_in = stage.backward_micro(grad, 1.0 / len(pieces))
            if not stage.first:
                self._send(grad_in, r - 1)
        loss = np.array([np.mean(losses) if stage.last else 0.0])
        self.comm.Bcast(loss, root=self.n_stages - 1)
        return float(loss[0])

    def sync_tied_gradients(self):
        """First and last stage swap their tied-weight gradients and each adds the other's
        (a + b == b + a exactly in floating point, so the two copies stay equal)."""
        if not (self.stage.first or self.stage.last):
            return
        w = self.stage.tied_weight
        peer = self.n_stages - 1 if self.stage.first else 0
        theirs = np.empty_like(w.grad)
        self.comm.Sendrecv(np.ascontiguousarray(w.grad), dest=peer, recvbuf=theirs,
                           source=peer)
        self.sent_bytes += w.grad.nbytes
        w.grad += theirs

    def _sum_of_squares(self):
        from mpi4py import MPI      # several ranks: get_comm() imported it
        tied = self.stage.tied_weight
        local = sum(float(np.sum(p.grad * p.grad)) for p in self.parameters()
                    if p.grad is not None and not (p is tied and not self.stage.first))
        total = np.array([local])
        self.comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
        return float(total[0])
