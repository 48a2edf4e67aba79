"""Who am I, how many are we: the MPI communicator, or a one-process stand-in without MPI.

    from tinylm.parallel import rank, world_size
    python train.py                       rank() == 0, world_size() == 1 (mpi4py not imported)
    mpiexec -n 4 python train.py          each of the 4 processes: rank() in 0..3, world_size() 4

MPI's launcher (``mpiexec``) starts N copies of the same program and tells each, through its
environment, how many there are (MPICH's and Intel's hydra: ``PMI_SIZE``; Open MPI:
``OMPI_COMM_WORLD_SIZE``). Only then is mpi4py imported, so that ``import tinylm`` and a
single-process run never need it; a run that asks for several processes without mpi4py gets
``pip install 'tinylm[mpi]'`` as its error. ``TINYLM_MPI=1`` forces MPI on for a launcher not
recognised here.

A collective operation (``Allreduce``, ``Bcast``) waits for EVERY rank. If one rank dies
with an exception while the others wait, the job would hang forever; so, when there are
several ranks, an uncaught exception prints its traceback with the rank and calls
``MPI_Abort``, which ends all of them (``abort_on_error`` does the same for a function whose
errors are caught, like the command line's).
"""
import functools
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from ..errors import TinyLMError

__all__ = ["ParallelError", "OneProcess", "get_comm", "rank", "world_size", "is_root",
           "barrier", "idle_barrier", "launched_size", "abort", "abort_on_error",
           "find_mpiexec", "mpi_available"]

# where launchers put the number of processes they started
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")

_COMM = None


class ParallelError(TinyLMError):
    """Parallel training cannot go on: MPI missing, ranks out of step, a bad split."""


class OneProcess:
    """The communicator of a run without MPI: rank 0 of 1. It has the few methods tinylm
    calls when ``Get_size() == 1`` (the others are never reached with one process)."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Barrier(self):
        pass

    def Abort(self, errorcode=1):
        os._exit(errorcode)          # what MPI_Abort does to a job of one process


def launched_size():
    """How many processes the MPI launcher started (1 when there is no launcher)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def mpi_available():
    """True when mpi4py can be imported (without importing it: that starts MPI)."""
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


def find_mpiexec():
    """The ``mpiexec`` that belongs to this Python (the ``mpich`` wheel puts it beside the
    interpreter in a virtualenv's bin/), else the one on PATH, else None."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("mpiexec")


def get_comm():
    """``mpi4py.MPI.COMM_WORLD`` under an MPI launcher, else ``OneProcess()``."""
    global _COMM
    if _COMM is not None:
        return _COMM
    size = launched_size()
    if size == 1 and os.environ.get("TINYLM_MPI") != "1" and "mpi4py.MPI" not in sys.modules:
        _COMM = OneProcess()
        return _COMM
    try:
        from mpi4py import MPI
    except ImportError:
        raise ParallelError(f"tinylm.parallel: the launcher started {size} processes, but "
                            f"mpi4py is not installed; pip install 'tinylm[mpi]' (mpi4py and "
                            f"the mpich wheel, which brings its own mpiexec)") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != size and size > 1:
        raise ParallelError(f"tinylm.parallel: the launcher started {size} processes, but MPI "
                            f"sees {comm.Get_size()}: mpiexec and mpi4py come from different "
                            f"MPI libraries; run the mpiexec of mpi4py's MPI ({find_mpiexec()})")
    if comm.Get_size() > 1:
        _install_abort_hook(comm)
    _COMM = comm
    return _COMM


def rank():
    """This process's number, 0 .. world_size() - 1."""
    return get_comm().Get_rank()


def world_size():
    """The number of processes in the job."""
    return get_comm().Get_size()


def is_root():
    """True on rank 0, the one process that prints and writes files."""
    return rank() == 0


def barrier():
    """Wait until every rank gets here."""
    get_comm().Barrier()


def idle_barrier(comm=None, poll_seconds=0.005):
    """A barrier that sleeps while it waits. MPI's own waits spin on a core, which would
    steal it from a rank that is measuring something alone."""
    comm = get_comm() if comm is None else comm
    if comm.Get_size() == 1:
        return
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(poll_seconds)


def abort(message, code=1):
    """Print ``message`` with this rank's number and end EVERY rank of the job (MPI_Abort)."""
    comm = get_comm()
    sys.stdout.flush()
    print(f"{message} [rank {comm.Get_rank()} of {comm.Get_size()}; aborting the job]",
          file=sys.stderr, flush=True)
    comm.Abort(code)


def _install_abort_hook(comm):
    previous = sys.excepthook

    def abort_hook(kind, value, tb):
        sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))
        abort(f"tinylm.parallel: {kind.__name__}: {value}",
              130 if issubclass(kind, KeyboardInterrupt) else 1)

    abort_hook.tinylm = True
    if not getattr(previous, "tinylm", False):
        sys.excepthook = abort_hook


def abort_on_error(function):
    """Decorator: with several ranks, an exception in ``function`` (even one the caller would
    catch and report, like the command line's ``tinylm: error: ...``) ends the whole job
    with its message, instead of leaving the other ranks waiting in a collective forever.
    With one process it changes nothing."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        if world_size() == 1:
            return function(*args, **kwargs)
        try:
            return function(*args, **kwargs)
        except TinyLMError as exc:
            abort(f"tinylm: error: {' '.join(str(exc).split())}", 2)
        except KeyboardInterrupt:
            abort("tinylm: interrupted", 130)
        except Exception:
            sys.stderr.write(traceback.format_exc())
            abort(f"tinylm: {function.__name__} failed", 1)
    return run
