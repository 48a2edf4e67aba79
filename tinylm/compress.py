"""Making a trained model smaller (B8: "pruning, quantisation" to cut the compute cost):
magnitude pruning and symmetric integer quantisation of its weight matrices.

Pruning sets the smallest weights to zero. Global magnitude pruning at sparsity s ranks
every weight of every pruned matrix together by |w| and zeroes the s share with the
smallest magnitudes (a matrix whose weights are small loses more of them); per-matrix
pruning zeroes the s share of each matrix separately::

    keep_ij = |w_ij| >= t,   t = the (s n)-th smallest |w| (ties kept in index order)

Symmetric quantisation to b bits stores each weight as an integer q in [-Q, Q],
Q = 2^(b-1) - 1 (127 for int8), and one float scale per output row ("per channel") or per
matrix ("per tensor")::

    s = max |w| / Q        q = round(w / s)        w^ = q s        |w - w^| <= s / 2

What is run here is quantise -> dequantise ("fake quantisation"): the model computes with
w^ in float32, which gives exactly the outputs an integer kernel with the same scales would
give before its own rounding, so the validation loss measures what the rounding costs.
Storage is counted as it would be kept: b bits per weight plus a float32 scale per row, and
pruned matrices as a bitmask (1 bit per position) plus the kept values.

Only the weights of ``Linear`` layers are compressed by default: embeddings (and a head tied
to them) stay in float32, as usual.
"""
import math

import numpy as np

from .errors import ShapeError, TinyLMError
from .nn import Embedding, Linear

__all__ = ["prunable_weights", "magnitude_masks", "random_masks", "apply_masks_",
           "quantize_symmetric", "dequantize", "fake_quantize_", "dense_bytes", "sparse_bytes",
           "quantized_bytes"]


def prunable_weights(model, include_embeddings=False):
    """``[(name, Parameter)]`` of the weight matrices of the ``Linear`` layers of ``model``,
    each once; weights shared with an ``Embedding`` (a tied head) only with
    ``include_embeddings``, which also adds the embeddings themselves."""
    if not hasattr(model, "named_modules"):
        raise TinyLMError(f"prunable_weights: expected a tinylm Module, got "
                          f"{type(model).__name__}")
    embedded = {id(m.weight) for _, m in model.named_modules() if isinstance(m, Embedding)}
    kinds = (Linear, Embedding) if include_embeddings else (Linear,)
    out, seen = [], set()
    for name, module in model.named_modules():
        if not isinstance(module, kinds):
            continue
        w = module.weight
        if id(w) in seen or (id(w) in embedded and not include_embeddings):
            continue
        seen.add(id(w))
        out.append((f"{name}.weight" if name else "weight", w))
    if not out:
        raise TinyLMError(f"prunable_weights: {type(model).__name__} has no Linear weight to "
                          f"compress")
    return out


def _data(w):
    """The array of a Parameter/Tensor, or the array itself (an ndarray's own ``.data`` is a
    raw buffer, not what we want)."""
    return w if isinstance(w, np.ndarray) else getattr(w, "data", w)


def _arrays(weights, who):
    arrays = [np.asarray(_data(w)) for w in weights]
    if not arrays or any(a.size == 0 or a.dtype.kind != "f" for a in arrays):
        raise TinyLMError(f"{who}: expected a non-empty list of non-empty float arrays or "
                          f"Parameters")
    return arrays


def _check_sparsity(sparsity, who):
    if not isinstance(sparsity, (int, float, np.floating)) or not 0 <= sparsity < 1:
        raise TinyLMError(f"{who}: sparsity must be a number in [0, 1), got {sparsity!r}")


def _keep_largest(values, n_keep):
    """Boolean mask keeping the ``n_keep`` entries of ``values`` with the largest magnitude
    (exactly that many: ties are broken by position, a stable sort)."""
    keep = np.zeros(values.size, dtype=bool)
    if n_keep:
        order = np.argsort(-np.abs(values.ravel()), kind="stable")
        keep[order[:n_keep]] = True
    return keep.reshape(values.shape)


def magnitude_masks(weights, sparsity, scope="global"):
    """Keep-masks (True = kept) zeroing the ``sparsity`` share of the weights with the
    smallest |w|: ranked over all matrices together (``scope="global"``) or in each matrix
    (``"layer"``). Exactly round(sparsity n) weights go (n of all, or of each matrix)."""
    _check_sparsity(sparsity, "magnitude_masks")
    arrays = _arrays(weights, "magnitude_masks")
    if scope == "layer":
        return [_keep_largest(a, a.size - round(sparsity * a.size)) for a in arrays]
    if scope != "global":
        raise TinyLMError(f"magnitude_masks: scope must be 'global' or 'layer', got {scope!r}")
    flat = np.concatenate([a.ravel() for a in arrays])
    return _split_like(_keep_largest(flat, flat.size - round(sparsity * flat.size)), arrays)


def _split_like(flat_mask, arrays):
    """One flat mask over all matrices, cut back into one mask per matrix."""
    parts = np.split(flat_mask, np.cumsum([a.size for a in arrays])[:-1])
    return [p.reshape(a.shape) for p, a in zip(parts, arrays)]


def random_masks(weights, sparsity, seed):
    """The baseline: the same number of weights as ``magnitude_masks(..., "global")`` zeroed,
    chosen uniformly at random over all matrices (``seed``: an int or a Generator)."""
    _check_sparsity(sparsity, "random_masks")
    arrays = _arrays(weights, "random_masks")
    rng = np.random.default_rng(seed)
    n = sum(a.size for a in arrays)
    keep = np.zeros(n, dtype=bool)
    keep[rng.permutation(n)[:n - round(sparsity * n)]] = True
    return _split_like(keep, arrays)


def apply_masks_(weights, masks):
    """Zero the pruned weights in place (``w *= mask``); returns the share zeroed."""
    if len(weights) != len(masks):
        raise TinyLMError(f"apply_masks_: {len(weights)} weights but {len(masks)} masks")
    zeroed = total = 0
    for w, m in zip(weights, masks):
        data = _data(w)
        if np.shape(m) != data.shape:
            raise ShapeError(f"apply_masks_: a mask of shape {np.shape(m)} for a weight of "
                             f"shape {data.shape}")
        data *= m
        zeroed += int(m.size - np.count_nonzero(m))
        total += m.size
    return zeroed / total


# --- quantisation --------------------------------------------------------------------------
def _check_bits(bits, who):
    if not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise TinyLMError(f"{who}: bits must be an integer in [2, 16], got {bits!r}")
    return 2 ** (int(bits) - 1) - 1


def quantize_symmetric(w, bits=8, per_channel=True):
    """``(q, scale)``: w ~ q * scale with q integers in [-Q, Q], Q = 2^(bits-1) - 1, and
    scale = max|w| / Q per row of ``w`` (``per_channel``, shape (rows, 1)) or for the whole
    array (shape ()). q is int8 up to 8 bits, int16 above. A row of zeros gets scale 1."""
    Q = _check_bits(bits, "quantize_symmetric")
    w = np.asarray(_data(w))
    if w.dtype.kind != "f" or w.size == 0:
        raise TinyLMError(f"quantize_symmetric: expected a non-empty float array, got dtype "
                          f"{w.dtype} and shape {w.shape}")
    if per_channel and w.ndim != 2:
        raise ShapeError(f"quantize_symmetric: per-channel scales need a 2-D weight (out, in), "
                         f"got shape {w.shape}")
    top = np.abs(w).max(axis=1, keepdims=True) if per_channel else np.abs(w).max()
    scale = np.where(top > 0, top / Q, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -Q, Q).astype(np.int8 if bits <= 8 else np.int16)
    return q, scale


def dequantize(q, scale):
    """w^ = q * scale, in float32."""
    return np.asarray(q).astype(np.float32) * np.asarray(scale, dtype=np.float32)


def fake_quantize_(weights, bits=8, per_channel=True):
    """Replace each weight by its quantised value w^ = dequantize(quantize(w)), in place;
    returns the storage in bytes (``quantized_bytes``) of the quantised matrices."""
    total = 0
    for w in weights:
        data = _data(w)
        q, scale = quantize_symmetric(data, bits, per_channel)
        data[...] = dequantize(q, scale)
        total += quantized_bytes(data.shape, bits, per_channel)
    return total


# --- storage -------------------------------------------------------------------------------
def dense_bytes(shape, bits=32):
    """Every entry stored at ``bits`` bits (float32: 4 bytes each)."""
    return math.ceil(math.prod(shape) * bits / 8)


def quantized_bytes(shape, bits=8, per_channel=True):
    """b-bit integers packed, plus a float32 scale per row (or one per matrix)."""
    _check_bits(bits, "quantized_bytes")
    scales = shape[0] if per_channel else 1
    return dense_bytes(shape, bits) + 4 * scales


def sparse_bytes(mask, value_bits=32):
    """A pruned matrix as a bitmask (1 bit per position) plus its kept values: below about
    1/32 of the values zeroed this is more than the dense float32 matrix."""
    mask = np.asarray(mask, dtype=bool)
    return math.ceil(mask.size / 8) + math.ceil(int(np.count_nonzero(mask)) * value_bits / 8)
