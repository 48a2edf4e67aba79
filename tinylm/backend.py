"""Which array library holds a tensor: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every array tinylm creates goes through this module (``xp = get_array_module(x)`` and then
``xp.zeros(...)``), so the engine and the layers never name NumPy or CuPy directly when the
choice matters (DeZero's ``cuda.py`` idea). CuPy is optional: without it everything runs on
NumPy, and importing tinylm never imports CuPy (``tinylm.cuda`` does, when asked).

Devices are named as in PyTorch, ``"cpu"`` and ``"cuda"``:

    x.to("cuda"); model.to("cuda")               # move a tensor / every parameter
    tinylm.backend.set_default_device("cuda")    # where new tensors and modules are made
    TINYLM_DEVICE=cuda python chapters/10_attention.py       # the same, from outside
    python chapters/10_attention.py --device cuda            # the same, per run

The default device decides where ``Tensor(data)`` puts host data (numbers, lists, NumPy
arrays) and where a ``Module`` built under it keeps its parameters; a CuPy array stays on
the GPU and a Tensor made from a Tensor shares its array, wherever it is.
"""
import os
import sys

import numpy as np

from .errors import TinyLMError

DEFAULT_DTYPE = np.float32
"""dtype of tensors made from Python numbers and lists, and of new layers (as in PyTorch)."""

DEVICES = ("cpu", "cuda")


class DeviceError(TinyLMError, ValueError):
    """Arrays on different devices met in one op, or a device that is unknown or unusable."""


def _loaded_cupy():
    """The ``cupy`` module if something already imported it, else None. Never imports it: a
    CuPy array cannot exist before CuPy is imported, so until then everything is NumPy."""
    return sys.modules.get("cupy")


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy`` (DeZero's idea)."""
    cp = _loaded_cupy()
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def is_array(x):
    """True for a NumPy or CuPy array (not for Python scalars)."""
    if isinstance(x, np.ndarray):
        return True
    cp = _loaded_cupy()
    return cp is not None and isinstance(x, cp.ndarray)


def device_of(x):
    """``"cuda"`` for a CuPy array, ``"cpu"`` for anything else (NumPy arrays, numbers)."""
    cp = _loaded_cupy()
    return "cuda" if cp is not None and isinstance(x, cp.ndarray) else "cpu"


def check_device(device, where="device"):
    """``device`` as one of ``DEVICES`` (``"gpu"`` is taken for ``"cuda"``), else a
    ``DeviceError`` naming ``where``."""
    name = device.strip().lower() if isinstance(device, str) else device
    if name == "gpu":
        name = "cuda"
    if name not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: expected 'cpu' or 'cuda'"
                          + ("" if where == "device" else f" (in {where})"))
    return name


# --- the default device --------------------------------------------------------------------
def _device_from_environment():
    value = os.environ.get("TINYLM_DEVICE", "cpu").strip() or "cpu"
    try:
        return check_device(value, "the environment variable TINYLM_DEVICE")
    except DeviceError:
        raise DeviceError(f"TINYLM_DEVICE must be 'cpu' or 'cuda', got {value!r}") from None


_default_device = _device_from_environment()
# Checked when first used rather than at import: `import tinylm` must work (and say nothing)
# on a machine without a GPU even with TINYLM_DEVICE=cuda set; the first tensor or module
# made there raises the clear error instead.
_default_checked = _default_device == "cpu"
_default_on_gpu = _default_device == "cuda"   # read on every Tensor(...): a plain bool


def default_device():
    """Where new tensors and modules are made: ``"cpu"`` unless set (``TINYLM_DEVICE``,
    ``set_default_device``, a chapter's or the CLI's ``--device``)."""
    global _default_checked
    if not _default_checked:
        from . import cuda
        cuda.require("device 'cuda' (from TINYLM_DEVICE)")
        _default_checked = True
    return _default_device


def set_default_device(device):
    """Make ``device`` the default (checking that it can be used); returns the old one."""
    global _default_device, _default_checked, _default_on_gpu
    device = check_device(device, "set_default_device")
    if device == "cuda":
        from . import cuda
        cuda.require()
    old = _default_device
    _default_device, _default_checked, _default_on_gpu = device, True, device == "cuda"
    return old


# --- making and moving arrays ----------------------------------------------------------------
def as_array(data, dtype=None, xp=None):
    """Turn ``data`` (array, number, nested list) into an array of module ``xp``.

    Arrays and NumPy scalars (what ``a.sum()`` returns) keep their dtype unless ``dtype`` is
    given; Python floats and lists of floats become ``DEFAULT_DTYPE`` (float32), Python ints
    stay integer. Without ``xp`` an array stays where it is and other data (numbers, lists)
    goes to the default device; with ``xp`` everything is moved there.
    """
    if is_array(data):
        if xp is not None and get_array_module(data) is not xp:
            data = xp.asarray(data) if xp is not np else to_numpy(data)
        return data if dtype is None or data.dtype == dtype else data.astype(dtype)
    if xp is None:
        xp = _default_xp()
    arr = np.asarray(data)
    if dtype is None and arr.dtype.kind == "f" and not isinstance(data, np.generic):
        dtype = DEFAULT_DTYPE
    return xp.asarray(arr, dtype=dtype)


def on_default_device(data):
    """``data`` where ``Tensor(data)`` keeps it: host data (NumPy arrays, numbers, lists) on the
    default device, a CuPy array where it is."""
    if _default_on_gpu and not (is_array(data) and device_of(data) == "cuda"):
        return as_array(data, None, _default_xp())
    return data


def to_numpy(x, copy=False):
    """``x`` as a NumPy array, wherever it lives: a view where possible, unless ``copy``
    (an array copied off the GPU is new memory either way)."""
    cp = _loaded_cupy()
    if cp is not None and isinstance(x, cp.ndarray):
        return cp.asnumpy(x)
    return np.array(x) if copy else np.asarray(x)


def to_device(x, device):
    """Array ``x`` on ``"cpu"`` or ``"cuda"``: ``x`` itself when it is already there, else a
    copy (asking for ``"cuda"`` without CuPy or a GPU raises ``CudaUnavailableError``)."""
    device = check_device(device)
    if device == "cpu":
        return to_numpy(x)
    cp = _cuda_module()
    return x if isinstance(x, cp.ndarray) else cp.asarray(x)


def _default_xp():
    """The array module of the default device (the first use checks TINYLM_DEVICE=cuda)."""
    if not _default_on_gpu:
        return np
    default_device()
    return _cuda_module()


def _cuda_module():
    """``cupy``, once ``tinylm.cuda`` has checked that a GPU can be used."""
    from . import cuda
    return cuda.require()
