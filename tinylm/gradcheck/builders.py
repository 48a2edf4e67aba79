"""Small builders for gradient-check cases: float64 leaves and the common shapes of a check.

Each returns ``build(rng) -> (fn, leaves)`` for ``GradCase``.
"""
import numpy as np

from ..tensor import Tensor


def leaf(rng, *shape, low=None):
    """A float64 leaf of standard normals; with ``low``, values in [low, low + 1] (for log,
    sqrt, division: keeps away from the points where the function is not smooth)."""
    data = rng.standard_normal(shape) if low is None else low + rng.random(shape)
    return Tensor(data, requires_grad=True)


def away_from_zero(rng, *shape):
    """Normals pushed away from 0 (relu and max have a kink there)."""
    x = rng.standard_normal(shape)
    return Tensor(x + np.sign(x) * 0.1, requires_grad=True)


def binary(op, shape_a, shape_b, low_b=None):
    def build(rng):
        a, b = leaf(rng, *shape_a), leaf(rng, *shape_b, low=low_b)
        return (lambda: op(a, b)), [a, b]
    return build


def unary(op, shape, maker=None):
    def build(rng):
        x = (maker or leaf)(rng, *shape)
        return (lambda: op(x)), [x]
    return build


def module_case(make, input_shape=None, ids=None):
    """Check a layer: gradients w.r.t. its float input (if any) and every parameter."""
    def build(rng):
        module = make().to(np.float64)
        if ids is not None:
            return (lambda: module(ids)), list(module.parameters())
        x = leaf(rng, *input_shape)
        return (lambda: module(x)), [x] + list(module.parameters())
    return build


def loss_case(loss, logits_shape, target):
    def build(rng):
        z = leaf(rng, *logits_shape)
        return (lambda: loss(z, target(rng) if callable(target) else target)), [z]
    return build
