"""Gradient checking: autograd's gradient against central finite differences, in float64.

For a scalar function L of a leaf x, the central difference

    dL/dx_j  ~  (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)

has error O(eps^2), so with eps = 1e-6 in float64 a correct backward agrees to about 1e-9
of the gradient's size, and a wrong one is off by far more. A non-scalar output y is reduced
to L = sum(y * R) with a fixed random R: that checks every entry of the Jacobian-vector
product, not only the sum.

``gradcheck`` is used by the tests, the chapters and ``python -m tinylm gradcheck``; the
``CASES`` list below is the table an instructor projects in class. Each case also checks
the second derivative (``--second-order``): the gradient of the differentiable gradient that
``tinylm.grad(..., create_graph=True)`` builds, against finite differences.
"""
from dataclasses import dataclass

import numpy as np

from . import functional as F
from . import nn
from .backend import to_numpy
from .errors import DTypeError
from .tensor import Tensor, enable_grad, grad, is_grad_enabled, no_grad


@dataclass
class GradcheckResult:
    name: str
    shapes: str
    max_abs_err: float
    max_rel_err: float
    passed: bool


def _projected(out, weights):
    """L = sum(out * R): a scalar whose gradient is the Jacobian-vector product with R."""
    return float(np.sum(to_numpy(out.data) * weights))


def gradcheck(fn, leaves, eps=1e-6, atol=1e-8, rtol=1e-6, seed=0, name=""):
    """Compare autograd's gradient of ``fn()`` with respect to each of ``leaves`` (Tensors
    that ``fn`` reads) to central finite differences. Leaves must be float64.

    Passes when max |analytic - numeric| <= atol + rtol * max |numeric|. The relative error
    reported is max |analytic - numeric| / max |numeric| (over all leaves).
    """
    for leaf in leaves:
        if leaf.dtype != np.float64:
            raise DTypeError(f"gradcheck: leaves must be float64 (finite differences in float32 "
                             f"are too coarse to check anything), got {leaf.dtype}")
        leaf.requires_grad, leaf.grad = True, None
        # perturbing works through a flat view, which only a contiguous array gives
        leaf.data = np.ascontiguousarray(leaf.data)
    out = fn()
    weights = np.asarray(np.random.default_rng(seed).standard_normal(out.shape))
    if out.requires_grad:   # else out does not depend on the leaves: every gradient is 0
        (out * Tensor(weights)).sum().backward()
    analytic = [np.zeros(leaf.shape) if leaf.grad is None else to_numpy(leaf.grad)
                for leaf in leaves]

    numeric = []
    with no_grad():
        for leaf in leaves:
            flat = leaf.data.reshape(-1)   # a view: perturbing it perturbs the leaf
            grad = np.empty(flat.size)
            for j in range(flat.size):
                saved = flat[j]
                flat[j] = saved + eps
                up = _projected(fn(), weights)
                flat[j] = saved - eps
                down = _projected(fn(), weights)
                flat[j] = saved
                grad[j] = (up - down) / (2 * eps)
            numeric.append(grad.reshape(leaf.shape))

    abs_err = max((float(np.max(np.abs(a - n), initial=0)) for a, n in zip(analytic, numeric)),
                  default=0.0)
    scale = max((float(np.max(np.abs(n), initial=0)) for n in numeric), default=0.0)
    rel_err = abs_err / scale if scale > 0 else abs_err
    passed = bool(np.isfinite(abs_err) and abs_err <= atol + rtol * scale)
    shapes = ", ".join("x".join(map(str, leaf.shape)) or "()" for leaf in leaves)
    return GradcheckResult(name, shapes, abs_err, rel_err, passed)


# --- the catalogue of checks -------------------------------------------------------------
@dataclass
class GradCase:
    """One entry of the table: ``build(rng)`` returns ``(fn, leaves)`` for ``gradcheck``."""
    name: str
    build: object

    def run(self, seed=0):
        fn, leaves = self.build(np.random.default_rng(seed))
        return gradcheck(fn, leaves, name=self.name, seed=seed)

    def run_second_order(self, seed=0):
        """Check the differentiable gradient of ``tinylm.grad(..., create_graph=True)``.

        With R1, R2 projecting the output and V the leaves, S(x) = sum_i <dL/dx_i, V_i> for
        L = sum(f(x) R1) + sum(f(x)^2 R2) is an ordinary function of x whose gradient is the
        Hessian-vector product H V. Two things must hold: S built from the differentiable
        gradient has the same value as S from the plain (already verified) backward, and its
        gradient matches finite differences of the plain S. (The square makes even a linear
        op's second derivative non-zero, so its differentiable backward is exercised.)
        """
        fn, leaves = self.build(np.random.default_rng(seed))
        rng = np.random.default_rng(seed + 1)
        directions = [Tensor(rng.standard_normal(leaf.shape)) for leaf in leaves]

        def gradient_dot_direction(create_graph):
            with enable_grad():
                out = fn()
                r1, r2 = np.random.default_rng(seed).standard_normal((2,) + out.shape)
                loss = (out * Tensor(r1)).sum() + (out * out * Tensor(r2)).sum()
                grads = grad(loss, leaves, create_graph=create_graph, allow_unused=True)
                terms = [(g * v).sum() for g, v in zip(grads, directions) if g is not None]
                return sum(terms[1:], terms[0])

        # gradcheck's analytic pass records (S from the differentiable gradient, then
        # backward through it); its finite-difference passes run under no_grad(), and there
        # S comes from the plain backward. So a wrong differentiable rule cannot agree with
        # itself.
        result = gradcheck(lambda: gradient_dot_direction(is_grad_enabled()), leaves,
                           name=self.name, seed=seed)
        with_graph = gradient_dot_direction(True).item()
        plain = gradient_dot_direction(False).item()
        value_err = abs(with_graph - plain)
        if value_err > 1e-10 * max(1.0, abs(plain)):
            result.passed = False
            result.max_abs_err = max(result.max_abs_err, value_err)
            result.max_rel_err = max(result.max_rel_err, value_err / max(1.0, abs(plain)))
        return result


def _t(rng, *shape, low=None):
    """A float64 leaf of standard normals; with ``low``, values in [low, low + 1] (for log,
    sqrt, division: keeps away from the points where the function is not smooth)."""
    data = rng.standard_normal(shape) if low is None else low + rng.random(shape)
    return Tensor(data, requires_grad=True)


def _away_from_zero(rng, *shape):
    """Normals pushed away from 0 (relu and max have a kink there)."""
    x = rng.standard_normal(shape)
    return Tensor(x + np.sign(x) * 0.1, requires_grad=True)


def _binary(op, shape_a, shape_b, low_b=None):
    def build(rng):
        a, b = _t(rng, *shape_a), _t(rng, *shape_b, low=low_b)
        return (lambda: op(a, b)), [a, b]
    return build


def _unary(op, shape, maker=None):
    def build(rng):
        x = (maker or _t)(rng, *shape)
        return (lambda: op(x)), [x]
    return build


def _module(make, input_shape=None, ids=None):
    """Check a layer: gradients w.r.t. its float input (if any) and every parameter."""
    def build(rng):
        module = make().to(np.float64)
        if ids is not None:
            return (lambda: module(ids)), list(module.parameters())
        x = _t(rng, *input_shape)
        return (lambda: module(x)), [x] + list(module.parameters())
    return build


def _loss(loss, logits_shape, target):
    def build(rng):
        z = _t(rng, *logits_shape)
        return (lambda: loss(z, target(rng) if callable(target) else target)), [z]
    return build


def _cases():
    add, sub, mul, div = (lambda a, b: a + b), (lambda a, b: a - b), \
        (lambda a, b: a * b), (lambda a, b: a / b)
    ids = np.array([[1, 3, 3], [0, 4, 1]])       # repeated ids: the scatter must add
    cls = np.array([2, 0, 4, 1])
    cls_ignored = np.array([2, -100, 4, 1])
    cls_3d = np.array([[1, 0, 2], [2, 2, 0]])
    C = [
        GradCase("add", _binary(add, (3, 4), (3, 4))),
        GradCase("add[broadcast]", _binary(add, (2, 3, 4), (4,))),
        GradCase("add[size-1 axes]", _binary(add, (3, 1), (1, 4))),
        GradCase("sub[broadcast]", _binary(sub, (2, 1, 4), (3, 1))),
        GradCase("mul", _binary(mul, (3, 4), (3, 4))),
        GradCase("mul[broadcast]", _binary(mul, (2, 3, 4), (1, 4))),
        GradCase("div[broadcast]", _binary(div, (2, 3), (3,), low_b=0.5)),
        GradCase("neg", _unary(lambda x: -x, (3, 4))),
        GradCase("pow[scalar exponent]", _unary(lambda x: x ** 3, (3, 4))),
        GradCase("pow[tensor exponent]", _binary(lambda a, b: b ** a, (3, 4), (3, 4), low_b=0.5)),
        GradCase("matmul", _binary(lambda a, b: a @ b, (3, 4), (4, 5))),
        GradCase("matmul[batched]", _binary(lambda a, b: a @ b, (2, 3, 4), (2, 4, 5))),
        GradCase("matmul[broadcast batch]", _binary(lambda a, b: a @ b, (2, 1, 3, 4), (3, 4, 2))),
        GradCase("matmul[vector @ matrix]", _binary(lambda a, b: a @ b, (4,), (4, 3))),
        GradCase("matmul[matrix @ vector]", _binary(lambda a, b: a @ b, (2, 3, 4), (4,))),
        GradCase("matmul[vector @ vector]", _binary(lambda a, b: a @ b, (5,), (5,))),
        GradCase("getitem[slices]", _unary(lambda x: x[1:, ::2], (3, 5))),
        GradCase("getitem[repeated int array]", _unary(lambda x: x[np.array([0, 2, 0, 0])], (3, 4))),
        GradCase("getitem[boolean mask]",
                 _unary(lambda x: x[np.array([[True, False, True], [False, True, True]])], (2, 3))),
        GradCase("reshape", _unary(lambda x: x.reshape(4, 3), (2, 6))),
        GradCase("transpose", _unary(lambda x: x.T, (3, 4))),
        GradCase("permute", _unary(lambda x: x.permute(2, 0, 1), (2, 3, 4))),
        GradCase("sum[all]", _unary(lambda x: x.sum(), (3, 4))),
        GradCase("sum[axis, keepdims]", _unary(lambda x: x.sum(axis=1, keepdims=True), (2, 3, 4))),
        GradCase("mean[axes]", _unary(lambda x: x.mean(axis=(0, 2)), (2, 3, 4))),
        GradCase("max[axis]", _unary(lambda x: x.max(axis=-1), (3, 5))),
        GradCase("max[all]", _unary(lambda x: x.max(), (3, 5))),
        GradCase("exp", _unary(F.exp, (3, 4))),
        GradCase("log", _unary(F.log, (3, 4), lambda rng, *s: _t(rng, *s, low=0.2))),
        GradCase("sqrt", _unary(F.sqrt, (3, 4), lambda rng, *s: _t(rng, *s, low=0.2))),
        GradCase("tanh", _unary(F.tanh, (3, 4))),
        GradCase("sigmoid", _unary(F.sigmoid, (3, 4))),
        GradCase("relu", _unary(F.relu, (3, 4), _away_from_zero)),
        GradCase("gelu[erf]", _unary(F.gelu, (3, 4))),
        GradCase("gelu[tanh]", _unary(lambda x: F.gelu(x, approximate="tanh"), (3, 4))),
        GradCase("softmax[last axis]", _unary(F.softmax, (3, 5))),
        GradCase("softmax[axis 0]", _unary(lambda x: F.softmax(x, axis=0), (3, 5))),
        GradCase("log_softmax", _unary(F.log_softmax, (2, 3, 5))),
        GradCase("concatenate", _binary(lambda a, b: F.concatenate([a, b, a], axis=1),
                                        (2, 3), (2, 1))),
        GradCase("stack", _binary(lambda a, b: F.stack([a, b], axis=1), (2, 3), (2, 3))),
        GradCase("split", _unary(lambda x: F.split(x, [1, 3], axis=1)[1] * 2 +
                                 F.split(x, [3, 1], axis=1)[0], (2, 4))),
        GradCase("where[broadcast]", _binary(
            lambda a, b: F.where(np.array([[True], [False], [True]]), a, b), (3, 4), (4,))),
        GradCase("masked_fill", _unary(
            lambda x: F.masked_fill(x, np.triu(np.ones((4, 4), bool), 1), 0.5), (4, 4))),
        GradCase("linear", lambda rng: _linear_case(rng, bias=True)),
        GradCase("linear[no bias]", lambda rng: _linear_case(rng, bias=False)),
        GradCase("embedding[repeated ids]", lambda rng: _embedding_case(rng, ids)),
        GradCase("layer_norm", lambda rng: _layer_norm_case(rng, (2, 3, 5), (5,))),
        GradCase("layer_norm[2 axes]", lambda rng: _layer_norm_case(rng, (2, 3, 4), (3, 4))),
        GradCase("layer_norm[no affine]", _unary(lambda x: F.layer_norm(x, 6), (4, 6))),
        GradCase("dropout[fixed mask]", _unary(lambda x: F.dropout(x, 0.3, generator=7), (4, 5))),
        GradCase("mse_loss", _binary(F.mse_loss, (3, 4), (3, 4))),
        GradCase("cross_entropy", _loss(F.cross_entropy, (4, 5), cls)),
        GradCase("cross_entropy[ignore_index]", _loss(F.cross_entropy, (4, 5), cls_ignored)),
        GradCase("cross_entropy[label_smoothing]",
                 _loss(lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1), (4, 5), cls)),
        GradCase("cross_entropy[sum, 3-D]",
                 _loss(lambda z, t: F.cross_entropy(z, t, reduction="sum"), (2, 3, 3), cls_3d)),
        GradCase("cross_entropy[none]",
                 _loss(lambda z, t: F.cross_entropy(z, t, reduction="none"), (4, 5), cls)),
        GradCase("binary_cross_entropy", lambda rng: _bce_case(rng)),
        GradCase("binary_cross_entropy_with_logits",
                 _binary(lambda z, y: F.binary_cross_entropy_with_logits(z, F.sigmoid(y)),
                         (3, 4), (3, 4))),
        GradCase("nn.Linear", _module(lambda: nn.Linear(4, 3, seed=0), (2, 4))),
        # The padding row is frozen on purpose (its gradient is set to 0, not the true
        # derivative), so these ids avoid it; tests check the frozen row separately.
        GradCase("nn.Embedding", _module(lambda: nn.Embedding(5, 3, padding_idx=0, seed=0),
                                         ids=np.array([[3, 1, 4], [4, 4, 2]]))),
        GradCase("nn.LayerNorm", _module(lambda: _perturbed(nn.LayerNorm(4)), (2, 3, 4))),
        GradCase("nn.Sequential MLP", _module(lambda: nn.Sequential(
            nn.Linear(4, 6, seed=1), nn.GELU(), nn.Linear(6, 3, seed=2), nn.Tanh(),
            nn.Linear(3, 2, seed=3), nn.Sigmoid()), (3, 4))),
        GradCase("nn.Dropout[eval]", _module(lambda: nn.Dropout(0.5, seed=0).eval(), (3, 4))),
    ]
    return C


def _linear_case(rng, bias):
    x, w = _t(rng, 2, 3, 4), _t(rng, 5, 4)
    b = _t(rng, 5) if bias else None
    return (lambda: F.linear(x, w, b)), [x, w] + ([b] if bias else [])


def _embedding_case(rng, ids):
    w = _t(rng, 5, 3)
    return (lambda: F.embedding(ids, w)), [w]


def _layer_norm_case(rng, shape, normalized_shape):
    x, w, b = _t(rng, *shape), _t(rng, *normalized_shape), _t(rng, *normalized_shape)
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


def select(names=()):
    """The cases whose name contains any of ``names`` (case-insensitive); all if none."""
    if not names:
        return list(CASES)
    wanted = [n.lower() for n in names]
    return [c for c in CASES if any(w in c.name.lower() for w in wanted)]


def format_table(results):
    """The results as an aligned text table, one row per check."""
    header = ("op or layer", "input shapes", "max abs err", "max rel err", "result")
    rows = [(r.name, r.shapes, f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}",
             "pass" if r.passed else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda row: "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
    return "\n".join([fmt(header), line] + [fmt(r) for r in rows])
