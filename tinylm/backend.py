"""Which array library holds a tensor: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every array tinylm creates goes through this module (``xp = get_array_module(x)`` and then
``xp.zeros(...)``), so the engine and the layers never name NumPy or CuPy directly when the
choice matters. CuPy is optional: without it everything runs on NumPy.
"""
import numpy as np

try:  # CuPy is an optional extra (`pip install tinylm[gpu]`).
    import cupy as _cupy
except Exception:  # ImportError, or a CUDA runtime that fails to load
    _cupy = None

DEFAULT_DTYPE = np.float32
"""dtype of tensors made from Python numbers and lists, and of new layers (as in PyTorch)."""


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy`` (DeZero's idea)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_array(x):
    """True for a NumPy or CuPy array (not for Python scalars)."""
    return isinstance(x, np.ndarray) or (_cupy is not None and isinstance(x, _cupy.ndarray))


def as_array(data, dtype=None, xp=None):
    """Turn ``data`` (array, number, nested list) into an array of module ``xp``.

    Arrays and NumPy scalars (what ``a.sum()`` returns) keep their dtype unless ``dtype`` is
    given; Python floats and lists of floats become ``DEFAULT_DTYPE`` (float32), Python ints
    stay integer.
    """
    if xp is None:
        xp = get_array_module(data)
    if is_array(data):
        return data if dtype is None or data.dtype == dtype else data.astype(dtype)
    arr = np.asarray(data)
    if dtype is None and arr.dtype.kind == "f" and not isinstance(data, np.generic):
        dtype = DEFAULT_DTYPE
    return xp.asarray(arr, dtype=dtype)


def to_numpy(x, copy=False):
    """``x`` as a NumPy array, wherever it lives: a view where possible, unless ``copy``
    (an array copied off the GPU is new memory either way)."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    return np.array(x) if copy else np.asarray(x)


def to_device(x, device):
    """Move array ``x`` to ``"cpu"`` or ``"cuda"``."""
    if device == "cpu":
        return to_numpy(x)
    if device in ("cuda", "gpu"):
        if _cupy is None:
            from .errors import TinyLMError
            raise TinyLMError("device 'cuda' asked for, but CuPy is not installed "
                              "(pip install tinylm[gpu])")
        return _cupy.asarray(x)
    from .errors import TinyLMError
    raise TinyLMError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
