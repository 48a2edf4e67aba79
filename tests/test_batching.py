"""Batching and splits (tinylm/text/batching.py): LM blocks (E2 step 2), LMBatches,
padding, length buckets and the train/validation/test split (A4), with property tests."""
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylm.text
from tinylm.errors import DTypeError, ShapeError, TinyLMError
from tinylm.text.batching import (LMBatches, bucket_batches, lm_blocks, pad_sequences,
                                  random_windows, train_val_test_split)

from chapter_tools import load_definitions

FAST = settings(max_examples=40, deadline=None)
id_lists = st.lists(st.integers(0, 50), min_size=0, max_size=12)


# --- lm_blocks -------------------------------------------------------------------------------
def test_lm_blocks_small_example():
    x, y = lm_blocks([10, 11, 12, 13, 14, 15, 16], 3)
    np.testing.assert_array_equal(x, [[10, 11, 12], [13, 14, 15]])
    np.testing.assert_array_equal(y, [[11, 12, 13], [14, 15, 16]])
    assert x.dtype == y.dtype == np.int64
    x, y = lm_blocks(np.arange(7), 3, stride=1)           # overlapping windows
    np.testing.assert_array_equal(x[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(y[-1], [4, 5, 6])


@FAST
@given(n=st.integers(2, 200), T=st.integers(1, 20), S=st.integers(1, 20))
def test_lm_blocks_shapes_and_shift(n, T, S):
    ids = np.random.default_rng(n).integers(0, 1000, n)
    if n < T + 1:
        with pytest.raises(ShapeError):
            lm_blocks(ids, T, stride=S)
        return
    x, y = lm_blocks(ids, T, stride=S)
    assert x.shape == y.shape == ((n - 1 - T) // S + 1, T)
    for i in range(len(x)):                   # row i is ids[iS : iS + T], target one later
        np.testing.assert_array_equal(x[i], ids[i * S:i * S + T])
        np.testing.assert_array_equal(y[i], ids[i * S + 1:i * S + T + 1])
    assert (len(x) - 1) * S + T + 1 <= n < len(x) * S + T + 1      # no room for one more row


def test_lm_blocks_with_default_stride_equals_chapter_04():
    ch04 = load_definitions("04_text_pipeline.py")
    ids = np.random.default_rng(0).integers(0, 99, 1001)
    for T in (1, 7, 16, 1000):
        for a, b in zip(lm_blocks(ids, T), ch04.blocks_by_hand(ids, T)):
            np.testing.assert_array_equal(a, b)


def test_lm_blocks_bad_input():
    with pytest.raises(ShapeError, match="at least block_size \\+ 1 = 5"):
        lm_blocks([1, 2, 3, 4], 4)
    with pytest.raises(TinyLMError, match="block_size must be a positive integer, got 0"):
        lm_blocks([1, 2, 3], 0)
    with pytest.raises(TinyLMError, match="stride"):
        lm_blocks([1, 2, 3], 1, stride=0)
    with pytest.raises(DTypeError, match="integers, got dtype float64"):
        lm_blocks([1.0, 2.0, 3.0], 1)
    with pytest.raises(ShapeError, match="1-D"):
        lm_blocks(np.zeros((3, 3), dtype=np.int64), 1)


# --- LMBatches -------------------------------------------------------------------------------
@FAST
@given(n=st.integers(2, 120), T=st.integers(1, 8), B=st.integers(1, 10),
       shuffle=st.booleans(), drop_last=st.booleans())
def test_lm_batches_cover_every_block_once(n, T, B, shuffle, drop_last):
    ids = np.arange(n) * 3
    if n < T + 1:
        return
    n_blocks = len(lm_blocks(ids, T)[0])
    if drop_last and n_blocks < B:
        with pytest.raises(ShapeError):
            LMBatches(ids, T, B, drop_last=True)
        return
    loader = LMBatches(ids, T, B, shuffle=shuffle, seed=1, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader)
    starts = [int(r) for x, y in batches for r in x[:, 0]]
    assert len(starts) == len(set(starts))                 # no block twice
    assert len(starts) == (n_blocks // B * B if drop_last else n_blocks)
    for x, y in batches:
        assert x.dtype == y.dtype == np.int64 and x.shape == y.shape and x.shape[1] == T
        assert x.shape[0] == B or (not drop_last and x is batches[-1][0])
        np.testing.assert_array_equal(y, x + 3)            # the next token of ids = 3 k


def test_lm_batches_reshuffle_each_epoch_reproducibly():
    ids = np.arange(401)
    a, b = LMBatches(ids, 4, 8, seed=5), LMBatches(ids, 4, 8, seed=5)
    epoch1, epoch2 = [x for x, _ in a], [x for x, _ in a]
    assert not all(np.array_equal(p, q) for p, q in zip(epoch1, epoch2))   # a new order
    for epoch in (epoch1, epoch2):                                           # same seed
        assert all(np.array_equal(p, q) for p, q in zip(epoch, [x for x, _ in b]))
    ordered = [x for x, _ in LMBatches(ids, 4, 8, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(ordered)[:, 0], np.arange(100) * 4)


# --- pad_sequences ---------------------------------------------------------------------------
def test_pad_sequences_right_left_and_truncation():
    seqs = [[5, 6, 7], [8], []]
    padded, lengths = pad_sequences(seqs, pad_id=0)
    np.testing.assert_array_equal(padded, [[5, 6, 7], [8, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    padded, _ = pad_sequences(seqs, pad_id=-1, side="left")
    np.testing.assert_array_equal(padded, [[5, 6, 7], [-1, -1, 8], [-1, -1, -1]])
    padded, lengths = pad_sequences(seqs, max_len=2)
    np.testing.assert_array_equal(padded, [[5, 6], [8, 0], [0, 0]])
    np.testing.assert_array_equal(lengths, [2, 1, 0])
    padded, lengths = pad_sequences(seqs, max_len=5, side="left")
    assert padded.shape == (3, 5) and padded.dtype == lengths.dtype == np.int64


@FAST
@given(seqs=st.lists(id_lists, min_size=1, max_size=8), side=st.sampled_from(["right", "left"]),
       max_len=st.one_of(st.none(), st.integers(1, 15)))
def test_pad_sequences_keeps_every_id_in_order(seqs, side, max_len):
    padded, lengths = pad_sequences(seqs, pad_id=-7, max_len=max_len, side=side)
    T = max_len if max_len is not None else max(len(s) for s in seqs)
    assert padded.shape == (len(seqs), T)
    for row, s, n in zip(padded, seqs, lengths):
        assert n == min(len(s), T)
        real = row[:n] if side == "right" else row[T - n:]
        pad = row[n:] if side == "right" else row[:T - n]
        assert real.tolist() == list(s[:n]) and np.all(pad == -7)


def test_pad_sequences_bad_input():
    with pytest.raises(ShapeError, match="at least one sequence"):
        pad_sequences([])
    with pytest.raises(DTypeError, match="sequence 1 must be integers"):
        pad_sequences([[1, 2], [0.5]])
    with pytest.raises(TinyLMError, match="side must be"):
        pad_sequences([[1]], side="middle")
    with pytest.raises(TinyLMError, match="max_len"):
        pad_sequences([[1]], max_len=0)
    with pytest.raises(TinyLMError, match="a list of id sequences, got int"):
        pad_sequences(3)


# --- bucket_batches --------------------------------------------------------------------------
def padding_fraction(batches):
    """The share of the padded (B, T) cells that are padding, over all batches."""
    cells = sum(ids.size for ids, _, _ in batches)
    real = sum(int(lengths.sum()) for _, lengths, _ in batches)
    return 1 - real / cells


@FAST
@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=60), B=st.integers(1, 9),
       mult=st.integers(1, 4), shuffle=st.booleans(), seed=st.integers(0, 3))
def test_bucket_batches_every_item_exactly_once(lengths, B, mult, shuffle, seed):
    # sequence i is filled with its own index, so each batch row says which item it is
    seqs = [[i] * n for i, n in enumerate(lengths)]
    labels = np.arange(len(seqs)) * 10
    seen = []
    for ids, lens, labs in bucket_batches(seqs, labels, batch_size=B, pad_id=-1,
                                          shuffle=shuffle, seed=seed,
                                          bucket_size_multiplier=mult):
        assert ids.dtype == lens.dtype == np.int64 and len(ids) == len(lens) == len(labs) <= B
        assert ids.shape[1] == lens.max()
        for row, n, lab in zip(ids, lens, labs):
            item = lab // 10                      # the label names the item
            assert n == lengths[item] and np.all(row[:n] == item) and np.all(row[n:] == -1)
            seen.append(item)
    assert sorted(seen) == list(range(len(seqs)))


def test_bucket_batches_pad_less_than_random_batches():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 100, n) for n in rng.geometric(1 / 20, size=3000)]
    bucketed = list(bucket_batches(seqs, batch_size=32, seed=0))
    order = rng.permutation(len(seqs))
    random = [pad_sequences([seqs[i] for i in order[k:k + 32]]) + (None,)
              for k in range(0, len(seqs), 32)]
    p_bucket, p_random = padding_fraction(bucketed), padding_fraction(random)
    print(f"padding fraction: bucketed {p_bucket:.3f}, random batches {p_random:.3f}")
    assert p_bucket < 0.1 < 0.6 < p_random                   # 8.8% against 75%
    assert list(bucketed[0][2:]) == [None]


def test_bucket_batches_same_seed_same_batches_and_no_shuffle_is_sorted():
    seqs = [[1] * n for n in (5, 1, 3, 2, 4, 6)]
    first = [ids.tolist() for ids, _, _ in bucket_batches(seqs, batch_size=2, seed=3)]
    again = [ids.tolist() for ids, _, _ in bucket_batches(seqs, batch_size=2, seed=3)]
    assert first == again
    lens = [l.tolist() for _, l, _ in bucket_batches(seqs, batch_size=2, shuffle=False)]
    assert lens == [[1, 2], [3, 4], [5, 6]]


def test_bucket_batches_bad_input():
    with pytest.raises(ShapeError, match="one label per sequence, got 1 labels for 2"):
        list(bucket_batches([[1], [2]], labels=[0]))
    with pytest.raises(TinyLMError, match="batch_size"):
        list(bucket_batches([[1]], batch_size=0))


# --- train_val_test_split (A4) ---------------------------------------------------------------
@FAST
@given(n=st.integers(3, 300), seed=st.integers(0, 5), as_array=st.booleans(),
       fractions=st.sampled_from([(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.5, 0.25, 0.25),
                                  (1 / 3, 1 / 3, 1 / 3), (0.9, 0.1, 0.0)]))
def test_split_is_a_seeded_partition(n, seed, as_array, fractions):
    items = np.arange(n) * 2 if as_array else [f"s{i}" for i in range(n)]
    try:
        parts = train_val_test_split(items, fractions, seed=seed)
    except TinyLMError as err:                 # only when a part with fraction > 0 is empty
        assert "would be empty" in str(err)
        assert min(int(f * n + 1e-9) for f in fractions[1:] if f > 0) == 0
        return
    assert all(isinstance(p, np.ndarray if as_array else list) for p in parts)
    flat = [x for p in parts for x in (p.tolist() if as_array else p)]
    assert Counter(flat) == Counter(items.tolist() if as_array else items)   # each item once
    assert [len(p) for p in parts[1:]] == [int(f * n + 1e-9) for f in fractions[1:]]
    again = train_val_test_split(items, fractions, seed=seed)
    assert all(list(a) == list(b) for a, b in zip(parts, again))


def test_split_equals_chapter_04_split_by_hand():
    ch04 = load_definitions("04_text_pipeline.py")
    for n, seed in ((1000, 0), (57, 3)):
        by_hand = ch04.split_by_hand(n, (0.8, 0.1, 0.1), seed=seed)
        for a, b in zip(train_val_test_split(np.arange(n), seed=seed), by_hand):
            np.testing.assert_array_equal(a, b)
    assert [len(p) for p in train_val_test_split(list(range(10)))] == [8, 1, 1]
    assert tinylm.text.train_val_test_split is train_val_test_split   # exported (PEP 562)


def test_split_differs_between_seeds():
    a = train_val_test_split(np.arange(100), seed=0)[0]
    b = train_val_test_split(np.arange(100), seed=1)[0]
    assert not np.array_equal(a, b)


@FAST
@given(counts=st.lists(st.integers(10, 60), min_size=2, max_size=4), seed=st.integers(0, 3))
def test_stratified_split_keeps_class_proportions(counts, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    items = np.arange(len(labels))
    parts = train_val_test_split(items, (0.6, 0.2, 0.2), seed=seed, stratify=labels)
    assert sorted(np.concatenate(parts).tolist()) == items.tolist()
    for part, f in zip(parts, (0.6, 0.2, 0.2)):
        per_class = np.bincount(labels[part], minlength=len(counts))
        assert np.all(np.abs(per_class - f * np.array(counts)) < 1 + 1e-9)   # within rounding


def test_stratified_split_beats_plain_split_on_a_rare_class():
    labels = np.array([1] * 10 + [0] * 190)
    strat = train_val_test_split(np.arange(200), seed=0, stratify=labels)
    assert [int(labels[p].sum()) for p in strat] == [8, 1, 1]


def test_split_bad_input():
    with pytest.raises(TinyLMError, match="sum to 1, got \\[0.5, 0.1, 0.1\\]"):
        train_val_test_split(range(10), (0.5, 0.1, 0.1))
    with pytest.raises(TinyLMError, match=">= 0"):
        train_val_test_split(range(10), (1.2, -0.1, -0.1))
    with pytest.raises(ShapeError, match="three numbers"):
        train_val_test_split(range(10), (0.5, 0.5))
    with pytest.raises(TinyLMError, match="the validation part \\(fraction 0.1\\) of 5 items "
                                          "would be empty"):
        train_val_test_split(range(5))
    with pytest.raises(ShapeError, match="at least one item"):
        train_val_test_split([])
    with pytest.raises(ShapeError, match="one label per item"):
        train_val_test_split(range(10), stratify=[0, 1])


def test_random_windows_are_shifted_by_one_and_seeded():
    ids = {"train": np.arange(100), "val": np.arange(200, 250)}
    get_batch = random_windows(ids, block_size=8, batch_size=5)
    x, y = get_batch("train", np.random.default_rng(0))
    assert x.shape == y.shape == (5, 8)
    np.testing.assert_array_equal(y, x + 1)                 # ids are consecutive numbers
    np.testing.assert_array_equal(np.diff(x, axis=1), 1)    # each row is one window
    x2, _ = get_batch("train", np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)
    xv, _ = get_batch("val", np.random.default_rng(0))
    assert xv.min() >= 200 and xv.max() + 1 <= 249          # the target stays inside the split


def test_random_windows_bad_input():
    with pytest.raises(ShapeError, match="the val split has 5 tokens"):
        random_windows({"train": np.arange(100), "val": np.arange(5)}, 8, 2)
    get_batch = random_windows({"train": np.arange(100)}, 8, 2)
    with pytest.raises(TinyLMError, match="no split 'test'"):
        get_batch("test", np.random.default_rng(0))
