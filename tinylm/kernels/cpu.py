"""Numba kernels for the CPU (compiled once, cached on disk with ``cache=True``)."""
import math

from numba import vectorize


# float32 first: a ufunc takes the first loop its input casts to safely, so with float64
# listed first a float32 array would silently come back as float64
@vectorize(["float32(float32)", "float64(float64)"], cache=True)
def erf(x):
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, via the C library's ``erf``."""
    return math.erf(x)
