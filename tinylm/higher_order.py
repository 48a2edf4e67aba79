"""Derivatives that are graphs themselves: what ``tinylm.grad(..., create_graph=True)`` runs.

Each ``Function.backward`` works on raw arrays: fast, but it leaves no trace, so its result
cannot be differentiated again. For a second derivative (a Hessian-vector product, a
gradient penalty) the gradient must itself be computed by recorded ops. This module gives,
for each supported Function, the same derivative as its ``backward``, written with Tensor
operations:

    dL/da = g * b,  dL/db = g * a          (Mul; g = dL/d(a*b) is now a Tensor too)

``graph_backward(fn, g)`` looks the rule up. The derivatives of the four helper ops
here (SumTo, BroadcastTo, IndexAdd, Erf) are graphs again, so any order of derivative works.
"""
import math

from . import functional as F
from .backend import get_array_module
from .errors import GradError
from .kernels import erf
from .kernels.reference import GELU_TANH_C, GELU_TANH_K
from .tensor import (Add, AsType, Div, Function, GetItem, MatMul, Max, Mean, Mul, Neg, Pow,
                     Reshape, Sub, Sum, Tensor, Transpose, _expand_reduced, scatter_add,
                     unbroadcast)


class SumTo(Function):
    """Sum over broadcast axes down to ``shape`` (``unbroadcast`` as a recorded op)."""

    def forward(self, g, shape):
        self.in_shape = g.shape
        return unbroadcast(g, shape)

    def backward(self, g):
        return get_array_module(g).broadcast_to(g, self.in_shape)


class BroadcastTo(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    def backward(self, g):
        return unbroadcast(g, self.in_shape)


class IndexAdd(Function):
    """Zeros of ``shape`` with ``g`` added at ``key``: the backward of ``a[key]`` as an op."""

    def forward(self, g, key, shape):
        self.key = key
        return scatter_add(g, key, shape)

    def backward(self, g):
        return g[self.key]


def sum_to(t, shape):
    return t if t.shape == tuple(shape) else SumTo.apply(t, shape=tuple(shape))


def _const(fn, array):
    """A constant of the op's own dtype (masks and targets carry no gradient)."""
    return Tensor(array.astype(fn.inputs[0].dtype))


def _matmul(fn, g):
    a, b = fn.inputs
    a2 = a.reshape(1, -1) if a.ndim == 1 else a     # vectors as 1-row / 1-column matrices
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    if b.ndim == 1:
        g = g.reshape(g.shape + (1,))
    if a.ndim == 1:
        g = g.reshape(g.shape[:-1] + (1, g.shape[-1]))
    return (sum_to(g @ b2.transpose(-2, -1), a2.shape).reshape(a.shape),
            sum_to(a2.transpose(-2, -1) @ g, b2.shape).reshape(b.shape))


def _pow(fn, g):
    a, b = fn.inputs
    ga = sum_to(g * b * a ** (b - 1), a.shape)
    if not fn.needs_grad[1]:
        return ga, None
    log_a = F.log(F.where(a.data > 0, a, 1.0))     # a^b log a: defined for a > 0
    return ga, sum_to(g * a ** b * log_a, b.shape)


def _sum(fn, g):
    return BroadcastTo.apply(_expand_reduced(g, fn.shape, fn.axis, fn.keepdims), shape=fn.shape)


def _softmax(fn, g):
    y = F.softmax(fn.inputs[0], axis=fn.axis)
    return y * (g - (g * y).sum(axis=fn.axis, keepdims=True))


class Erf(Function):
    """erf(x), with d/dx erf(x) = 2/sqrt(pi) exp(-x^2): the exact GELU's derivative needs it."""

    def forward(self, x):
        self.x = x
        return erf(x)

    def backward(self, g):
        return g * (2 / math.sqrt(math.pi)) * get_array_module(g).exp(-self.x * self.x)


def _gelu(fn, g):
    x = fn.inputs[0]
    if fn.approximate == "tanh":
        c, k = GELU_TANH_C, GELU_TANH_K
        t = F.tanh(c * (x + k * x ** 3))
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * k * x * x))
    cdf = 0.5 * (1 + Erf.apply(x / math.sqrt(2)))
    pdf = F.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return g * (cdf + x * pdf)


def _binary_cross_entropy(fn, g):
    p, y = fn.inputs
    variance = p * (1 - p)       # clamped at 1e-12 as in BinaryCrossEntropy.backward
    gp = g * (p - y) / F.where(variance.data > 1e-12, variance, 1e-12)
    return gp, (g * (F.log(1 - p) - F.log(p)) if fn.needs_grad[1] else None)


def _layer_normalize(fn, g):
    x, axes = fn.inputs[0], tuple(range(-fn.n_axes, 0))
    centred = x - x.mean(axis=axes, keepdims=True)
    inv_std = 1 / F.sqrt((centred * centred).mean(axis=axes, keepdims=True) + fn.eps)
    x_hat = centred * inv_std
    return (g - g.mean(axis=axes, keepdims=True)
            - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)) * inv_std


def _embedding(fn, g):
    gw = IndexAdd.apply(g, key=fn.ids, shape=fn.shape)
    if fn.padding_idx is None:
        return gw
    keep = get_array_module(fn.ids).ones((fn.shape[0], 1))
    keep[fn.padding_idx] = 0                         # the padding row is never trained
    return gw * _const(fn, keep)


def _cross_entropy(fn, g):
    z = fn.inputs[0]
    n_classes = z.shape[-1]
    xp = get_array_module(fn.logits)
    target = xp.zeros(fn.logits.shape)               # (1-e) one_hot + e/C, on valid rows
    target[xp.arange(len(fn.target)), xp.where(fn.valid, fn.target, 0)] = 1 - fn.eps
    target += fn.eps / n_classes
    valid = fn.valid[:, None].astype(target.dtype)
    grad = F.softmax(z.reshape(-1, n_classes)) * _const(fn, valid) - _const(fn, target * valid)
    scale = g.reshape(-1, 1) if fn.reduction == "none" else \
        g / fn.n_valid if fn.reduction == "mean" else g
    return (grad * scale).reshape(fn.in_shape)


def _fused_attention(fn, g):
    """The backward of softmax(Q K^T s) V written with differentiable ops, the (L, S)
    weights rebuilt (second derivatives are for checking, not for long sequences)."""
    q, k, v = fn.inputs
    scores = (q @ k.transpose(-2, -1)) * fn.scale
    if fn.offset is not None:
        scores = F.masked_fill(scores, ~F.causal_mask(q.shape[-2], k.shape[-2], fn.offset),
                               -math.inf)
    p = F.softmax(scores, axis=-1)
    dp = g @ v.transpose(-2, -1)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True)) * fn.scale
    return ds @ k, ds.transpose(-2, -1) @ q, p.transpose(-2, -1) @ g


RULES = {
    Add: lambda fn, g: (sum_to(g, fn.inputs[0].shape), sum_to(g, fn.inputs[1].shape)),
    Sub: lambda fn, g: (sum_to(g, fn.inputs[0].shape), sum_to(-g, fn.inputs[1].shape)),
    Mul: lambda fn, g: (sum_to(g * fn.inputs[1], fn.inputs[0].shape),
                        sum_to(g * fn.inputs[0], fn.inputs[1].shape)),
    Div: lambda fn, g: (sum_to(g / fn.inputs[1], fn.inputs[0].shape),
                        sum_to(-g * fn.inputs[0] / (fn.inputs[1] * fn.inputs[1]),
                               fn.inputs[1].shape)),
    Neg: lambda fn, g: -g,
    Pow: _pow,
    MatMul: _matmul,
    Reshape: lambda fn, g: g.reshape(fn.in_shape),
    Transpose: lambda fn, g: g.permute(fn.inverse_axes),
    AsType: lambda fn, g: g.astype(fn.in_dtype),
    GetItem: lambda fn, g: IndexAdd.apply(g, key=fn.key, shape=fn.shape),
    Sum: _sum,
    Mean: lambda fn, g: _sum(fn, g) / fn.count,
    Max: lambda fn, g: Tensor(fn.tie_weights()) * _expand_reduced(g, fn.a.shape, fn.axis,
                                                                  fn.keepdims),
    SumTo: lambda fn, g: BroadcastTo.apply(g, shape=fn.in_shape),
    BroadcastTo: lambda fn, g: sum_to(g, fn.in_shape),
    IndexAdd: lambda fn, g: g[fn.key],
    Erf: lambda fn, g: g * (2 / math.sqrt(math.pi)) * F.exp(-fn.inputs[0] * fn.inputs[0]),
    F.Exp: lambda fn, g: g * F.exp(fn.inputs[0]),
    F.Log: lambda fn, g: g / fn.inputs[0],
    F.Sqrt: lambda fn, g: g / (2 * F.sqrt(fn.inputs[0])),
    F.Tanh: lambda fn, g: g * (1 - F.tanh(fn.inputs[0]) ** 2),
    F.Sigmoid: lambda fn, g: g * F.sigmoid(fn.inputs[0]) * (1 - F.sigmoid(fn.inputs[0])),
    F.ReLU: lambda fn, g: g * _const(fn, fn.positive),
    F.GELU: _gelu,
    F.Softmax: _softmax,
    F.LogSoftmax: lambda fn, g: g - F.softmax(fn.inputs[0], axis=fn.axis)
    * g.sum(axis=fn.axis, keepdims=True),
    F.Where: lambda fn, g: (sum_to(F.where(fn.condition, g, 0.0), fn.shapes[0]),
                            sum_to(F.where(fn.condition, 0.0, g), fn.shapes[1])),
    F.Concatenate: lambda fn, g: tuple(F.split(g, [x.shape[fn.axis] for x in fn.inputs],
                                               axis=fn.axis)),
    F.Stack: lambda fn, g: tuple(g[(slice(None),) * (fn.axis % g.ndim) + (i,)]
                                 for i in range(g.shape[fn.axis])),
    F.Embedding: _embedding,
    F.LayerNormalize: _layer_normalize,
    F.CrossEntropy: _cross_entropy,
    F.FusedAttention: _fused_attention,
    F.BinaryCrossEntropy: _binary_cross_entropy,
    F.BCEWithLogits: lambda fn, g: (g * (F.sigmoid(fn.inputs[0]) - fn.inputs[1]),
                                    -g * fn.inputs[0]),
}


def graph_backward(fn, g):
    """The gradients of ``fn``'s inputs as recorded Tensor ops (see ``RULES``)."""
    rule = RULES.get(type(fn))
    if rule is None:
        supported = ", ".join(sorted(cls.__name__ for cls in RULES))
        raise GradError(f"create_graph: {type(fn).__name__} has no differentiable backward "
                        f"yet; supported ops: {supported}")
    return rule(fn, g)
