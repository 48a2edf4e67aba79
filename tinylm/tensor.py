"""The autograd engine: ``Tensor``, ``Function`` and reverse-mode ``backward()``.

A ``Tensor`` holds an array (NumPy, or CuPy on a GPU) and, when it was computed from other
tensors that need gradients, the ``Function`` that made it. Each ``Function`` does its math
on raw arrays in ``forward`` and gives the local derivative in ``backward``; ``apply`` records
the graph. ``Tensor.backward()`` sorts the graph once (no recursion, so a chain of 10,000 ops
works) and pushes gradients from the output to every input by the chain rule (C8):

    dL/dx = sum over the ops f that read x of  dL/df(x) * df/dx

This file holds the machinery and the ops that Python's operators need (+ - * / ** @,
indexing, reshape, transpose, sum, mean, max). The rest (nonlinearities, softmax, losses,
layer norm, ...) lives in ``functional.py`` on the same ``Function`` base.
"""
import contextlib
import sys

import numpy as np

from . import backend as _backend
from .backend import (DeviceError, as_array, check_device, device_of, get_array_module,
                      is_array, on_default_device, to_device, to_numpy)
from .errors import DTypeError, GradError, IndexRangeError, ShapeError, TinyLMError

_grad_enabled = True
_anomaly_mode = False   # tinylm.detect_anomaly(): check every op's values (anomaly.py)


@contextlib.contextmanager
def _grad_mode(enabled):
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, enabled
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """Turn graph recording off inside the block (evaluation, generation, optimiser steps)."""
    return _grad_mode(False)


def enable_grad():
    """Turn graph recording back on inside the block (even within ``no_grad()``)."""
    return _grad_mode(True)


def is_grad_enabled():
    return _grad_enabled


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.

    A broadcast input was read once per copy, so its gradient is the sum over the copies:
    over the leading axes broadcasting added, and over the axes where ``shape`` has size 1.
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


class Tensor:
    """An array plus what autograd needs: ``grad``, ``requires_grad`` and its creator.

    Gradients ACCUMULATE: each ``backward()`` adds into ``.grad`` of the leaves, as in
    PyTorch, so call ``zero_grad()`` (or set ``.grad = None``) between training steps.
    """

    # NumPy must not handle Tensors itself: `ndarray + Tensor` then calls Tensor.__radd__
    # (so the graph is recorded), and np.exp(tensor) fails loudly instead of making an
    # object array.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        elif _backend._default_on_gpu:      # host data (NumPy, lists) goes to the default GPU
            data = on_default_device(data)
        try:
            array = as_array(data, dtype)
        except (ValueError, TypeError) as exc:   # ragged lists, strings for a float dtype...
            ragged = "inhomogeneous" in str(exc) or "sequence" in str(exc)
            raise (ShapeError if ragged else DTypeError)(
                f"Tensor: expected numbers in a rectangular array (nested lists of equal "
                f"lengths, or an array), got {type(data).__name__}: {exc}") from None
        self._init(array, requires_grad, type(data).__name__)

    @classmethod
    def _wrap(cls, array):
        """A new leaf around an array the engine computed, left on the device it is on (no
        default-device move: an op on CPU tensors stays on the CPU)."""
        t = cls.__new__(cls)
        t._init(as_array(array), False)
        return t

    def _init(self, data, requires_grad, source="array"):
        self.data = data
        if self.data.dtype.kind not in "biufc":
            raise DTypeError(f"Tensor: data must be numbers (bool, int or float), got "
                             f"{source} of dtype {self.data.dtype}")
        if requires_grad and self.data.dtype.kind not in "fc":
            raise DTypeError(f"Tensor: only floating-point tensors can require gradients, "
                             f"got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.creator = None      # the Function that computed this tensor (None for leaves)
        self.retains_grad = False

    # --- plain properties -------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    T = property(lambda self: self.permute(*reversed(range(self.ndim))))
    is_leaf = property(lambda self: self.creator is None)
    device = property(lambda self: device_of(self.data), doc="'cpu' or 'cuda'")

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        return bool(self.data)      # like NumPy: an error for more than one element

    def __float__(self):
        return float(self.item())   # only for a single element

    def __int__(self):
        return int(self.item())

    def __repr__(self):
        body = np.array2string(to_numpy(self.data), precision=4, separator=", ", prefix="Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}{extra})"

    def item(self):
        if self.size != 1:
            raise ShapeError(f"item: only a one-element tensor converts to a Python number, "
                             f"got shape {self.shape} (reduce it first, e.g. .sum() or .mean())")
        return self.data.item()

    def numpy(self):
        """The values as a NumPy array (copied off the GPU if needed)."""
        return to_numpy(self.data)

    def detach(self):
        """A new leaf sharing the data, cut off from the graph."""
        return Tensor._wrap(self.data)

    def to(self, target):
        """This tensor on device ``"cpu"``/``"cuda"`` (or in a dtype, as ``astype``): itself
        when it is there already, else a copy that gradients flow back through to this one.
        Without CuPy or a GPU, ``"cuda"`` raises ``CudaUnavailableError`` saying which."""
        if isinstance(target, str) and target.strip().lower() in ("cpu", "cuda", "gpu"):
            device = check_device(target)
            return self if device == self.device else ToDevice.apply(self, device=device)
        try:
            dtype = np.dtype(target)
        except TypeError:
            raise DeviceError(f"Tensor.to: expected a device ('cpu' or 'cuda') or a dtype, "
                              f"got {target!r}") from None
        return self.astype(dtype)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after ``backward()`` (for teaching/inspection)."""
        self.retains_grad = True
        return self

    def zero_grad(self):
        self.grad = None

    # --- backward -------------------------------------------------------------------
    def backward(self, grad=None):
        """Backpropagate from this tensor; add dL/dleaf into each leaf's ``.grad``.

        ``grad`` is dL/dself; it may be omitted only for a single-element tensor (then 1).
        For gradients that are themselves differentiable (Hessian-vector products), use
        ``tinylm.grad(..., create_graph=True)``.
        """
        def store(node, g):
            if node.creator is None or node.retains_grad:
                # copy: g may be shared with other tensors (Add passes one array to both
                # inputs) or be a read-only view, and optimisers update .grad in place
                node.grad = g.copy() if node.grad is None else node.grad + g

        _backpropagate(self, _initial_grad(self, grad, "backward"), store)

    # --- operators ------------------------------------------------------------------
    def __add__(self, other): return Add.apply(self, other)
    def __radd__(self, other): return Add.apply(other, self)
    def __sub__(self, other): return Sub.apply(self, other)
    def __rsub__(self, other): return Sub.apply(other, self)
    def __mul__(self, other): return Mul.apply(self, other)
    def __rmul__(self, other): return Mul.apply(other, self)
    def __truediv__(self, other): return Div.apply(self, other)
    def __rtruediv__(self, other): return Div.apply(other, self)
    def __neg__(self): return Neg.apply(self)
    def __pow__(self, other): return Pow.apply(self, other)
    def __rpow__(self, other): return Pow.apply(other, self)
    def __matmul__(self, other): return MatMul.apply(self, other)
    def __rmatmul__(self, other): return MatMul.apply(other, self)
    def __getitem__(self, key): return GetItem.apply(self, key=_unwrap_key(key))

    # Comparisons give plain boolean arrays, elementwise (as in NumPy and PyTorch); they have
    # no gradient. Tensors stay hashable by identity, which is all the engine needs.
    __hash__ = object.__hash__
    def __eq__(self, other): return self.data == _raw(other)
    def __ne__(self, other): return self.data != _raw(other)
    def __lt__(self, other): return self.data < _raw(other)
    def __le__(self, other): return self.data <= _raw(other)
    def __gt__(self, other): return self.data > _raw(other)
    def __ge__(self, other): return self.data >= _raw(other)

    # --- shape and reductions (defined below in this file) -----------------------------
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Reshape.apply(self, shape=tuple(shape))

    def permute(self, *axes):
        """Reorder the axes: ``x.permute(2, 0, 1)`` (NumPy's ``transpose(axes)``)."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return Transpose.apply(self, axes=tuple(axes))

    def transpose(self, dim0, dim1):
        """Swap two axes, as PyTorch's ``transpose`` (``k.transpose(-2, -1)`` in attention)."""
        axes = list(range(self.ndim))
        try:
            axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        except IndexError:
            raise ShapeError(f"transpose: axes {dim0} and {dim1} do not both exist in a tensor "
                             f"of shape {self.shape}") from None
        return Transpose.apply(self, axes=tuple(axes))

    def astype(self, dtype):
        """The values in another dtype; the gradient is cast back."""
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise DTypeError(f"astype: expected a NumPy dtype (np.float32, 'float64'), got "
                             f"{dtype!r}") from None
        return self if self.dtype == dtype else AsType.apply(self, dtype=dtype)

    def sum(self, axis=None, keepdims=False):
        return Sum.apply(self, axis=_axis(axis), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return Mean.apply(self, axis=_axis(axis), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return Max.apply(self, axis=_axis(axis), keepdims=keepdims)

    # --- elementwise math (the Functions live in functional.py) -------------------------
    def exp(self): return _F().exp(self)
    def log(self): return _F().log(self)
    def sqrt(self): return _F().sqrt(self)
    def tanh(self): return _F().tanh(self)
    def sigmoid(self): return _F().sigmoid(self)
    def relu(self): return _F().relu(self)
    def gelu(self, approximate="none"): return _F().gelu(self, approximate=approximate)
    def masked_fill(self, mask, value): return _F().masked_fill(self, mask, value)
    def pow(self, exponent): return Pow.apply(self, exponent)


def _F():
    from . import functional  # functional.py imports this file, so import it late
    return functional


def _axis(axis):
    """NumPy takes several axes only as a tuple; accept a list too."""
    return tuple(axis) if isinstance(axis, list) else axis


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _unwrap_key(key):
    """Index keys may hold Tensors (integer arrays, boolean masks): use their arrays."""
    if isinstance(key, tuple):
        return tuple(_raw(k) for k in key)
    return _raw(key)


def _initial_grad(root, grad, caller):
    """dL/droot as an array: ``grad`` checked against root's shape, or 1 for a scalar."""
    if not root.requires_grad:
        raise GradError(f"{caller}: this tensor does not require grad (no input of the "
                        f"computation had requires_grad=True, or it ran under no_grad())")
    xp = get_array_module(root.data)
    if grad is None:
        if root.size != 1:
            raise GradError(f"{caller}: output has shape {root.shape}; pass grad= of that "
                            f"shape, or reduce it to a scalar first (e.g. loss.sum())")
        return xp.ones_like(root.data)
    grad = as_array(grad.data if isinstance(grad, Tensor) else grad, root.dtype, xp)
    if grad.shape != root.shape:
        raise ShapeError(f"{caller}: grad has shape {grad.shape}, "
                         f"expected the output's shape {root.shape}")
    return grad


def _backpropagate(root, grad, on_grad, create_graph=False):
    """The chain rule over the graph below ``root``, outputs before inputs.

    Each tensor's gradient is complete once every op that read it has been visited; then
    ``on_grad(tensor, grad)`` sees it, and its creator's ``backward`` passes it on. With
    ``create_graph`` the gradients are Tensors computed by recorded ops (see
    ``higher_order.py``), so they can be differentiated again.
    """
    if create_graph:
        from .higher_order import graph_backward
        grad = Tensor._wrap(grad)
    grads = {id(root): grad}
    for node in reversed(_topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        on_grad(node, g)
        fn = node.creator
        if fn is None:
            continue
        input_grads = graph_backward(fn, g) if create_graph else fn.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if _anomaly_mode:
            from .anomaly import check_backward
            check_backward(fn, g, input_grads)
        for x, gx in zip(fn.inputs, input_grads):
            if gx is None or not x.requires_grad:
                continue
            if gx.shape != x.shape:  # a Function bug, not a user error: fail loudly
                raise ShapeError(f"{type(fn).__name__}.backward gave a gradient of shape "
                                 f"{gx.shape} for an input of shape {x.shape}")
            if gx.dtype != x.dtype:   # e.g. float64 data through float32 weights
                gx = gx.astype(x.dtype)
            key = id(x)
            grads[key] = gx if key not in grads else grads[key] + gx


def grad(output, inputs, grad_output=None, create_graph=False, allow_unused=False):
    """d output / d input for each of ``inputs``, returned (not stored in ``.grad``).

    With ``create_graph=True`` the results are Tensors that remember how they were
    computed, so they can be differentiated again: the gradient of (grad(L, w) . v) is the
    Hessian-vector product H v.
    """
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    for x in inputs:
        if not x.requires_grad:
            raise GradError(f"grad: an input of shape {x.shape} does not require grad; create "
                            f"it with requires_grad=True")
    wanted = {id(x): None for x in inputs}

    def collect(node, g):
        if id(node) in wanted:
            wanted[id(node)] = g

    start = _initial_grad(output, grad_output, "grad")
    if create_graph:
        with enable_grad():
            _backpropagate(output, start, collect, create_graph=True)
    else:
        _backpropagate(output, start, collect)
    results = []
    for x in inputs:
        g = wanted[id(x)]
        if g is None and not allow_unused:
            raise GradError(f"grad: an input of shape {x.shape} was not used to compute the "
                            f"output (pass allow_unused=True to get None for it)")
        # copy: a plain gradient may be shared between inputs or be a read-only view
        results.append(g if g is None or create_graph else Tensor._wrap(g.copy()))
    return results[0] if single else results


def _topological_order(root):
    """Every tensor that leads to ``root`` and needs a gradient, inputs before outputs.

    An explicit stack instead of recursion: deep graphs (long RNNs) must not hit
    Python's recursion limit.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node.creator is not None:
            for x in node.creator.inputs:
                if x.requires_grad and id(x) not in visited:
                    stack.append((x, False))
    return order


def as_tensor(x, like=None):
    """``x`` as a Tensor; Python numbers take the dtype of ``like`` so float32 stays float32."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float)) and like.dtype.kind == "f":
        return Tensor._wrap(as_array(x, like.dtype, get_array_module(like.data)))
    return Tensor(x)


class Function:
    """One differentiable operation.

    Subclasses write ``forward(self, *arrays, **params) -> array`` and
    ``backward(self, grad_output) -> grad or tuple of grads`` (one per array input, ``None``
    where no gradient flows). Anything backward needs, forward stores on ``self``.
    ``Op.apply(*inputs, **params)`` runs forward and, when gradients are on and some input
    needs one, links the output to this Function so ``backward()`` can find it.
    """

    inputs = ()
    needs_grad = ()   # per input: does it need a gradient? (lets backward skip work)

    @classmethod
    def apply(cls, *inputs, **params):
        like = next((x for x in inputs if isinstance(x, Tensor)), None)
        tensors = tuple(as_tensor(x, like) for x in inputs)
        if sys.modules.get("cupy") is not None:    # without CuPy every array is NumPy
            params = _on_one_device(cls, tensors, params)
        fn = cls()
        fn.needs_grad = tuple(t.requires_grad for t in tensors)
        try:
            out = Tensor._wrap(fn.forward(*(t.data for t in tensors), **params))
        except TinyLMError:
            raise
        except TypeError as e:   # NumPy refusing a dtype: bool - bool, a float index...
            if not any(word in str(e) for word in ("numpy", "ufunc", "dtype", "not supported")):
                raise          # an error in tinylm's own code: keep its traceback
            dtypes = ", ".join(f"{t.shape} {t.dtype}" for t in tensors)
            raise DTypeError(f"{cls.__name__.lower()}: inputs {dtypes}: {e}") from None
        except (ValueError, IndexError) as e:  # NumPy's own errors: say which op and shapes
            shapes = ", ".join(str(t.shape) for t in tensors)
            message = f"{cls.__name__.lower()}: inputs of shape {shapes}: {e}"
            if isinstance(e, np.exceptions.AxisError) or "broadcast" in str(e):
                raise ShapeError(message) from None
            raise (IndexRangeError if isinstance(e, IndexError) else TinyLMError)(message) \
                from None
        if _anomaly_mode:
            from .anomaly import check_forward
            check_forward(cls, tensors, params, out.data)
        if _grad_enabled and any(t.requires_grad for t in tensors):
            out.requires_grad = True
            out.creator = fn
            fn.inputs = tensors
        return out

    def forward(self, *arrays, **params):
        raise NotImplementedError  # abstract: every subclass defines it

    def backward(self, grad_output):
        raise NotImplementedError  # abstract: every subclass defines it


def _on_one_device(cls, tensors, params):
    """Refuse tensors on different devices in one op (a ``DeviceError`` naming the op and the
    devices); index arrays among ``params`` (token ids, targets, masks) follow the tensors,
    so a batch of NumPy ids can index a table on the GPU."""
    devices = {device_of(t.data) for t in tensors}
    if len(devices) > 1:
        where = ", ".join(f"{t.device} {t.shape}" for t in tensors)
        raise DeviceError(f"{cls.__name__.lower()}: inputs are on different devices "
                          f"({where}); move them to one device first, e.g. x.to('cuda') "
                          f"or model.to('cuda')")
    if not devices:
        return params
    device = devices.pop()

    def follow(value):
        if isinstance(value, tuple):
            return tuple(follow(v) for v in value)
        return to_device(value, device) if is_array(value) else value
    return {key: follow(value) for key, value in params.items()}


class ToDevice(Function):
    """``Tensor.to(device)``: the array copied to the other device; the gradient is copied
    back, so a loss computed on the GPU trains a leaf that lives on the CPU."""

    def forward(self, a, device):
        self.source = device_of(a)
        return to_device(a, device)

    def backward(self, g):
        return to_device(g, self.source)


# --- arithmetic ----------------------------------------------------------------------
# Binary ops compute an input's gradient only if it needs one (``needs_grad``): in
# ``x @ W`` the data x needs none, and skipping it saves a whole matrix product.
class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        gb = unbroadcast(-g, self.shapes[1]) if self.needs_grad[1] else None
        return unbroadcast(g, self.shapes[0]), gb


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        ga = unbroadcast(g * self.b, self.a.shape) if self.needs_grad[0] else None
        gb = unbroadcast(g * self.a, self.b.shape) if self.needs_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        ga = g / self.b
        gb = unbroadcast(-ga * self.a / self.b, self.b.shape) if self.needs_grad[1] else None
        return unbroadcast(ga, self.a.shape), gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Pow(Function):
    """a ** b; d/da = b a^(b-1), d/db = a^b log a (only asked for when b needs a gradient)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g * b * a ** (b - 1), a.shape) if self.needs_grad[0] else None
        if not self.needs_grad[1]:
            return ga, None
        xp = get_array_module(a)
        gb = g * self.out * xp.log(xp.where(a > 0, a, 1))  # a^b log a: defined for a > 0
        return ga, unbroadcast(gb, b.shape)


class MatMul(Function):
    """Batched ``a @ b`` with NumPy's rules (1-D operands, broadcast batch axes).

    Backward: dL/da = g @ b^T, dL/db = a^T @ g, then summed over broadcast batch axes.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: operands must have at least 1 axis, got {a.shape} @ {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ShapeError(f"matmul: {a.shape} @ {b.shape}: inner sizes {a.shape[-1]} "
                             f"and {b.shape[-2 if b.ndim > 1 else 0]} differ")
        self.a, self.b = a, b
        if a.ndim > 2 and b.ndim == 2:
            # (B, T, k) @ (k, n) as ONE (B*T, k) @ (k, n) product: one big BLAS call beats
            # B small ones (what matmul does with a batch axis)
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + b.shape[-1:])
        try:
            return a @ b
        except ValueError:   # the batch axes (all but the last two) do not broadcast
            raise ShapeError(f"matmul: {a.shape} @ {b.shape}: batch axes {a.shape[:-2]} and "
                             f"{b.shape[:-2]} do not broadcast") from None

    def backward(self, g):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a      # treat vectors as 1-row / 1-column matrices
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        ga = gb = None
        if self.needs_grad[0] and g.ndim > 2 and b2.ndim == 2:
            ga = (g.reshape(-1, g.shape[-1]) @ b2.T).reshape(a.shape)      # one product
        elif self.needs_grad[0]:
            ga = unbroadcast(g @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_grad[1] and b2.ndim == 2:
            # (B, T, k) @ (k, n): one (k, B*T) @ (B*T, n) product, rather than B products
            # that are then summed (half the time, no (B, k, n) temporary)
            k, n = b2.shape
            gb = (a2.reshape(-1, k).T @ g.reshape(-1, n)).reshape(b.shape)
        elif self.needs_grad[1]:
            gb = unbroadcast(a2.swapaxes(-1, -2) @ g, b2.shape).reshape(b.shape)
        return ga, gb


# --- shape ---------------------------------------------------------------------------
class Reshape(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ShapeError(f"reshape: cannot reshape {a.shape} ({a.size} elements) "
                             f"into {shape}") from None

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    """Permute the axes; backward permutes back with the inverse permutation."""

    def forward(self, a, axes):
        if sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
            raise ShapeError(f"permute: axes {axes} are not a permutation of the "
                             f"{a.ndim} axes of shape {a.shape}")
        self.axes = axes
        return a.transpose(axes)

    @property
    def inverse_axes(self):
        return tuple(int(i) for i in np.argsort([ax % len(self.axes) for ax in self.axes]))

    def backward(self, g):
        return g.transpose(self.inverse_axes)


class AsType(Function):
    def forward(self, a, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)


class GetItem(Function):
    """``a[key]``: slices, integer arrays, boolean masks. Backward scatters the gradient
    back with ``xp.add.at``, which adds (not overwrites) where an index repeats (A10)."""

    def forward(self, a, key):
        self.shape, self.key = a.shape, key
        return a[key]

    def backward(self, g):
        return scatter_add(g, self.key, self.shape)


def scatter_add(g, key, shape):
    """Zeros of ``shape`` with ``g`` added at ``key``: the backward of ``a[key]``."""
    xp = get_array_module(g)
    out = xp.zeros(shape, dtype=g.dtype)
    if _is_basic_index(key):
        out[key] = g          # slices never repeat an element: plain assignment
    else:
        xp.add.at(out, key, g)
    return out


def _is_basic_index(key):
    """True for keys made of slices, ints, None and Ellipsis (no array indexing)."""
    keys = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer))
               for k in keys)


# --- reductions ----------------------------------------------------------------------
def _expand_reduced(g, in_shape, axis, keepdims):
    """Put back the axes a reduction removed, so ``g`` broadcasts against the input."""
    if axis is None or keepdims or not in_shape:     # a 0-d input: nothing was removed
        return g.reshape([1] * len(in_shape)) if axis is None and not keepdims else g
    axes = (axis,) if isinstance(axis, int) else axis
    for ax in sorted(ax % len(in_shape) for ax in axes):
        g = g.reshape(g.shape[:ax] + (1,) + g.shape[ax:])
    return g


def _no_repeated_axis(axis, ndim, name):
    """NumPy refuses ``axis=(0, 0)`` with a ValueError; say it in shape terms (an axis out of
    range is NumPy's AxisError, which ``Function.apply`` reports)."""
    if isinstance(axis, tuple) and ndim and all(-ndim <= ax < ndim for ax in axis) \
            and len({ax % ndim for ax in axis}) < len(axis):
        raise ShapeError(f"{name}: axis {axis} names an axis twice (input of {ndim} axes)")


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        _no_repeated_axis(axis, a.ndim, type(self).__name__.lower())
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return a.sum(axis=axis, keepdims=keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        g = _expand_reduced(g, self.shape, self.axis, self.keepdims)
        return xp.broadcast_to(g, self.shape)   # a read-only view: no copy of the data


class Mean(Sum):
    def forward(self, a, axis=None, keepdims=False):
        out = super().forward(a, axis, keepdims)
        if a.size == 0 and out.size > 0:   # 0/0: refuse rather than return NaN
            raise ShapeError(f"mean: no elements to average over (shape {a.shape}, "
                             f"axis {axis})")
        self.count = a.size // out.size if out.size else 1
        return out / self.count

    def backward(self, g):
        return super().backward(g / self.count)


class Max(Function):
    """Maximum; the gradient goes to the arg-max, split evenly between ties."""

    def forward(self, a, axis=None, keepdims=False):
        if a.size == 0:
            raise ShapeError(f"max: cannot reduce an empty array of shape {a.shape}")
        _no_repeated_axis(axis, a.ndim, "max")
        self.a, self.axis, self.keepdims = a, axis, keepdims
        self.out = a.max(axis=axis, keepdims=True)
        return self.out if keepdims else self.out.reshape(_reduced_shape(a.shape, axis))

    def tie_weights(self):
        """1 / (number of maxima) at each maximum, 0 elsewhere."""
        hit = (self.a == self.out).astype(self.a.dtype)
        return hit / hit.sum(axis=self.axis, keepdims=True)

    def backward(self, g):
        return self.tie_weights() * _expand_reduced(g, self.a.shape, self.axis, self.keepdims)


def _reduced_shape(shape, axis):
    """``shape`` without the reduced axes (all of them for ``axis=None``)."""
    if axis is None or not shape:
        return ()
    axes = {ax % len(shape) for ax in ((axis,) if isinstance(axis, int) else axis)}
    return tuple(n for i, n in enumerate(shape) if i not in axes)
