"""Gradient-check cases of the engine: arithmetic, shapes, reductions, nonlinearities,
softmax, losses and the basic layers."""
import numpy as np

from .. import functional as F
from .. import nn
from ..tensor import Tensor
from . import GradCase
from .builders import away_from_zero, binary, leaf, loss_case, module_case, unary


def _cases():
    add, sub, mul, div = (lambda a, b: a + b), (lambda a, b: a - b), \
        (lambda a, b: a * b), (lambda a, b: a / b)
    ids = np.array([[1, 3, 3], [0, 4, 1]])       # repeated ids: the scatter must add
    cls = np.array([2, 0, 4, 1])
    cls_ignored = np.array([2, -100, 4, 1])
    cls_3d = np.array([[1, 0, 2], [2, 2, 0]])
    C = [
        GradCase("add", binary(add, (3, 4), (3, 4))),
        GradCase("add[broadcast]", binary(add, (2, 3, 4), (4,))),
        GradCase("add[size-1 axes]", binary(add, (3, 1), (1, 4))),
        GradCase("sub[broadcast]", binary(sub, (2, 1, 4), (3, 1))),
        GradCase("mul", binary(mul, (3, 4), (3, 4))),
        GradCase("mul[broadcast]", binary(mul, (2, 3, 4), (1, 4))),
        GradCase("div[broadcast]", binary(div, (2, 3), (3,), low_b=0.5)),
        GradCase("neg", unary(lambda x: -x, (3, 4))),
        GradCase("pow[scalar exponent]", unary(lambda x: x ** 3, (3, 4))),
        GradCase("pow[tensor exponent]", binary(lambda a, b: b ** a, (3, 4), (3, 4), low_b=0.5)),
        GradCase("matmul", binary(lambda a, b: a @ b, (3, 4), (4, 5))),
        GradCase("matmul[batched]", binary(lambda a, b: a @ b, (2, 3, 4), (2, 4, 5))),
        GradCase("matmul[broadcast batch]", binary(lambda a, b: a @ b, (2, 1, 3, 4), (3, 4, 2))),
        GradCase("matmul[vector @ matrix]", binary(lambda a, b: a @ b, (4,), (4, 3))),
        GradCase("matmul[matrix @ vector]", binary(lambda a, b: a @ b, (2, 3, 4), (4,))),
        GradCase("matmul[vector @ vector]", binary(lambda a, b: a @ b, (5,), (5,))),
        GradCase("getitem[slices]", unary(lambda x: x[1:, ::2], (3, 5))),
        GradCase("getitem[repeated int array]", unary(lambda x: x[np.array([0, 2, 0, 0])], (3, 4))),
        GradCase("getitem[boolean mask]",
                 unary(lambda x: x[np.array([[True, False, True], [False, True, True]])], (2, 3))),
        GradCase("reshape", unary(lambda x: x.reshape(4, 3), (2, 6))),
        GradCase("transpose", unary(lambda x: x.T, (3, 4))),
        GradCase("permute", unary(lambda x: x.permute(2, 0, 1), (2, 3, 4))),
        GradCase("sum[all]", unary(lambda x: x.sum(), (3, 4))),
        GradCase("sum[axis, keepdims]", unary(lambda x: x.sum(axis=1, keepdims=True), (2, 3, 4))),
        GradCase("mean[axes]", unary(lambda x: x.mean(axis=(0, 2)), (2, 3, 4))),
        GradCase("max[axis]", unary(lambda x: x.max(axis=-1), (3, 5))),
        GradCase("max[all]", unary(lambda x: x.max(), (3, 5))),
        GradCase("exp", unary(F.exp, (3, 4))),
        GradCase("log", unary(F.log, (3, 4), lambda rng, *s: leaf(rng, *s, low=0.2))),
        GradCase("sqrt", unary(F.sqrt, (3, 4), lambda rng, *s: leaf(rng, *s, low=0.2))),
        GradCase("tanh", unary(F.tanh, (3, 4))),
        GradCase("sigmoid", unary(F.sigmoid, (3, 4))),
        GradCase("relu", unary(F.relu, (3, 4), away_from_zero)),
        GradCase("gelu[erf]", unary(F.gelu, (3, 4))),
        GradCase("gelu[tanh]", unary(lambda x: F.gelu(x, approximate="tanh"), (3, 4))),
        GradCase("softmax[last axis]", unary(F.softmax, (3, 5))),
        GradCase("softmax[axis 0]", unary(lambda x: F.softmax(x, axis=0), (3, 5))),
        GradCase("log_softmax", unary(F.log_softmax, (2, 3, 5))),
        GradCase("concatenate", binary(lambda a, b: F.concatenate([a, b, a], axis=1),
                                        (2, 3), (2, 1))),
        GradCase("stack", binary(lambda a, b: F.stack([a, b], axis=1), (2, 3), (2, 3))),
        GradCase("split", unary(lambda x: F.split(x, [1, 3], axis=1)[1] * 2 +
                                 F.split(x, [3, 1], axis=1)[0], (2, 4))),
        GradCase("where[broadcast]", binary(
            lambda a, b: F.where(np.array([[True], [False], [True]]), a, b), (3, 4), (4,))),
        GradCase("masked_fill", unary(
            lambda x: F.masked_fill(x, np.triu(np.ones((4, 4), bool), 1), 0.5), (4, 4))),
        GradCase("linear", lambda rng: _linear_case(rng, bias=True)),
        GradCase("linear[no bias]", lambda rng: _linear_case(rng, bias=False)),
        GradCase("embedding[repeated ids]", lambda rng: _embedding_case(rng, ids)),
        GradCase("layer_norm", lambda rng: _layer_norm_case(rng, (2, 3, 5), (5,))),
        GradCase("layer_norm[2 axes]", lambda rng: _layer_norm_case(rng, (2, 3, 4), (3, 4))),
        GradCase("layer_norm[no affine]", unary(lambda x: F.layer_norm(x, 6), (4, 6))),
        GradCase("dropout[fixed mask]", unary(lambda x: F.dropout(x, 0.3, generator=7), (4, 5))),
        GradCase("mse_loss", binary(F.mse_loss, (3, 4), (3, 4))),
        GradCase("cross_entropy", loss_case(F.cross_entropy, (4, 5), cls)),
        GradCase("cross_entropy[ignore_index]", loss_case(F.cross_entropy, (4, 5), cls_ignored)),
        GradCase("cross_entropy[label_smoothing]",
                 loss_case(lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1), (4, 5), cls)),
        GradCase("cross_entropy[sum, 3-D]",
                 loss_case(lambda z, t: F.cross_entropy(z, t, reduction="sum"), (2, 3, 3), cls_3d)),
        GradCase("cross_entropy[none]",
                 loss_case(lambda z, t: F.cross_entropy(z, t, reduction="none"), (4, 5), cls)),
        GradCase("binary_cross_entropy", lambda rng: _bce_case(rng)),
        GradCase("binary_cross_entropy_with_logits",
                 binary(lambda z, y: F.binary_cross_entropy_with_logits(z, F.sigmoid(y)),
                         (3, 4), (3, 4))),
        GradCase("nn.Linear", module_case(lambda: nn.Linear(4, 3, seed=0), (2, 4))),
        # The padding row is frozen on purpose (its gradient is set to 0, not the true
        # derivative), so these ids avoid it; tests check the frozen row separately.
        GradCase("nn.Embedding", module_case(lambda: nn.Embedding(5, 3, padding_idx=0, seed=0),
                                         ids=np.array([[3, 1, 4], [4, 4, 2]]))),
        GradCase("nn.LayerNorm", module_case(lambda: _perturbed(nn.LayerNorm(4)), (2, 3, 4))),
        GradCase("nn.Sequential MLP", module_case(lambda: nn.Sequential(
            nn.Linear(4, 6, seed=1), nn.GELU(), nn.Linear(6, 3, seed=2), nn.Tanh(),
            nn.Linear(3, 2, seed=3), nn.Sigmoid()), (3, 4))),
        GradCase("nn.Dropout[eval]", module_case(lambda: nn.Dropout(0.5, seed=0).eval(), (3, 4))),
    ]
    return C


def _linear_case(rng, bias):
    x, w = leaf(rng, 2, 3, 4), leaf(rng, 5, 4)
    b = leaf(rng, 5) if bias else None
    return (lambda: F.linear(x, w, b)), [x, w] + ([b] if bias else [])


def _embedding_case(rng, ids):
    w = leaf(rng, 5, 3)
    return (lambda: F.embedding(ids, w)), [w]


def _layer_norm_case(rng, shape, normalized_shape):
    x, w, b = leaf(rng, *shape), leaf(rng, *normalized_shape), leaf(rng, *normalized_shape)
    return (lambda: F.layer_norm(x, normalized_shape, w, b)), [x, w, b]


def _bce_case(rng):
    p = Tensor(0.1 + 0.8 * rng.random((3, 4)), requires_grad=True)
    y = Tensor(rng.random((3, 4)), requires_grad=True)
    return (lambda: F.binary_cross_entropy(p, y)), [p, y]


def _perturbed(layer_norm):
    """LayerNorm starts at weight 1, bias 0; move them so a wrong gradient cannot hide."""
    rng = np.random.default_rng(5)
    for p in layer_norm.parameters():
        p.data = p.data + rng.standard_normal(p.shape).astype(p.dtype)
    return layer_norm


CASES = _cases()
