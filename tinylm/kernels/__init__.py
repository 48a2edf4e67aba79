"""Kernels: the hot ops as plain NumPy (``reference``) and compiled with Numba (``cpu``).

The one dispatch point: ``kernel(name, *arrays)`` returns the function to run on those
arrays: Numba's for NumPy float32/float64 arrays (except where NumPy measured faster, see
``NUMPY_IS_FASTER``), the reference for anything else (CuPy arrays, other dtypes), and the
reference everywhere when the setting says so:

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

# Kept on NumPy in "numba" mode because NumPy is faster there, as measured by
# benchmarks/bench_kernels.py on the 2-core development machine (float32, ms, Numba vs NumPy):
# GELU backward 4.6 vs 1.8, cross-entropy forward over 10,000 classes 35.8 vs 28.4. NumPy runs
# exp as SIMD vector code; a Numba loop calls the scalar C exp once per element (LLVM vectorises
# it only with fastmath and Intel's SVML, which tinylm does not use). The Numba versions stay
# in cpu.py, tested, and the benchmark keeps timing them, so the choice can be re-measured.
NUMPY_IS_FASTER = frozenset({"gelu_forward", "gelu_backward", "cross_entropy_forward",
                             "cross_entropy_backward"})
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
    if _mode == "numba" and name not in NUMPY_IS_FASTER and all(
            isinstance(a, np.ndarray) and a.dtype in _FAST_DTYPES for a in arrays):
        from . import cpu
        return getattr(cpu, name)
    return getattr(reference, name)


def erf(x):
    """The error function, elementwise, on the array's own device."""
    if get_array_module(x) is not np:
        from cupyx.scipy.special import erf as cupy_erf
        return cupy_erf(x)
    from .cpu import erf as numba_erf
    return numba_erf(x)
