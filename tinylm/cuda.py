"""Is there a GPU tinylm can use? ``tinylm.cuda.is_available()`` and, when not, why not.

    import tinylm
    if tinylm.cuda.is_available():
        model.to("cuda")
    else:
        print(tinylm.cuda.reason())   # "CuPy is not installed: pip install tinylm[gpu]" or
                                      # "CuPy 14.2.0 is installed, but no CUDA GPU was found: ..."

tinylm runs on an NVIDIA GPU through CuPy, an optional extra. Two things can be missing, and
the message says which: CuPy itself (the fix is ``pip install tinylm[gpu]``), or a GPU with a
working driver (CuPy imports fine without one; the first call into the CUDA runtime fails,
and its error text is passed on). The answer is worked out once and kept: importing CuPy and
asking the driver take a moment, and neither changes while a program runs.

Importing ``tinylm`` never imports CuPy; this module does, on the first question asked.
"""
import functools

from .backend import DeviceError

__all__ = ["is_available", "reason", "device_count", "require", "synchronize",
           "CudaUnavailableError", "INSTALL_HINT"]

INSTALL_HINT = "pip install tinylm[gpu]"


class CudaUnavailableError(DeviceError):
    """The GPU was asked for but cannot be used: CuPy is missing, or no GPU/driver is."""


@functools.lru_cache(maxsize=1)
def _probe():
    """``(cupy module or None, number of GPUs, why not usable or "")``, worked out once."""
    try:
        import cupy
    except ImportError as exc:
        return None, 0, (f"CuPy is not installed: {INSTALL_HINT} "
                         f"(import cupy failed: {exc})")
    except Exception as exc:   # CuPy present but broken, e.g. its CUDA libraries missing
        return None, 0, (f"CuPy is installed but cannot be imported: "
                         f"{type(exc).__name__}: {exc}; reinstall it with {INSTALL_HINT}")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:   # cupy_backends' CUDARuntimeError: no driver, no device...
        return cupy, 0, (f"CuPy {cupy.__version__} is installed, but no CUDA GPU was found "
                         f"(the CUDA runtime says: {exc})")
    if count == 0:
        return cupy, 0, (f"CuPy {cupy.__version__} is installed, but no CUDA GPU was found "
                         f"(the driver reports 0 devices)")
    return cupy, count, ""


def is_available():
    """True when CuPy imports and at least one CUDA GPU answers."""
    return _probe()[1] > 0


def reason():
    """Why the GPU cannot be used ("" when it can): which of CuPy or the GPU is missing."""
    return _probe()[2]


def device_count():
    """The number of CUDA GPUs CuPy sees (0 without CuPy or without a driver)."""
    return _probe()[1]


def require(what="device 'cuda'"):
    """The ``cupy`` module, or a ``CudaUnavailableError`` saying ``what`` was asked for and
    which part is missing."""
    cupy, count, why = _probe()
    if count == 0:
        raise CudaUnavailableError(f"{what} asked for, but {why}")
    return cupy


def synchronize():
    """Wait for the GPU to finish the work queued so far (for timing); nothing on the CPU."""
    cupy, count, _ = _probe()
    if count:
        cupy.cuda.get_current_stream().synchronize()


def _forget():
    """Ask again next time (tests that fake a missing or present CuPy call this)."""
    _probe.cache_clear()
