"""Kernels: the hot ops as plain NumPy (``reference``), compiled with Numba (``cpu``) and
written in CUDA for CuPy arrays (``gpu``).

The one dispatch point: ``kernel(name, *arrays)`` returns the function to run on those
arrays: Numba's for NumPy float32/float64 arrays, the CUDA kernel of ``gpu.py`` for CuPy
float32/float64 arrays, the reference for anything else (other dtypes, an op with no kernel
of that kind), and the reference everywhere when the setting says so (on a GPU: the same
formulas as CuPy calls):

    TINYLM_KERNELS=reference python chapters/10_attention.py     # plain NumPy throughout
    with tinylm.kernels.use("reference"): ...                     # the same, in code

so a chapter can show both and a test can compare them. ``erf`` is here because NumPy has
none: the exact GELU needs it.
"""
import contextlib
import os

import numpy as np

from ..backend import get_array_module
from ..errors import TinyLMError
from . import reference

MODES = ("numba", "reference")

# Every Numba kernel beats its NumPy reference on the 2-core development machine
# (benchmarks/bench_kernels.py). It was not always so: while the kernels called the C
# library's exp and erf, one element at a time, NumPy's SIMD exp won for GELU and the
# cross-entropy over 10,000 classes, and those ops ran on NumPy. ``vector_math.py`` (exp and
# the normal CDF as arithmetic LLVM vectorises) turned that around: GELU forward 6.1x,
# cross-entropy forward 3.5x faster than NumPy in float32.
_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _mode_from_environment():
    mode = os.environ.get("TINYLM_KERNELS", "numba").strip().lower() or "numba"
    if mode not in MODES:
        raise TinyLMError(f"TINYLM_KERNELS must be one of {MODES}, got {mode!r}")
    return mode


_mode = _mode_from_environment()


def mode():
    """The kernels in use: ``"numba"`` (default) or ``"reference"``."""
    return _mode


def set_mode(new_mode):
    """Switch every op to ``"numba"`` or ``"reference"`` kernels; returns the old mode."""
    global _mode
    if new_mode not in MODES:
        raise TinyLMError(f"kernels.set_mode: expected one of {MODES}, got {new_mode!r}")
    old, _mode = _mode, new_mode
    return old


@contextlib.contextmanager
def use(new_mode):
    """``with kernels.use("reference"):`` run the block with those kernels."""
    old = set_mode(new_mode)
    try:
        yield
    finally:
        set_mode(old)


def kernel(name, *arrays):
    """The implementation of ``name`` for these arrays (see the module docstring)."""
    if _mode == "numba":
        if all(isinstance(a, np.ndarray) and a.dtype in _FAST_DTYPES for a in arrays):
            from . import cpu
            return getattr(cpu, name)
        elif get_array_module(*arrays) is not np and all(
                a.dtype in _FAST_DTYPES for a in arrays):
            from . import gpu       # imports CuPy: only reached with CuPy arrays in hand
            found = getattr(gpu, name, None)
            if found is not None:
                return found
    return getattr(reference, name)


def erf(x):
    """The error function, elementwise, on the array's own device."""
    if get_array_module(x) is not np:
        from cupyx.scipy.special import erf as cupy_erf
        return cupy_erf(x)
    from .cpu import erf as numba_erf
    return numba_erf(x)
