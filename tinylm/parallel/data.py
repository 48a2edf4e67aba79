"""Data parallelism (C7): every rank holds the whole model and a shard of every batch; after
``backward()`` the gradients are averaged over the ranks, so every rank takes the same step.

    ddp = DistributedDataParallel(model)            # rank 0's weights copied to every rank
    for step in range(steps):
        x, y = get_batch(rng)                       # the same batch on every rank (same seed)
        x, y = ddp.shard(x), ddp.shard(y)           # this rank's B/N rows of it
        loss = model(x, y)[1]                       # mean over the shard
        optimizer.zero_grad()
        loss.backward()
        ddp.sync_gradients()                        # gradient synchronisation (C7)
        optimizer.step()                            # the same step on every rank

Why the mean of the shards' gradients is the full batch's (C7, gradient synchronisation):
with B examples split into N shards S_r of b = B/N each,

    L = (1/B) sum_i l_i,     L_r = (1/b) sum_{i in S_r} l_i
    (1/N) sum_r dL_r = (1/N) sum_r (1/b) sum_{i in S_r} dl_i = (1/(N b)) sum_i dl_i = dL

so N ranks on b rows each compute exactly the gradient one process computes on B rows (to
rounding: the sums are grouped differently). It needs equal shards, and a loss that is a
mean over rows; a mean over tokens where shards hold different numbers of counted tokens
(padding, ignore_index) gives a slightly different, still unbiased, weighting.

The optimiser needs no synchronisation of its own: identical parameters and identical
gradients give identical moment estimates on every rank (``check_in_sync`` verifies it).

Communication is bucketed: gradients are copied into a few flat buffers of ``bucket_mib``
MiB each and every buffer is summed with ONE ``Allreduce``, because each call costs a fixed
latency (microseconds on one machine, tens of microseconds across a network) on top of its
bytes: a GPT has ~50 small parameters (biases, layer norms) where one call each would pay
that latency ~50 times.
"""
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import ShapeError, TinyLMError
from .comm import ParallelError, get_comm

__all__ = ["DistributedDataParallel", "plan_buckets"]


@dataclass
class Bucket:
    """Parameters whose gradients travel together in one flat buffer.

    ``buffer[start:stop]`` holds one parameter's values; the last ``len(params)`` entries
    are presence flags (1: this rank has a gradient for that parameter), summed with the
    gradients so that every rank learns, in the same call, whether all ranks had one."""
    names: list = field(default_factory=list)
    params: list = field(default_factory=list)
    slices: list = field(default_factory=list)
    size: int = 0
    buffer: np.ndarray = None

    @property
    def nbytes(self):
        return self.buffer.nbytes


def plan_buckets(named_params, bucket_mib):
    """Consecutive parameters grouped into buckets of at most ``bucket_mib`` MiB (a parameter
    larger than that gets a bucket of its own), one dtype per bucket."""
    if not (isinstance(bucket_mib, (int, float)) and bucket_mib > 0):
        raise TinyLMError(f"DistributedDataParallel: bucket_mib must be a number > 0, got "
                          f"{bucket_mib!r}")
    capacity = bucket_mib * 2 ** 20
    buckets = []
    for name, p in named_params:
        if not isinstance(p.data, np.ndarray):
            raise ParallelError(f"DistributedDataParallel: parameter {name} is a "
                                f"{type(p.data).__name__}, expected a NumPy array (the MPI "
                                f"path runs on the CPU)")
        last = buckets[-1] if buckets else None
        if last is None or last.params[0].data.dtype != p.data.dtype or (
                last.size + p.data.size) * p.data.itemsize > capacity:
            last = Bucket()
            buckets.append(last)
        last.names.append(name)
        last.params.append(p)
        last.slices.append((last.size, last.size + p.data.size))
        last.size += p.data.size
    for bucket in buckets:
        bucket.buffer = np.empty(bucket.size + len(bucket.params), bucket.params[0].data.dtype)
    return buckets


def _mpi():
    from mpi4py import MPI            # only reached with several ranks: get_comm imported it
    return MPI


def _grad_array(name, p):
    g = p.grad
    if g is not None and not isinstance(g, np.ndarray):
        g = getattr(g, "data", g)                       # a Tensor-valued gradient
    if g is not None and g.shape != p.data.shape:
        raise ShapeError(f"DistributedDataParallel.sync_gradients: {name} has shape "
                         f"{p.data.shape} but its gradient has shape {g.shape}")
    return g


class DistributedDataParallel:
    """Data-parallel training over the ranks of an MPI job (C7); see the module docstring.

    ``model``: a tinylm Module, built the same way on every rank. ``bucket_mib``: the size
    of each gradient buffer (default 25, PyTorch's). ``comm``: the communicator (default
    ``tinylm.parallel.get_comm()``: MPI's COMM_WORLD, or one process without MPI, where every
    method still runs and changes nothing).
    """

    def __init__(self, model, bucket_mib=25.0, comm=None):
        if not hasattr(model, "named_parameters"):
            raise TinyLMError(f"DistributedDataParallel: expected a tinylm Module, got "
                              f"{type(model).__name__}")
        self.module = model
        self.comm = get_comm() if comm is None else comm
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.bucket_mib = bucket_mib
        self.buckets = plan_buckets(list(model.named_parameters()), bucket_mib)
        if not self.buckets:
            raise TinyLMError("DistributedDataParallel: the model has no parameters")
        self.allreduce_calls = 0        # counters, for the chapter's measurements
        self.bytes_reduced = 0
        self.broadcast_parameters()
        self.decorrelate_generators()

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def parameters(self):
        return self.module.parameters()

    # --- the batch ---------------------------------------------------------------------
    def shard(self, batch):
        """This rank's rows of ``batch``: rows r*b .. (r+1)*b - 1 with b = B / N."""
        shape = getattr(batch, "shape", None)
        if not shape:
            raise ShapeError(f"DistributedDataParallel.shard: expected an array with a batch "
                             f"axis first, got {type(batch).__name__} of shape {shape}")
        if shape[0] % self.world_size:
            raise ParallelError(f"DistributedDataParallel.shard: a batch of {shape[0]} rows "
                                f"does not split evenly over {self.world_size} processes; use "
                                f"a batch size divisible by {self.world_size}")
        b = shape[0] // self.world_size
        return batch[self.rank * b:(self.rank + 1) * b]

    # --- communication -----------------------------------------------------------------
    def _allreduce(self, buffer):
        """Sum ``buffer`` over the ranks, in place."""
        if self.world_size > 1:
            MPI = _mpi()
            self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        self.allreduce_calls += 1
        self.bytes_reduced += buffer.nbytes

    def sync_gradients(self):
        """Replace every parameter's ``.grad`` by its mean over the ranks: per bucket, copy
        the gradients in, ONE Allreduce (sum), divide by N, copy back. A parameter without a
        gradient on every rank keeps ``None`` (the optimiser then skips it everywhere); one
        with a gradient on some ranks only is an error (the ranks ran different graphs)."""
        for bucket in self.buckets:
            n = len(bucket.params)
            values, present = bucket.buffer[:-n], bucket.buffer[-n:]
            grads = [_grad_array(name, p) for name, p in zip(bucket.names, bucket.params)]
            for i, (g, (start, stop)) in enumerate(zip(grads, bucket.slices)):
                present[i] = g is not None
                values[start:stop] = 0 if g is None else g.reshape(-1)
            self._allreduce(bucket.buffer)
            for name, count in zip(bucket.names, present):     # now: how many ranks had one
                if count not in (0, self.world_size):
                    raise ParallelError(f"DistributedDataParallel.sync_gradients: {name} has a "
                                        f"gradient on {int(count)} of {self.world_size} ranks; "
                                        f"every rank must run the same computation")
            values /= self.world_size
            for g, (start, stop) in zip(grads, bucket.slices):
                if g is not None:
                    np.copyto(g, values[start:stop].reshape(g.shape))

    def broadcast_parameters(self, root=0):
        """Copy rank ``root``'s parameters to every rank (in place), bucket by bucket."""
        if self.world_size == 1:
            return
        for bucket in self.buckets:
            values = bucket.buffer[:bucket.size]
            for p, (start, stop) in zip(bucket.params, bucket.slices):
                values[start:stop] = p.data.reshape(-1)
            self.comm.Bcast(values, root=root)
            for p, (start, stop) in zip(bucket.params, bucket.slices):
                np.copyto(p.data, values[start:stop].reshape(p.data.shape))

    def barrier(self):
        """Wait until every rank gets here."""
        self.comm.Barrier()

    def mean(self, value):
        """The mean of a number over the ranks, e.g. the shards' losses -> the batch's loss."""
        buffer = np.array([float(value)])
        if self.world_size > 1:
            MPI = _mpi()
            self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return float(buffer[0] / self.world_size)

    # --- keeping the replicas honest ------------------------------------------------------
    def decorrelate_generators(self):
        """Give each rank its own dropout masks.

        Dropout draws from the modules' own generators, built from the same seed on every
        rank, so every shard would get the same mask pattern; rank r > 0 jumps each
        generator r * 2^127 draws ahead (PCG64's ``jumped``), which makes the ranks' streams
        independent, as one process's masks over the whole batch are. A checkpoint stores
        rank 0's states, and the Trainer calls this again after loading one: jumping and
        drawing commute (both advance the same linear congruential state), so a resumed run
        continues exactly on every rank."""
        if self.rank == 0:
            return
        seen = set()
        for name, module in self.module.named_modules():
            g = getattr(module, "rng", None)
            if isinstance(g, np.random.Generator) and id(g) not in seen:
                seen.add(id(g))
                bit = g.bit_generator
                if not hasattr(bit, "jumped"):
                    raise ParallelError(f"DistributedDataParallel: the generator of module "
                                        f"{name or 'model'} ({type(bit).__name__}) cannot jump "
                                        f"ahead; use numpy.random.default_rng (PCG64)")
                bit.state = bit.jumped(self.rank).state

    def check_in_sync(self, optimizer=None):
        """Raise ParallelError unless every rank holds bit-identical parameters (and, given
        ``optimizer``, optimiser state); True otherwise. A CRC-32 per array is gathered."""
        if self.world_size == 1:
            return True
        names, sums = [], []
        for name, p in self.module.named_parameters():
            names.append(name)
            sums.append(zlib.crc32(np.ascontiguousarray(p.data).view(np.uint8)))
        if optimizer is not None:
            for index, entries in sorted(optimizer.state_dict()["state"].items()):
                for key, value in sorted(entries.items()):
                    names.append(f"optimizer state {index}.{key}")
                    data = np.ascontiguousarray(value).view(np.uint8) if isinstance(
                        value, np.ndarray) else repr(value).encode()
                    sums.append(zlib.crc32(data))
        MPI = _mpi()
        local = np.array(sums, dtype=np.int64)
        counts = np.empty(self.world_size, dtype=np.int64)
        self.comm.Allgather(np.array([local.size], dtype=np.int64), counts)
        if np.any(counts != local.size):
            raise ParallelError(f"DistributedDataParallel.check_in_sync: the ranks hold "
                                f"different numbers of arrays ({counts.tolist()})")
        every = np.empty((self.world_size, local.size), dtype=np.int64)
        self.comm.Allgather([local, MPI.INT64_T], [every, MPI.INT64_T])
        differ = np.nonzero(np.any(every != every[0], axis=0))[0]
        if differ.size:
            i = differ[0]
            ranks = np.nonzero(every[:, i] != every[0, i])[0].tolist()
            raise ParallelError(f"DistributedDataParallel.check_in_sync: {names[i]} on rank(s) "
                                f"{ranks} differs from rank 0's ({differ.size} arrays differ)")
        return True
