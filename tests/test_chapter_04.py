"""Chapter 04 (the text pipeline: A2, A4, B1, C14, E2 step 2): it runs end to end with
``--quick``, and its tools are tested directly."""
from collections import Counter

import numpy as np
import pytest

from tinylm.text import Vocab

from chapter_tools import assert_chapter_passes, load_definitions


@pytest.fixture(scope="module")
def ch04():
    return load_definitions("04_text_pipeline.py")


@pytest.mark.ch04
def test_chapter_04_runs(tmp_path):
    out = assert_chapter_passes("04_text_pipeline.py", tmp_path,
                                ["04_zipf.png", "04_bpe_compression.png"])
    assert "Zipf exponent close to 1" in out
    assert "BPE round-trips Chinese and emoji exactly" in out


@pytest.mark.ch04
def test_zipf_fit_recovers_the_exponent(ch04):
    ranks = np.arange(1, 5001)
    for s in (0.8, 1.0, 1.2):
        s_hat, C_hat = ch04.zipf_fit(np.round(1e7 / ranks ** s), lo=1, hi=5000)
        assert s_hat == pytest.approx(s, abs=0.01) and C_hat == pytest.approx(1e7, rel=0.05)


@pytest.mark.ch04
def test_c14_coverage_is_one_minus_the_unk_rate(ch04):
    sentences = [["a", "a", "b"], ["c", "a", "d"]]
    vocab = Vocab(Counter(t for s in sentences for t in s), max_size=5)
    assert vocab.itos[4:] == ["a"]
    assert ch04.coverage(vocab, sentences) == pytest.approx(3 / 6)
    unk = sum(int(i == vocab.unk_id) for s in sentences for i in vocab.encode(s))
    assert ch04.coverage(vocab, sentences) == pytest.approx(1 - unk / 6)


@pytest.mark.ch04
def test_a4_split_is_a_seeded_partition(ch04):
    train, val, test = ch04.split_by_hand(103, (0.8, 0.1, 0.1), seed=3)
    assert (len(train), len(val), len(test)) == (83, 10, 10)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(103))
    again = ch04.split_by_hand(103, (0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test)))
    other = ch04.split_by_hand(103, (0.8, 0.1, 0.1), seed=4)
    assert not np.array_equal(other[0], train)


@pytest.mark.ch04
def test_e2_blocks_shift_targets_by_one(ch04):
    ids = np.arange(23)
    x, y = ch04.blocks_by_hand(ids, 5)
    assert x.shape == y.shape == (4, 5)
    np.testing.assert_array_equal(x[1], [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(y, x + 1)
    x1, y1 = ch04.blocks_by_hand(np.arange(6), 5)                 # exactly one block fits
    assert x1.shape == (1, 5) and y1[0, -1] == 5


@pytest.mark.ch04
def test_stream_with_eos_ends_every_sentence(ch04):
    vocab = Vocab.build([["a", "b"], ["c"]])
    stream = ch04.stream_with_eos(vocab, [["a", "b"], ["c", "zebra"]])
    assert vocab.decode(stream) == ["a", "b", "<eos>", "c", "<unk>", "<eos>"]


@pytest.mark.ch04
def test_cleaning_steps_are_cumulative(ch04):
    from tinylm.text import clean
    text = "The 2 Cats, and THE dog."
    results = [clean(text, **opts) for _, opts in ch04.CLEANING_STEPS]
    assert results == ["The 2 Cats, and THE dog.", "the 2 cats, and the dog.",
                       "the cats, and the dog.", "the cats and the dog", "cats dog"]
