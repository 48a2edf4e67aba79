"""From token ids to batches: LM blocks (E2 step 2), padding, length buckets, splits (A4).

* ``lm_blocks(ids, T)``: cut one id stream into rows ``x = ids[iS : iS + T]`` with targets
  ``y = ids[iS + 1 : iS + T + 1]`` (the next token at every position), ``S`` the stride;
* ``LMBatches``: batches of those rows, reshuffled every epoch by its own generator;
* ``random_windows``: nanoGPT's ``get_batch``, windows at random offsets of each split;
* ``pad_sequences``: sentences of different lengths as one (B, T) array plus their lengths;
* ``bucket_batches``: batches of sentences of similar length, so little of each is padding;
* ``train_val_test_split``: a seeded partition into train / validation / test (A4),
  optionally stratified by label.

Randomness comes only from ``numpy.random.default_rng(seed)``: the same seed gives the same
batches and the same split.
"""
import math
from numbers import Integral

import numpy as np

from ..errors import DTypeError, ShapeError, TinyLMError

__all__ = ["lm_blocks", "LMBatches", "random_windows", "pad_sequences", "bucket_batches",
           "train_val_test_split"]


def _positive_int(value, name, who):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise TinyLMError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _id_array(ids, who, what="ids"):
    """A 1-D int64 copy of ``ids``; DTypeError for non-integers, ShapeError for other ranks."""
    arr = np.asarray(ids)
    if arr.size == 0:
        arr = arr.astype(np.int64)      # [] arrives as float64; an empty list has no dtype
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{who}: {what} must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ShapeError(f"{who}: {what} must be 1-D (one token id per position), got shape "
                         f"{arr.shape}")
    return arr.astype(np.int64)


# --- E2 step 2: fixed-length blocks for a language model -----------------------------------
def lm_blocks(ids, block_size, stride=None):
    """E2 step 2, "split into fixed-length sub-sequences": rows of ``block_size`` ids.

    Row ``i`` is ``x_i = ids[i S : i S + T]`` and its target ``y_i = ids[i S + 1 : i S + T + 1]``
    (``T = block_size``, ``S = stride``, default ``T``: non-overlapping rows), so ``y`` is ``x``
    shifted by one token: at every position the model predicts the next one. There are
    ``(len(ids) - 1 - T) // S + 1`` rows (``(len - 1) // T`` when ``S = T``); the incomplete
    tail is dropped. Returns ``(inputs, targets)``, int64 arrays of shape (n_blocks, T).
    """
    block_size = _positive_int(block_size, "block_size", "lm_blocks")
    stride = block_size if stride is None else _positive_int(stride, "stride", "lm_blocks")
    ids = _id_array(ids, "lm_blocks")
    if len(ids) < block_size + 1:
        raise ShapeError(f"lm_blocks: need at least block_size + 1 = {block_size + 1} ids "
                         f"(a block and its next token), got {len(ids)}")
    n_blocks = (len(ids) - 1 - block_size) // stride + 1
    starts = np.arange(n_blocks, dtype=np.int64)[:, None] * stride
    index = starts + np.arange(block_size, dtype=np.int64)   # (n_blocks, T) positions
    return ids[index], ids[index + 1]


class LMBatches:
    """Batches ``(x, y)`` of ``lm_blocks(ids, block_size)`` rows, int64 of shape (B, T).

    ``shuffle=True`` draws a new order of the rows at every pass (epoch) from the object's own
    generator, so two objects with the same ``seed`` give the same sequence of epochs.
    ``drop_last=True`` leaves out a last batch smaller than ``batch_size``. ``len()`` is the
    number of batches per epoch.
    """

    def __init__(self, ids, block_size, batch_size, shuffle=True, seed=None, drop_last=False):
        self.batch_size = _positive_int(batch_size, "batch_size", "LMBatches")
        self.inputs, self.targets = lm_blocks(ids, block_size)
        self.block_size, self.shuffle, self.drop_last = int(block_size), shuffle, drop_last
        self.rng = np.random.default_rng(seed)
        if drop_last and len(self.inputs) < self.batch_size:
            raise ShapeError(f"LMBatches: drop_last=True with {len(self.inputs)} blocks and "
                             f"batch_size={self.batch_size} leaves no batch")

    def __len__(self):
        n = len(self.inputs)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.inputs)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            rows = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.inputs[rows], self.targets[rows]

    def __repr__(self):
        return (f"LMBatches({len(self.inputs)} blocks of {self.block_size}, batch_size="
                f"{self.batch_size}, {len(self)} batches, shuffle={self.shuffle})")


def random_windows(ids_by_split, block_size, batch_size):
    """nanoGPT's ``get_batch``: a function ``get_batch(split, rng) -> (x, y)`` drawing
    ``batch_size`` windows of ``block_size`` ids at uniformly random offsets of
    ``ids_by_split[split]``, and the same windows shifted by one token (the targets).

    The generator is the caller's, so a training loop and its evaluation draw from separate,
    seeded streams (``tinylm.train.Trainer`` does), and two runs with the same seeds see the
    same batches.
    """
    block_size = _positive_int(block_size, "block_size", "random_windows")
    batch_size = _positive_int(batch_size, "batch_size", "random_windows")
    ids_by_split = {name: _id_array(arr, "random_windows", f"the {name} ids")
                    for name, arr in ids_by_split.items()}
    for name, arr in ids_by_split.items():
        if len(arr) < block_size + 2:
            raise ShapeError(f"random_windows: the {name} split has {len(arr)} tokens, fewer "
                             f"than block size + 2 = {block_size + 2}; use a longer corpus or "
                             f"a smaller block size")
    offsets = np.arange(block_size)

    def get_batch(split, rng):
        if split not in ids_by_split:
            raise TinyLMError(f"get_batch: no split {split!r}; have {sorted(ids_by_split)}")
        data = ids_by_split[split]
        start = rng.integers(len(data) - block_size, size=batch_size)
        index = start[:, None] + offsets
        return data[index], data[index + 1]
    return get_batch


# --- padding and length buckets ------------------------------------------------------------
def _sequence_list(sequences, who):
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        sequences = list(sequences)
    if not hasattr(sequences, "__iter__") or isinstance(sequences, (str, bytes)):
        raise TinyLMError(f"{who}: sequences must be a list of id sequences, got "
                          f"{type(sequences).__name__}")
    seqs = [_id_array(s, who, f"sequence {i}") for i, s in enumerate(sequences)]
    if not seqs:
        raise ShapeError(f"{who}: need at least one sequence, got none")
    return seqs


def pad_sequences(sequences, pad_id=0, max_len=None, side="right"):
    """Stack sequences of different lengths into one (B, T) int64 array.

    ``T = max_len`` when given (longer sequences are truncated: their first ``max_len`` ids
    are kept), else the longest length. ``side="right"`` pads after the ids (a recurrent
    model then reads real tokens first), ``"left"`` before them (the last real token sits in
    the last column, handy for generation). Returns ``(padded, lengths)``; ``lengths`` are the
    counts of real (kept) ids, int64 of shape (B,).
    """
    if side not in ("right", "left"):
        raise TinyLMError(f"pad_sequences: side must be 'right' or 'left', got {side!r}")
    if isinstance(pad_id, bool) or not isinstance(pad_id, Integral):
        raise DTypeError(f"pad_sequences: pad_id must be an integer, got {pad_id!r}")
    if max_len is not None:
        max_len = _positive_int(max_len, "max_len", "pad_sequences")
    seqs = _sequence_list(sequences, "pad_sequences")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    T = int(lengths.max()) if max_len is None else max_len
    padded = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for row, (s, n) in enumerate(zip(seqs, lengths)):
        if side == "right":
            padded[row, :n] = s[:n]
        else:
            padded[row, T - n:] = s[:n]
    return padded, lengths


def bucket_batches(sequences, labels=None, batch_size=64, pad_id=0, shuffle=True, seed=None,
                   bucket_size_multiplier=50):
    """Batches of sequences of similar length, padded on the right: yields
    ``(ids (B, T) int64, lengths (B,) int64, labels[batch] or None)``.

    The sequences are shuffled (when ``shuffle``), cut into pools of
    ``batch_size * bucket_size_multiplier``, sorted by length inside each pool, cut into
    batches, and the batches shuffled: each batch holds sequences of near-equal length (so
    little padding), while the pools keep some randomness in which sequences meet. Every
    sequence appears exactly once per pass; the last batch may be smaller. ``shuffle=False``
    keeps the input order of the pools and of the batches (sorted by length inside a pool).
    """
    batch_size = _positive_int(batch_size, "batch_size", "bucket_batches")
    multiplier = _positive_int(bucket_size_multiplier, "bucket_size_multiplier",
                               "bucket_batches")
    seqs = _sequence_list(sequences, "bucket_batches")
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != len(seqs):
            raise ShapeError(f"bucket_batches: need one label per sequence, got {len(labels)} "
                             f"labels for {len(seqs)} sequences")
    rng = np.random.default_rng(seed)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    order = rng.permutation(len(seqs)) if shuffle else np.arange(len(seqs))
    pool = batch_size * multiplier
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]   # similar lengths together
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:   # else the batches of a pool would come shortest first, every epoch
        batches = [batches[i] for i in rng.permutation(len(batches))]
    for rows in batches:
        ids, lens = pad_sequences([seqs[i] for i in rows], pad_id=pad_id)
        yield ids, lens, (labels[rows] if labels is not None else None)


# --- A4: train / validation / test split ---------------------------------------------------
def _check_fractions(fractions):
    try:
        fractions = np.asarray(fractions, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TinyLMError(f"train_val_test_split: fractions must be three numbers, got "
                          f"{fractions!r}") from err
    if fractions.shape != (3,):
        raise ShapeError(f"train_val_test_split: fractions must be three numbers (train, "
                         f"validation, test), got shape {fractions.shape}")
    if not np.all(np.isfinite(fractions)) or np.any(fractions < 0):
        raise TinyLMError(f"train_val_test_split: fractions must be >= 0, got "
                          f"{fractions.tolist()}")
    if abs(fractions.sum() - 1) > 1e-6:
        raise TinyLMError(f"train_val_test_split: fractions must sum to 1, got "
                          f"{fractions.tolist()} (sum {fractions.sum():.6g})")
    return fractions


def _part_sizes(n, fractions):
    """Validation and test get floor(fraction * n) items, train the rest (the rounding)."""
    # the small epsilon keeps 0.1 * 30 = 3.0000000000000004 or 2.9999999999999996 at 3
    n_val, n_test = (int(math.floor(f * n + 1e-9)) for f in fractions[1:])
    return n - n_val - n_test, n_val, n_test


def _stratified_order(labels, fractions, rng):
    """Each class is shuffled and split in the given fractions on its own (largest-remainder
    rounding per class), so every part keeps the class proportions."""
    parts = ([], [], [])
    classes, inverse = np.unique(labels, return_inverse=True)
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        exact = fractions * len(members)
        sizes = np.floor(exact + 1e-9).astype(np.int64)
        left = len(members) - sizes.sum()
        # give the items lost to rounding to the parts with the largest remainders
        for k in np.argsort(-(exact - sizes), kind="stable")[:left]:
            sizes[k] += 1
        bounds = np.cumsum(sizes)
        for k, part in enumerate(np.split(members, bounds[:-1])):
            parts[k].append(part)
    # shuffle within each part so the classes are mixed, not in blocks
    return [rng.permutation(np.concatenate(p)) for p in parts]


def train_val_test_split(items, fractions=(0.8, 0.1, 0.1), seed=0, stratify=None):
    """A4: shuffle the items with a seeded generator and cut them into train / validation /
    test parts of the given fractions.

    The three parts are disjoint and cover every item; the same seed gives the same split.
    Without ``stratify``: validation and test get ``floor(fraction * n)`` items, train the rest
    (the same split as ``split_by_hand`` in chapter 04). With ``stratify=labels`` (one per
    item) each class is split in the fractions on its own, so every part keeps the class
    proportions. Returns three lists, or three arrays when ``items`` is a NumPy array.
    TinyLMError for fractions that are negative or do not sum to 1, and for a part with a
    positive fraction that would be empty (too few items); a fraction of 0 gives an empty part.
    """
    fractions = _check_fractions(fractions)
    if isinstance(items, np.ndarray):
        if items.ndim == 0:
            raise ShapeError("train_val_test_split: items must be a sequence, got a 0-d array")
        n = len(items)
    else:
        try:
            items = list(items)
        except TypeError as err:
            raise TinyLMError(f"train_val_test_split: items must be a sequence, got "
                              f"{type(items).__name__}") from err
        n = len(items)
    if n == 0:
        raise ShapeError("train_val_test_split: need at least one item, got none")
    rng = np.random.default_rng(seed)
    if stratify is None:
        order = rng.permutation(n)
        n_train, n_val, _ = _part_sizes(n, fractions)
        parts = [order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]]
    else:
        labels = np.asarray(stratify)
        if labels.shape[:1] != (n,) or labels.ndim != 1:
            raise ShapeError(f"train_val_test_split: stratify must hold one label per item "
                             f"({n}), got shape {labels.shape}")
        parts = _stratified_order(labels, fractions, rng)
    for name, part, f in zip(("train", "validation", "test"), parts, fractions):
        if f > 0 and len(part) == 0:
            raise TinyLMError(f"train_val_test_split: the {name} part (fraction {f:g}) of "
                              f"{n} items would be empty; give more items or a larger fraction")
    if isinstance(items, np.ndarray):
        return tuple(items[p] for p in parts)
    return tuple([items[i] for i in p] for p in parts)
