"""Differentiable functions and losses, each a ``Function`` with its derivative beside it.

Every function accepts Tensors or plain arrays. Where a formula comes from the source
documents its catalogue ID (FORMULAS.md) is in the docstring.
"""
import math

import numpy as np

from .backend import as_array, get_array_module, is_array, to_numpy
from .errors import DTypeError, IndexRangeError, ShapeError, TinyLMError
from .kernels import kernel
from .kernels.reference import causal_mask  # noqa: F401  (public here: F.causal_mask)
from .tensor import Function, Tensor, as_tensor, unbroadcast

__all__ = [
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "softmax", "log_softmax",
    "concatenate", "stack", "split", "where", "masked_fill", "linear", "embedding",
    "layer_norm", "dropout", "mse_loss", "cross_entropy", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "scaled_dot_product_attention",
]


# --- elementwise ---------------------------------------------------------------------
class Exp(Function):
    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, g):
        return g / (2 * self.y)


class Tanh(Function):
    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


def _sigmoid_array(x):
    """s(x) = 1 / (1 + e^-x) without overflow: e^-|x| never exceeds 1, and for x < 0 the
    form e^x / (1 + e^x) keeps tiny values like s(-40) = 4e-18 instead of rounding to 0."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    """s(x) = 1 / (1 + e^-x), s' = s (1 - s)."""

    def forward(self, x):
        self.y = _sigmoid_array(x)
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class ReLU(Function):
    def forward(self, x):
        self.positive = x > 0
        return get_array_module(x).maximum(x, 0)     # not x * mask: -inf * 0 would be NaN

    def backward(self, g):
        return get_array_module(g).where(self.positive, g, 0)


class GELU(Function):
    """GELU(x) = x Phi(x), Phi the standard normal CDF.

    ``approximate="none"``: Phi(x) = (1 + erf(x / sqrt 2)) / 2, derivative Phi(x) + x phi(x).
    ``approximate="tanh"`` (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    """

    def forward(self, x, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise TinyLMError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.x, self.approximate = x, approximate
        y, self.saved = kernel("gelu_forward", x)(x, approximate)   # saved: Phi(x) or tanh
        return y

    def backward(self, g):
        return kernel("gelu_backward", self.x, self.saved, g)(self.x, self.saved, g,
                                                             self.approximate)


def exp(x): return Exp.apply(x)
def log(x): return Log.apply(x)
def sqrt(x): return Sqrt.apply(x)
def tanh(x): return Tanh.apply(x)
def sigmoid(x): return Sigmoid.apply(x)
def relu(x): return ReLU.apply(x)
def gelu(x, approximate="none"): return GELU.apply(x, approximate=approximate)


# --- softmax -------------------------------------------------------------------------
def _no_half(x, name):
    """Refuse float16: e^x overflows past x = 11, and a sum of many e^x in half precision
    keeps 3 digits, so a softmax or a loss would come back silently wrong (the
    cross-entropy of logits (1e4, -1e4, 0) against class 1 gives 0 instead of 2e4)."""
    if x.dtype == np.float16:
        raise DTypeError(f"{name}: float16 input is not supported (exp overflows and the "
                         f"sums lose digits in half precision), got shape {x.shape} float16; "
                         f"cast it first: x.astype(np.float32)")


def _on_last_axis(name, x, *others, axis):
    """Run the row kernel ``name`` over ``axis`` (moved last and back when it is not)."""
    if not -x.ndim <= axis < x.ndim:
        raise np.exceptions.AxisError(axis, x.ndim)     # the engine names the op around it
    last = axis in (-1, x.ndim - 1)
    xp = get_array_module(x)
    if not last:
        x, others = xp.moveaxis(x, axis, -1), [xp.moveaxis(o, axis, -1) for o in others]
    out = kernel(name, x, *others)(x, *others)
    return out if last else xp.moveaxis(out, -1, axis)


class Softmax(Function):
    """y_i = e^{x_i} / sum_j e^{x_j}; backward y * (g - sum(g y))."""

    def forward(self, x, axis=-1):
        _no_half(x, "softmax")
        self.axis = axis
        self.y = _on_last_axis("softmax_forward", x, axis=axis)
        return self.y

    def backward(self, g):
        return _on_last_axis("softmax_backward", self.y, g, axis=self.axis)


class LogSoftmax(Function):
    """log y_i = x_i - log sum_j e^{x_j}; backward g - softmax * sum(g)."""

    def forward(self, x, axis=-1):
        _no_half(x, "log_softmax")
        self.axis = axis
        self.out = _on_last_axis("log_softmax_forward", x, axis=axis)
        return self.out

    def backward(self, g):
        return _on_last_axis("log_softmax_backward", self.out, g, axis=self.axis)


def softmax(x, axis=-1): return Softmax.apply(x, axis=axis)
def log_softmax(x, axis=-1): return LogSoftmax.apply(x, axis=axis)


# --- joining, splitting, selecting ---------------------------------------------------
class Concatenate(Function):
    def forward(self, *arrays, axis=0):
        xp = get_array_module(*arrays)
        self.axis = axis
        try:
            out = xp.concatenate(arrays, axis=axis)
        except ValueError:   # also numpy's AxisError, for inputs with too few axes
            raise ShapeError(f"concatenate: shapes {[a.shape for a in arrays]} differ "
                             f"outside axis {axis}") from None
        # shapes now known good; a list, which CuPy's split takes as NumPy's does
        self.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1].tolist()
        return out

    def backward(self, g):
        return tuple(get_array_module(g).split(g, self.bounds, axis=self.axis))


class Stack(Function):
    def forward(self, *arrays, axis=0):
        if len({a.shape for a in arrays}) > 1:
            raise ShapeError(f"stack: all shapes must be equal, got {[a.shape for a in arrays]}")
        self.axis = axis
        return get_array_module(*arrays).stack(arrays, axis=axis)

    def backward(self, g):
        return tuple(get_array_module(g).moveaxis(g, self.axis, 0))   # views, no copies


def concatenate(tensors, axis=0):
    if len(tensors) == 0:
        raise ShapeError("concatenate: needs at least one tensor, got an empty sequence")
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    if len(tensors) == 0:
        raise ShapeError("stack: needs at least one tensor, got an empty sequence")
    return Stack.apply(*tensors, axis=axis)


def split(x, sizes, axis=-1):
    """Split ``x`` along ``axis`` into pieces of the given ``sizes`` (a list), or into
    ``sizes`` equal pieces (an int). Each piece is a slice, so gradients flow back."""
    x = as_tensor(x)
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"split: axis {axis} does not exist in a tensor of shape {x.shape}")
    n = x.shape[axis]
    if isinstance(sizes, int):
        if sizes <= 0 or n % sizes:
            raise ShapeError(f"split: axis {axis} of size {n} cannot be split into {sizes} "
                             f"equal pieces")
        sizes = [n // sizes] * sizes
    if any(size < 0 for size in sizes):
        raise ShapeError(f"split: sizes must not be negative, got {list(sizes)}")
    if sum(sizes) != n:
        raise ShapeError(f"split: sizes {list(sizes)} add up to {sum(sizes)}, "
                         f"but axis {axis} has size {n}")
    axis = axis % x.ndim
    pieces, start = [], 0
    for size in sizes:
        key = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(x[key])
        start += size
    return pieces


class Where(Function):
    def forward(self, a, b, condition):
        self.condition, self.shapes = condition, (a.shape, b.shape)
        return get_array_module(a).where(condition, a, b)

    def backward(self, g):
        zero = g.dtype.type(0)
        xp = get_array_module(g)
        return (unbroadcast(xp.where(self.condition, g, zero), self.shapes[0]),
                unbroadcast(xp.where(self.condition, zero, g), self.shapes[1]))


def _bool_mask(mask, name):
    mask = as_array(mask.data if isinstance(mask, Tensor) else mask)
    if mask.dtype != bool:
        raise DTypeError(f"{name}: the condition must be a boolean array, got dtype {mask.dtype}")
    return mask


def where(condition, a, b):
    """``a`` where ``condition`` is True, else ``b`` (broadcasting); gradients follow the choice."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    return Where.apply(as_tensor(a, like), as_tensor(b, like),
                       condition=_bool_mask(condition, "where"))


def masked_fill(x, mask, value):
    """``x`` with ``value`` wherever ``mask`` is True (e.g. -inf above the causal diagonal)."""
    x = as_tensor(x)
    value = value.item() if isinstance(value, Tensor) else value
    return Where.apply(as_tensor(float(value), x), x, condition=_bool_mask(mask, "masked_fill"))


# --- layers as functions -------------------------------------------------------------
def linear(x, weight, bias=None):
    """y = x W^T + b with W of shape (out_features, in_features), PyTorch's layout."""
    x, weight = as_tensor(x), as_tensor(weight)
    if weight.ndim != 2:
        raise ShapeError(f"linear: weight must be 2-D (out_features, in_features), "
                         f"got shape {weight.shape}")
    if x.shape[-1:] != weight.shape[1:]:
        raise ShapeError(f"linear: input has {x.shape[-1] if x.ndim else 'no'} features "
                         f"(shape {x.shape}), weight expects {weight.shape[1]} "
                         f"(weight shape {weight.shape})")
    y = x @ weight.T
    return y if bias is None else y + bias


def _check_token_ids(ids, n, name, what="token id"):
    if ids.dtype.kind not in "iu":
        raise DTypeError(f"{name}: each {what} must be an integer, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        bad = ids.min() if ids.min() < 0 else ids.max()
        raise IndexRangeError(f"{name}: {what} {int(bad)} is out of range [0, {n})")


class Embedding(Function):
    """A5/C5/E3: ``W[ids]``, the row lookup. A10: it equals one_hot(ids) @ W, so its
    gradient is one_hot^T @ g: a scatter-add of g into the looked-up rows."""

    def forward(self, weight, ids, padding_idx=None):
        self.ids, self.shape, self.padding_idx = ids, weight.shape, padding_idx
        return weight[ids]

    def backward(self, g):
        rows = g.reshape(-1, self.shape[-1])
        gw = kernel("embedding_backward", rows)(rows, self.ids.reshape(-1), self.shape[0])
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0   # the padding row is never trained
        return gw


def check_padding_idx(padding_idx, num_embeddings, name):
    """``padding_idx`` must name a row: -n <= padding_idx < n (or be None)."""
    if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
        raise IndexRangeError(f"{name}: padding_idx {padding_idx} is out of range for "
                              f"{num_embeddings} embeddings")


def embedding(ids, weight, padding_idx=None):
    """Look up rows ``weight[ids]``; ``ids`` any-shaped integers, result ids.shape + (dim,)."""
    weight = as_tensor(weight)
    ids = as_array(ids.data if isinstance(ids, Tensor) else ids)
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, dim), got {weight.shape}")
    _check_token_ids(ids, weight.shape[0], "embedding")
    check_padding_idx(padding_idx, weight.shape[0], "embedding")  # else it fails in backward
    return Embedding.apply(weight, ids=ids, padding_idx=padding_idx)


class LayerNormalize(Function):
    """x_hat = (x - mean) / sqrt(var + eps) over the last ``n_axes`` axes (A9, D5).

    Backward (A11): dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(var + eps).
    """

    def forward(self, x, n_axes=1, eps=1e-5):
        self.shape, self.n_axes, self.eps = x.shape, n_axes, eps
        rows = x.reshape(-1, int(np.prod(x.shape[x.ndim - n_axes:])))   # normalised axes last
        self.x_hat, self.inv_std = kernel("layer_norm_forward", rows)(rows, eps)
        return self.x_hat.reshape(x.shape)

    def backward(self, g):
        g = g.reshape(self.x_hat.shape)
        return kernel("layer_norm_backward", self.x_hat, self.inv_std, g)(
            self.x_hat, self.inv_std, g).reshape(self.shape)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """LayerNorm(x) = x_hat * weight + bias, normalising over the trailing ``normalized_shape``."""
    x = as_tensor(x)
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) \
        else tuple(normalized_shape)
    if x.shape[x.ndim - len(normalized_shape):] != normalized_shape:
        raise ShapeError(f"layer_norm: input shape {x.shape} does not end with "
                         f"normalized_shape {normalized_shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and as_tensor(p).shape != normalized_shape:
            raise ShapeError(f"layer_norm: {name} has shape {as_tensor(p).shape}, expected "
                             f"normalized_shape {normalized_shape}")
    if not (isinstance(eps, (int, float, np.floating)) and 0 <= eps < math.inf):
        raise TinyLMError(f"layer_norm: eps must be a finite number >= 0, got {eps!r} (a "
                          f"negative eps makes sqrt(var + eps) nan for constant rows)")
    y = LayerNormalize.apply(x, n_axes=len(normalized_shape), eps=eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def dropout(x, p=0.5, training=True, generator=None):
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p),
    so the expected value is unchanged and evaluation needs no rescaling.

    ``generator`` is required when it acts (tinylm never draws from hidden global random
    state): a ``numpy.random.Generator`` gives a new mask on every call; an int seed gives
    the SAME mask on every call (handy for checks, wrong for training).
    """
    x = as_tensor(x)
    if not (isinstance(p, (int, float, np.number)) and 0 <= p <= 1):
        raise TinyLMError(f"dropout: p must be in [0, 1], got {p!r}")
    if not training or p == 0:
        return x
    if generator is None:
        raise TinyLMError("dropout: pass generator= (a numpy.random.Generator or an int seed); "
                          "tinylm does not use global random state")
    rng = generator if isinstance(generator, np.random.Generator) \
        else np.random.default_rng(generator)
    xp = get_array_module(x.data)
    keep = rng.random(x.shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    mask = xp.asarray(keep * scale, dtype=x.dtype)
    return x * mask


# --- losses --------------------------------------------------------------------------
_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, name):
    if reduction not in _REDUCTIONS:
        raise TinyLMError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss, reduction, name):
    _check_reduction(reduction, name)
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _target_like(target, pred):
    """Targets are constants: give float ones the prediction's dtype (float32 stays float32)
    and put raw arrays on the prediction's device (a NumPy target for a model on the GPU)."""
    if is_array(target):
        target = as_array(target, xp=get_array_module(pred.data))
    target = as_tensor(target, pred)
    if target.dtype.kind == "f" and target.dtype != pred.dtype and not target.requires_grad:
        target = Tensor(target.data.astype(pred.dtype))
    return target


def _same_shape(a, b, name):
    if a.shape != b.shape:
        raise ShapeError(f"{name}: input shape {a.shape} and target shape {b.shape} differ")


def mse_loss(pred, target, reduction="mean"):
    """C3: MSE = 1/n sum_i (y_i - y^_i)^2."""
    pred = as_tensor(pred)
    target = _target_like(target, pred)
    _same_shape(pred, target, "mse_loss")
    diff = pred - target
    return _reduce(diff * diff, reduction, "mse_loss")


class CrossEntropy(Function):
    """Softmax cross-entropy from logits (C4: -sum_i y_i log y^_i with one-hot y).

    With label smoothing e the target is (1-e) one_hot + e/C. The gradient is
    softmax(logits) - target_distribution, per valid row.
    """

    def forward(self, logits, target, ignore_index, label_smoothing, reduction):
        _no_half(logits, "cross_entropy")
        xp = get_array_module(logits)
        self.logits = logits.reshape(-1, logits.shape[-1])
        self.target = target.reshape(-1)
        self.valid = self.target != ignore_index
        loss, self.lse = kernel("cross_entropy_forward", self.logits)(
            self.logits, self.target, self.valid, label_smoothing)
        self.eps, self.reduction, self.in_shape = label_smoothing, reduction, logits.shape
        self.n_valid = int(self.valid.sum())
        if reduction == "none":
            return loss.reshape(target.shape)
        total = loss.sum()
        return xp.asarray(total / self.n_valid if reduction == "mean" else total)

    def backward(self, g):
        if self.reduction == "none":
            row_scale = g.reshape(-1)
        else:
            row_scale = g / self.n_valid if self.reduction == "mean" else g
        grad = kernel("cross_entropy_backward", self.logits, self.lse)(
            self.logits, self.lse, self.target, self.valid, self.eps, row_scale)
        return grad.reshape(self.in_shape)


def cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Mean negative log-likelihood of integer class ``target`` under softmax(``logits``).

    ``logits`` (..., C) with the class axis LAST (PyTorch puts it second for >2-D input),
    ``target`` integers of shape (...). Targets equal to ``ignore_index`` add nothing and
    are left out of the mean. Stable for logits of any size (log-sum-exp with the max).
    """
    logits = as_tensor(logits)
    target = as_array(target.data if isinstance(target, Tensor) else target)
    if logits.ndim == 0:
        raise ShapeError("cross_entropy: logits must have a class axis, got a scalar")
    if target.shape != logits.shape[:-1]:
        raise ShapeError(f"cross_entropy: logits {logits.shape} need a target of shape "
                         f"{logits.shape[:-1]}, got {target.shape}")
    _check_reduction(reduction, "cross_entropy")
    if not 0 <= label_smoothing <= 1:
        raise TinyLMError(f"cross_entropy: label_smoothing must be in [0, 1], "
                          f"got {label_smoothing}")
    _check_token_ids(target[target != ignore_index], logits.shape[-1], "cross_entropy",
                     "target class")
    if reduction == "mean" and not (target != ignore_index).any():
        raise TinyLMError(f"cross_entropy: no targets to average over (empty, or every one "
                          f"equals ignore_index={ignore_index}); the mean is undefined")
    return CrossEntropy.apply(logits, target=target, ignore_index=ignore_index,
                              label_smoothing=label_smoothing, reduction=reduction)


class BinaryCrossEntropy(Function):
    """-[y log p + (1-y) log(1-p)] (C12's standard form), logs clamped at -100 as in PyTorch,
    so p = 0 or 1 gives a large finite loss rather than inf."""

    def forward(self, p, y):
        xp = get_array_module(p)
        self.p, self.y = p, y
        with np.errstate(divide="ignore"):
            log_p = xp.maximum(xp.log(p), -100)
            log_1mp = xp.maximum(xp.log(1 - p), -100)
        return -(y * log_p + (1 - y) * log_1mp)

    def backward(self, g):
        xp = get_array_module(g)
        p, y = self.p, self.y
        gp = g * (p - y) / xp.maximum(p * (1 - p), 1e-12)
        gy = g * (xp.log1p(-p) - xp.log(p)) if self.needs_grad[1] else None
        return gp, gy


def binary_cross_entropy(p, target, reduction="mean"):
    """Binary cross-entropy of probabilities ``p`` in [0, 1] against targets in [0, 1]."""
    p = as_tensor(p)
    target = _target_like(target, p)
    _same_shape(p, target, "binary_cross_entropy")
    if p.size and not (p.data.min() >= 0 and p.data.max() <= 1):   # also catches NaN
        raise TinyLMError(f"binary_cross_entropy: input must be probabilities in [0, 1], got "
                          f"values in [{float(p.data.min()):g}, {float(p.data.max()):g}] "
                          f"(for logits use binary_cross_entropy_with_logits)")
    return _reduce(BinaryCrossEntropy.apply(p, target), reduction, "binary_cross_entropy")


class BCEWithLogits(Function):
    """BCE(sigmoid(z), y) computed stably: max(z, 0) - z y + log(1 + e^{-|z|}).
    Its gradient is the neat sigmoid(z) - y (C12: (y^ - y) x after the chain rule)."""

    def forward(self, z, y):
        xp = get_array_module(z)
        self.z, self.y = z, y
        return xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, g):
        gz = g * (_sigmoid_array(self.z) - self.y)
        return gz, (-g * self.z if self.needs_grad[1] else None)


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Binary cross-entropy on raw scores (the sigmoid is built in, and stable)."""
    logits = as_tensor(logits)
    target = _target_like(target, logits)
    _same_shape(logits, target, "binary_cross_entropy_with_logits")
    return _reduce(BCEWithLogits.apply(logits, target), reduction,
                   "binary_cross_entropy_with_logits")


# --- attention -----------------------------------------------------------------------
def _mask_array(mask, name):
    """A mask as a raw array (bool, or float added to the scores)."""
    mask = as_array(mask.data if isinstance(mask, Tensor) else mask)
    if mask.dtype != bool and mask.dtype.kind != "f":
        raise DTypeError(f"{name}: a mask must be boolean or floating point, got dtype "
                         f"{mask.dtype}")
    return mask


def _keyless_rows(name, count, first):
    """The error for query rows that see no key: softmax over nothing has no value."""
    return TinyLMError(
        f"{name}: {count} query row(s) have every key masked out (the first at index {first} "
        f"of the (..., L) rows); softmax over no keys is undefined (PyTorch returns NaN "
        f"there). Let each query see at least one key (check attn_mask / key_padding_mask / "
        f"is_causal).")


def attention(query, key, value, allowed=None, additive=None, dropout_p=0.0, training=True,
              generator=None, scale=None, name="scaled_dot_product_attention"):
    """softmax(Q K^T * scale + additive, masked where not ``allowed``) V, and the weights.

    The worker behind ``scaled_dot_product_attention`` and ``nn.MultiheadAttention``:
    ``allowed`` is a boolean array (True = this query may attend to this key) and
    ``additive`` a float array added to the scores; both broadcast to (..., L, S).
    Returns ``(output, weights)``, the weights after dropout (as PyTorch returns them).
    A query row whose every key is masked has no distribution to take a softmax of: that
    raises a ``TinyLMError`` instead of producing NaN.
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    if additive is not None:
        scores = scores + as_array(additive, scores.dtype, get_array_module(scores.data))
    if allowed is not None:
        scores = masked_fill(scores, ~allowed, -math.inf)
    if additive is not None or allowed is not None:
        dead = get_array_module(scores.data).isneginf(scores.data).all(axis=-1)
        if dead.any():
            raise _keyless_rows(name, int(dead.sum()),
                                tuple(int(i) for i in np.argwhere(to_numpy(dead))[0]))
    weights = softmax(scores, axis=-1)
    if dropout_p > 0 and training:
        weights = dropout(weights, dropout_p, training=True, generator=generator)
    return weights @ value, weights


# Up to one tile of scores per head the weights are kept for the backward (GPT at T = 64:
# the streaming backward recomputes the scores, which only pays when holding them is what
# costs; measured: GPT step 157 ms streaming vs 141 ms with the weights kept); beyond, the
# online softmax over tiles, O(T d) memory per head.
STREAMING_MIN_SCORES = 256 * 256


class FusedAttention(Function):
    """softmax(Q K^T * scale, causal) V as ONE Function: what ``scaled_dot_product_attention``
    and ``nn.MultiheadAttention`` run when there is no explicit mask and no dropout.

    Up to ``STREAMING_MIN_SCORES`` scores per head it computes the formula in place (one
    batched product for the scores, scaled and masked in place, the softmax kernel, one
    product with V) and keeps the weights P; the backward is the formula's, by hand:

        dV = P^T g,   dP = g V^T,   dS = P * (dP - rowsum(dP * P)) * scale,
        dQ = dS K,    dK = dS^T Q

    Beyond, it runs the streaming kernels (``kernels.cpu.attention_forward``: the online
    softmax over tiles of keys, never holding the (L, S) weights; the backward rebuilds each
    tile from Q, K and the saved log-sum-exp). One node instead of the six the composed
    formula records (transpose, two products, scale, mask, softmax), and half the
    temporaries. ``TINYLM_KERNELS=reference`` runs the naive formula in the streaming
    kernels' place. Second derivatives go through a rule in ``higher_order.py``."""

    def forward(self, q, k, v, scale, causal_offset=None, streaming=None):
        """``streaming``: None picks by size (see above); True or False forces the choice
        (tests and chapter 10 run both paths on the same small input)."""
        self.q, self.k, self.v, self.scale, self.offset = q, k, v, scale, causal_offset
        L, S = q.shape[-2], k.shape[-2]
        if causal_offset is not None and causal_offset < 0 and L:
            # query i sees keys j <= i + offset: the first -offset queries see none
            raise _keyless_rows("attention (causal)",
                                min(L, -causal_offset) * math.prod(q.shape[:-2]),
                                (0,) * (q.ndim - 1))
        if streaming or (streaming is None and L * S > STREAMING_MIN_SCORES):
            self.weights = None
            self.out, self.lse = kernel("attention_forward", q, k, v)(q, k, v, scale,
                                                                      causal_offset)
            return self.out
        xp = get_array_module(q)
        scores = q @ k.swapaxes(-1, -2)
        scores *= scale
        if causal_offset is not None:
            xp.copyto(scores, -math.inf, where=~causal_mask(L, S, causal_offset, xp))
        self.weights = kernel("softmax_forward", scores)(scores)
        return self.weights @ v

    def backward(self, g):
        q, k, v, p = self.q, self.k, self.v, self.weights
        if p is None:
            return kernel("attention_backward", q, k, v, g)(
                q, k, v, self.out, self.lse, g, self.scale, self.offset)
        need_q, need_k, need_v = self.needs_grad
        dv = p.swapaxes(-1, -2) @ g if need_v else None
        if not (need_q or need_k):
            return None, None, dv
        dp = g @ v.swapaxes(-1, -2)
        ds = kernel("softmax_backward", p, dp)(p, dp)
        ds *= self.scale
        return (ds @ k if need_q else None, ds.swapaxes(-1, -2) @ q if need_k else None, dv)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, generator=None):
    """D4 / E4 (and A8 as written): Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V.

    D1's steps: the scores Q K^T compare every query with every key, dividing by sqrt(d_k)
    keeps their variance near 1 whatever the width, the softmax turns each row into
    weights, and the output is the weighted sum of the values.

    Shapes as PyTorch: query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev);
    the leading axes broadcast. ``attn_mask`` broadcastable to (..., L, S): boolean with
    True = MAY attend (PyTorch's SDPA convention; note ``nn.MultiheadAttention`` uses the
    opposite, True = masked), or float, added to the scores (0 / -inf). ``is_causal``
    masks key j > query i (top-left aligned, as PyTorch); it cannot be combined with
    ``attn_mask``. ``scale`` defaults to 1/sqrt(E). ``dropout_p`` > 0 drops attention weights
    and needs ``generator`` (tinylm never uses global random state).

    A8's ERRATUM: the document calls this formula "MultiHeadAttention"; it is ONE head.
    Multi-head attention is ``nn.MultiheadAttention``: Concat(head_1..head_h) W_O.

    Without ``attn_mask`` and dropout it runs ``FusedAttention`` (one node; beyond one tile
    of scores per head the online softmax over tiles of keys, never holding the (L, S)
    weights); otherwise the formula as written, from tinylm ops (matmul, softmax,
    masked_fill). Both are differentiable to any order. A query
    whose every key is masked raises ``TinyLMError`` (PyTorch gives NaN).
    """
    name = "scaled_dot_product_attention"
    query, key, value = as_tensor(query), as_tensor(key), as_tensor(value)
    for arg, t in (("query", query), ("key", key), ("value", value)):
        if t.ndim < 2:
            raise ShapeError(f"{name}: {arg} must have at least 2 axes (..., seq, dim), "
                             f"got shape {t.shape}")
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError(f"{name}: query and key must have the same last axis (d_k), got "
                         f"query {query.shape} and key {key.shape}")
    if key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"{name}: key and value must have the same length S (axis -2), got "
                         f"key {key.shape} and value {value.shape}")
    if not 0 <= dropout_p <= 1:
        raise TinyLMError(f"{name}: dropout_p must be in [0, 1], got {dropout_p}")
    L, S = query.shape[-2], key.shape[-2]
    if attn_mask is None and dropout_p == 0 and \
            query.shape[:-2] == key.shape[:-2] == value.shape[:-2]:
        # no weights to mask, drop or return: one fused node (streaming beyond one tile)
        return FusedAttention.apply(
            query, key, value, scale=1 / math.sqrt(query.shape[-1]) if scale is None
            else scale, causal_offset=0 if is_causal else None)
    allowed = additive = None
    if is_causal:
        if attn_mask is not None:
            raise TinyLMError(f"{name}: pass either attn_mask or is_causal=True, not both")
        allowed = causal_mask(L, S)
    elif attn_mask is not None:
        mask = _mask_array(attn_mask, name)
        try:
            batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2])
        except ValueError:
            raise ShapeError(f"{name}: the batch axes of query {query.shape} and key "
                             f"{key.shape} do not broadcast") from None
        try:
            np.broadcast_shapes(mask.shape, batch + (L, S))
            if mask.ndim > len(batch) + 2:
                raise ValueError
        except ValueError:
            raise ShapeError(f"{name}: attn_mask of shape {mask.shape} does not broadcast to "
                             f"the scores' shape {batch + (L, S)} (..., L, S)") from None
        if mask.dtype == bool:
            allowed = mask
        else:
            additive = mask
    return attention(query, key, value, allowed, additive, dropout_p, True, generator, scale,
                     name)[0]
