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
import importlib
import pkgutil
from dataclasses import dataclass

import numpy as np

from ..backend import to_numpy
from ..errors import DTypeError
from ..tensor import Tensor, enable_grad, grad, is_grad_enabled, no_grad


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
    shapes = [("x".join(map(str, leaf.shape)) or "()") for leaf in leaves]
    if len(shapes) > 6:         # a whole model has dozens of parameters; keep the table narrow
        shapes = shapes[:5] + [f"... ({len(shapes)} tensors)"]
    shapes = ", ".join(shapes)
    return GradcheckResult(name, shapes, abs_err, rel_err, passed)


# --- the catalogue of checks -------------------------------------------------------------
@dataclass
class GradCase:
    """One entry of the table: ``build(rng)`` returns ``(fn, leaves)`` for ``gradcheck``."""
    name: str
    build: object
    second_order: bool = True   # False for fused ops with no differentiable backward rule

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


def _collect_cases():
    """Every ``cases_NN_*.py`` module here adds its ``CASES``, in file-name order: one file
    per family of ops and layers."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cases_"):
            found += importlib.import_module(f"{__name__}.{info.name}").CASES
    return found


CASES = _collect_cases()


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
