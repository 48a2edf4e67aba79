"""Numba kernels for the CPU (compiled once, cached on disk with ``cache=True``)."""
import math

from numba import vectorize


@vectorize(["float64(float64)", "float32(float32)"], cache=True)
def erf(x):
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, via the C library's ``erf``."""
    return math.erf(x)
