"""tinylm.metrics against hand-computed values (and scikit-learn / NLTK when installed)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylm import ShapeError, TinyLMError
from tinylm.metrics import (accuracy, confusion_matrix, corpus_bleu, perplexity,
                            precision_recall_f1)

Y_TRUE = [1, 0, 1, 1, 0, 1, 0, 0]
Y_PRED = [1, 0, 0, 1, 1, 1, 0, 0]          # TP 3, FN 1, FP 1, TN 3


def test_binary_counts_by_hand():
    assert accuracy(Y_TRUE, Y_PRED) == 6 / 8
    np.testing.assert_array_equal(confusion_matrix(Y_TRUE, Y_PRED), [[3, 1], [1, 3]])
    p, r, f = precision_recall_f1(Y_TRUE, Y_PRED)
    assert (p, r, f) == (0.75, 0.75, 0.75)
    p0, r0, f0 = precision_recall_f1(Y_TRUE, Y_PRED, pos_label=0)
    assert (p0, r0) == (0.75, 0.75)


def test_macro_and_per_class_three_classes():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 0]
    p, r, f = precision_recall_f1(y_true, y_pred, average=None)
    np.testing.assert_allclose(p, [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(r, [1 / 2, 1.0, 1 / 3])
    np.testing.assert_allclose(f, [0.4, 0.8, 0.5])
    assert precision_recall_f1(y_true, y_pred, average="macro") == pytest.approx(
        (p.mean(), r.mean(), f.mean()))


def test_zero_division_is_zero_not_nan():
    p, r, f = precision_recall_f1([0, 0, 0], [0, 0, 0])       # no positive anywhere
    assert (p, r, f) == (0.0, 0.0, 0.0)
    p, r, f = precision_recall_f1([1, 0], [0, 0], average=None, num_classes=3)
    assert not np.isnan(np.concatenate([p, r, f])).any()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_micro_f1_is_accuracy_and_matrix_sums(pairs):
    y_true, y_pred = np.array(pairs).T
    m = confusion_matrix(y_true, y_pred)
    assert m.sum() == len(pairs) and np.trace(m) == np.sum(y_true == y_pred)
    assert precision_recall_f1(y_true, y_pred, average="micro")[2] == pytest.approx(
        accuracy(y_true, y_pred))


def test_against_scikit_learn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    for average in ("macro", "micro"):
        ours = precision_recall_f1(y_true, y_pred, average=average)
        theirs = sk.precision_recall_fscore_support(y_true, y_pred, average=average,
                                                    zero_division=0)[:3]
        np.testing.assert_allclose(ours, theirs)


def test_classification_bad_input():
    with pytest.raises(ShapeError, match="3 labels, y_pred has 2"):
        accuracy([1, 0, 1], [1, 0])
    with pytest.raises(TinyLMError, match="empty"):
        accuracy([], [])
    with pytest.raises(TinyLMError, match="integer labels"):
        confusion_matrix([0.5, 1.0], [0, 1])
    with pytest.raises(TinyLMError, match="needs 2 classes"):
        precision_recall_f1([0, 1, 2], [0, 1, 2])
    with pytest.raises(TinyLMError, match="average must be"):
        precision_recall_f1([0, 1], [0, 1], average="weighted")
    with pytest.raises(TinyLMError, match="num_classes=2"):
        confusion_matrix([0, 2], [0, 1], num_classes=2)


def test_perplexity_e1():
    assert perplexity(math.log(7)) == pytest.approx(7.0)          # uniform over 7 tokens
    probs = np.array([0.5, 0.25, 0.125])
    assert perplexity(-np.log(probs).mean()) == pytest.approx(1 / probs.prod() ** (1 / 3))
    for bad in (float("nan"), -0.1, float("inf")):
        with pytest.raises(TinyLMError, match="finite and >= 0"):
            perplexity(bad)


def test_bleu_by_hand():
    ref = "the cat is on the mat".split()
    assert corpus_bleu([ref], [ref]) == pytest.approx(1.0)
    # Papineni's example: 7 x "the" against a reference with two "the": p1 = 2/7
    assert corpus_bleu(["the the the the the the the".split()], [[ref]], max_n=1) == \
        pytest.approx(2 / 7)
    # a short, correct hypothesis: p1 = p2 = 1 and brevity penalty exp(1 - 6/2)
    assert corpus_bleu([["the", "cat"]], [ref], max_n=2) == pytest.approx(math.exp(-2))
    # the reference closest in length counts for the brevity penalty
    assert corpus_bleu([["the", "cat"]], [[ref, ["the", "cat", "is"]]], max_n=2) == \
        pytest.approx(math.exp(1 - 3 / 2))
    assert corpus_bleu([["a", "b"]], [["c", "d"]]) == 0.0
    assert corpus_bleu([["the", "cat", "sat"]], [["the", "cat", "is"]], smooth=True) > 0


def test_bleu_is_pooled_over_the_corpus_not_averaged():
    hyps = [["a", "b", "c", "d"], ["x", "y", "z", "w"]]
    refs = [["a", "b", "c", "d"], ["x", "y", "q", "w"]]
    # p_n pooled: p1 = 7/8, p2 = 4/6, p3 = 2/4, p4 = 1/2
    expected = math.exp(np.mean(np.log([7 / 8, 4 / 6, 2 / 4, 1 / 2])))
    assert corpus_bleu(hyps, refs) == pytest.approx(expected)


def test_bleu_against_nltk(rng):
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    words = list("abcdefgh")
    hyps = [list(rng.choice(words, rng.integers(5, 12))) for _ in range(30)]
    refs = [[list(rng.choice(words, rng.integers(5, 12))) for _ in range(2)] for _ in range(30)]
    assert corpus_bleu(hyps, refs) == pytest.approx(nltk_bleu.corpus_bleu(refs, hyps))


def test_bleu_bad_input():
    with pytest.raises(ShapeError, match="2 hypotheses but 1"):
        corpus_bleu([["a"], ["b"]], [["a"]])
    with pytest.raises(TinyLMError, match="token lists"):
        corpus_bleu(["the cat"], ["the cat"])
    with pytest.raises(TinyLMError, match="no sentences"):
        corpus_bleu([], [])
