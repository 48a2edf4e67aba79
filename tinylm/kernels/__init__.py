"""Kernels: the same math as plain NumPy (reference), Numba (CPU) and CuPy (GPU).

``erf`` is here because NumPy has none: the exact GELU needs it.
"""
import numpy as np

from ..backend import get_array_module


def erf(x):
    """The error function, elementwise, on the array's own device."""
    if get_array_module(x) is not np:
        from cupyx.scipy.special import erf as cupy_erf
        return cupy_erf(x)
    from .cpu import erf as numba_erf
    return numba_erf(x)
