"""tinylm: a from-scratch NumPy framework for learning how large language models work.

    import tinylm as tl
    x = tl.Tensor([[1.0, 2.0]], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()          # x.grad == 2 x
"""
from . import cuda, functional, nn, optim
from .backend import DEFAULT_DTYPE, get_array_module
from .anomaly import detect_anomaly
from .errors import (DTypeError, GradError, IndexRangeError, NumericalError, ShapeError,
                     TinyLMError)
from .functional import concatenate, split, stack, where
from .tensor import Function, Tensor, enable_grad, grad, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = [
    "Tensor", "Function", "grad", "no_grad", "enable_grad", "is_grad_enabled", "functional",
    "nn", "optim", "cuda", "concatenate", "stack", "split", "where", "get_array_module",
    "DEFAULT_DTYPE",
    "TinyLMError", "ShapeError", "DTypeError", "GradError", "IndexRangeError",
    "NumericalError", "detect_anomaly",
]
