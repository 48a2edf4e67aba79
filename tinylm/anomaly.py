"""``tinylm.detect_anomaly()``: name the op that first made a NaN or an infinity.

A NaN in a loss says only that something, somewhere, went wrong. Inside

    with tinylm.detect_anomaly():
        loss = model(x, y)[1]
        loss.backward()

every op's forward output and every gradient its backward returns is checked, and the first
non-finite value raises ``NumericalError`` naming the op, the direction (forward or backward),
its inputs' shapes and dtypes, and the usual cause (``Log``: the log of 0 or of a negative
number). Outside the block the engine tests one module-level flag per op, nothing more.

What counts as "made" here:
- a NaN in an op's output when none of its inputs held a NaN;
- an infinity in an op's output when none of its inputs (nor a constant it was given) was
  infinite or NaN. ``masked_fill(scores, mask, -inf)`` before a softmax is on purpose, and so
  is every op that passes that -inf along; ``-inf - (-inf)`` = NaN is not;
- a NaN already in a leaf (data, a weight) when an op first reads it: it came from outside
  the checked ops (a corrupt batch, weights a step outside the block ruined);
- in backward: a non-finite gradient returned from a finite incoming one, or a non-finite
  incoming gradient (passed to ``backward()``, or overflowed when the gradients of several
  uses of a tensor were summed).
"""
import contextlib

import numpy as np

from . import tensor as _tensor
from .backend import get_array_module, is_array, to_numpy
from .errors import NumericalError

__all__ = ["detect_anomaly", "is_anomaly_enabled"]

# the usual reason an op gives a NaN or an infinity, shown with the error (teaching aid)
_CAUSES = {
    "Log": "log of 0 (-inf) or of a negative number (nan)",
    "Sqrt": "square root of a negative number (nan), or its gradient at 0 (inf)",
    "Div": "division by zero, or 0/0",
    "Pow": "a negative base with a fractional exponent, 0 to a negative power, or overflow",
    "Exp": "overflow: exp(x) is inf for x > 88.7 in float32, x > 709.8 in float64",
    "Mul": "overflow, or 0 * inf",
    "Sub": "inf - inf",
    "Add": "inf + (-inf), or overflow",
    "MatMul": "overflow in the sums of products (weights or activations too large)",
    "Softmax": "a row with every entry -inf (a mask that hides every key)",
    "LogSoftmax": "a row with every entry -inf (a mask that hides every key)",
    "CrossEntropy": "logits that are inf or nan, or a row with every entry -inf",
    "LayerNormalize": "a row of inf, or a negative eps",
}


@contextlib.contextmanager
def detect_anomaly():
    """Check every op's output and gradient for NaN and inf inside the block (a context
    manager, or a decorator); the first one raises ``NumericalError`` naming the op.
    It costs one check of the values per op: for debugging, not for every run."""
    previous = _tensor._anomaly_mode
    _tensor._anomaly_mode = True
    try:
        yield
    finally:
        _tensor._anomaly_mode = previous


def is_anomaly_enabled():
    return _tensor._anomaly_mode


def _array(x):
    return x.data if isinstance(x, _tensor.Tensor) else x


def _kinds(array):
    """``(has_nan, has_inf)`` of a floating array (integers and booleans are always finite)."""
    if array is None or not is_array(array) or array.dtype.kind not in "fc":
        return False, False
    xp = get_array_module(array)
    if bool(xp.isfinite(array).all()):          # the common case: one pass
        return False, False
    return bool(xp.isnan(array).any()), bool(xp.isinf(array).any())


def _describe(kinds):
    return " and ".join(name for name, present in zip(("nan", "inf"), kinds) if present)


def _first_bad(array):
    """The index of the first non-finite entry, as a tuple (for the message)."""
    xp = get_array_module(array)
    flat = int(to_numpy(xp.argmax(~xp.isfinite(array).reshape(-1))))
    return tuple(int(i) for i in np.unravel_index(flat, array.shape)) if array.ndim else ()


def _signature(tensors):
    return ", ".join(f"{t.shape} {t.dtype}" for t in tensors) or "none"


def _cause(name):
    return f" (a usual cause: {_CAUSES[name]})" if name in _CAUSES else ""


def _constant_kinds(params):
    """NaN/inf among an op's non-tensor arguments (a fill value, an additive mask)."""
    nan = inf = False
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, float):
                nan, inf = nan or item != item, inf or item in (np.inf, -np.inf)
            elif is_array(item):
                n, i = _kinds(item)
                nan, inf = nan or n, inf or i
    return nan, inf


def check_forward(cls, tensors, params, out):
    """Called by ``Function.apply`` in anomaly mode with the op's output array ``out``."""
    name = cls.__name__
    in_kinds = [_kinds(t.data) for t in tensors]
    for i, (t, (nan, _)) in enumerate(zip(tensors, in_kinds)):
        if nan and t.creator is None:
            raise NumericalError(
                f"detect_anomaly: {name}.forward got nan in its input {i} (a leaf of shape "
                f"{t.shape}, at index {_first_bad(t.data)}): it came from outside the checked "
                f"ops (the data, or weights already ruined before detect_anomaly() was on)")
    out_nan, out_inf = _kinds(out)
    if not (out_nan or out_inf):
        return
    in_nan = any(n for n, _ in in_kinds)
    in_inf = any(i for _, i in in_kinds)
    const_nan, const_inf = _constant_kinds(params)
    made_nan = out_nan and not (in_nan or const_nan)
    made_inf = out_inf and not (in_nan or in_inf or const_nan or const_inf)
    if made_nan or made_inf:
        raise NumericalError(
            f"detect_anomaly: {name}.forward produced {_describe((made_nan, made_inf))} "
            f"(first at index {_first_bad(out)} of its output, shape {out.shape}) from "
            f"{'inputs without nan (some infinite)' if in_inf or const_inf else 'finite inputs'}"
            f" ({_signature(tensors)}){_cause(name)}")


def check_backward(fn, grad_output, input_grads):
    """Called by the backward pass in anomaly mode for each op visited."""
    name = type(fn).__name__
    g = _array(grad_output)
    kinds = _kinds(g)
    if any(kinds):
        raise NumericalError(
            f"detect_anomaly: the gradient arriving at {name}.backward (for its output of "
            f"shape {g.shape}) is already {_describe(kinds)}: it was passed to backward(), or "
            f"overflowed when the gradients of several uses of a tensor were added")
    for i, gx in enumerate(input_grads):
        gx = _array(gx)
        kinds = _kinds(gx)
        if any(kinds):
            raise NumericalError(
                f"detect_anomaly: {name}.backward produced {_describe(kinds)} in the "
                f"gradient of its input {i} (shape {gx.shape}, first at index "
                f"{_first_bad(gx)}) from a finite incoming gradient; the op's inputs: "
                f"{_signature(fn.inputs)}{_cause(name)}")
