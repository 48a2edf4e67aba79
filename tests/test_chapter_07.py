"""Chapter 07 (GloVe, C10 as written, B6's TF-IDF + NMF): it runs end to end with ``--quick``,
and its own tools (the plain-Python count, the autograd objective, PPMI and the held-out
similarity set, the neighbour overlap) are tested here directly."""
import numpy as np
import pytest

from tinylm.embeddings.glove import co_occurrence, encode, objective_and_gradients
from tinylm.embeddings.keyed_vectors import KeyedVectors

from chapter_tools import assert_chapter_passes, load_definitions

FIGURES = ["07_glove_training.png", "07_glove_map.png", "07_similarity.png"]


@pytest.fixture(scope="module")
def ch07():
    return load_definitions("07_glove.py")


@pytest.mark.ch07
def test_chapter_07_runs(tmp_path):
    out = assert_chapter_passes("07_glove.py", tmp_path, FIGURES)
    assert "two words of equal count get identical C10 rows" in out
    assert "compiled counts == plain-Python counts" in out
    assert "3 epochs: kernel parameters == reference parameters" in out
    assert "GloVe beats C10 as written on the held-out similarity set" in out


@pytest.mark.ch07
def test_python_cooccurrence_by_hand(ch07):
    # "a b a", window 2: (b,a) at distance 1 twice, (a,a) at distance 2, symmetric
    X = ch07.python_cooccurrence([["a", "b", "a"]], {"a": 0, "b": 1}, window=2)
    assert X == {(1, 0): 2.0, (0, 1): 2.0, (0, 0): 1.0}
    left = ch07.python_cooccurrence([["a", "b", "a"]], {"a": 0, "b": 1}, 2, symmetric=False)
    assert left == {(1, 0): 1.0, (0, 1): 1.0, (0, 0): 0.5}


@pytest.mark.ch07
def test_autograd_objective_matches_the_library(ch07):
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero(rng.random((5, 5)) < 0.7)
    x = rng.uniform(0.5, 120, len(rows))
    params = [rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), rng.normal(size=5),
              rng.normal(size=5)]
    J, *grads = objective_and_gradients(*params, rows, cols, x)
    J_auto, grads_auto = ch07.autograd_objective(*params, rows, cols, x)
    assert J_auto == pytest.approx(J, rel=1e-12)
    for a, b in zip(grads, grads_auto):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.ch07
def test_ppmi_is_positive_pmi_of_the_counts(ch07):
    sentences = [["a", "b", "c"], ["a", "b"], ["c", "d", "c"]]
    index = {w: i for i, w in enumerate("abcd")}
    P = ch07.ppmi_vectors(sentences, index, window=2)
    rows, cols, x = co_occurrence(*encode(sentences, index), 4, 2)
    X = np.zeros((4, 4))
    X[rows, cols] = x
    with np.errstate(divide="ignore"):
        pmi = np.log(X * X.sum() / np.outer(X.sum(1), X.sum(0)))
    np.testing.assert_allclose(P, np.where(X > 0, np.maximum(pmi, 0), 0), rtol=1e-12)


@pytest.mark.ch07
def test_heldout_pairs_are_distinct_seeded_and_scored_by_cosine(ch07):
    rng = np.random.default_rng(1)
    P = rng.random((12, 12))
    words = [f"w{i}" for i in range(12)]
    pairs = ch07.heldout_pairs(P, words, np.arange(12), 20, seed=3)
    assert pairs == ch07.heldout_pairs(P, words, np.arange(12), 20, seed=3)
    assert len({(a, b) for a, b, _ in pairs}) == 20 and all(a != b for a, b, _ in pairs)
    a, b, s = pairs[0]
    pa, pb = P[int(a[1:])], P[int(b[1:])]
    assert s == pytest.approx(pa @ pb / (np.linalg.norm(pa) * np.linalg.norm(pb)))


@pytest.mark.ch07
def test_neighbour_overlap_is_one_for_the_reference_itself_and_low_for_noise(ch07):
    rng = np.random.default_rng(2)
    P = rng.random((40, 40)) ** 4
    words = [f"w{i}" for i in range(40)]
    same = KeyedVectors(words, P)
    noise = KeyedVectors(words, rng.normal(size=(40, 8)))
    assert ch07.neighbour_overlap(same, P, words, range(10), topn=5) == 1.0
    assert ch07.neighbour_overlap(noise, P, words, range(10), topn=5) < 0.6


@pytest.mark.ch07
def test_write_pairs_reads_back_in_evaluate_word_pairs(ch07, tmp_path):
    words = ["aa", "bb", "cc", "dd"]
    kv = KeyedVectors(words, np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.5, 0.5]]))
    pairs = [("aa", "bb", 0.9), ("aa", "cc", 0.1), ("bb", "dd", 0.5), ("cc", "dd", 0.4)]
    ch07.write_pairs(pairs, tmp_path / "p.tsv")
    _, spearman, oov = kv.evaluate_word_pairs(tmp_path / "p.tsv")
    assert oov == 0 and spearman.statistic == pytest.approx(1.0)
