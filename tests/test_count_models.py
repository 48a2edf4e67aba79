"""The documents' two "GloVe"s: C10 as written (a function of two frequencies only) and B6's
TF-IDF + NMF, with NMF by Lee & Seung's multiplicative updates written in NumPy."""
import numpy as np
import pytest

from tinylm.embeddings.count_models import (SparseMatrix, c10_as_written, c10_matrix, nmf,
                                            tfidf)
from tinylm.errors import ShapeError, TinyLMError

DOCS = [["this", "sample", "sentence"], ["sentence", "contains", "sample", "data"],
        ["another", "sample", "sentence", "sample", "data"], ["unknown", "words", "only"]]
INDEX = {"sample": 0, "sentence": 1, "contains": 2, "data": 3, "another": 4}


def test_c10_is_a_logistic_of_the_log_frequency_difference():
    f_w, f_c = np.array([1.0, 5.0, 0.2, 3.0]), np.array([1.0, 2.0, 0.7, 3.0])
    got = c10_as_written(f_w, f_c)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(np.log(f_w) - np.log(f_c)))), rtol=1e-12)
    np.testing.assert_allclose(got + c10_as_written(f_c, f_w), 1.0, rtol=1e-12)


def test_c10_rows_of_equally_frequent_words_are_identical():
    counts = np.array([50, 20, 20, 7, 3])
    M = c10_matrix(counts)
    np.testing.assert_array_equal(M[1], M[2])          # same count -> same "vector"
    np.testing.assert_allclose(M + M.T, 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.diag(M), 0.5)
    np.testing.assert_allclose(c10_matrix(counts * 10), M, rtol=1e-12)   # scale-free


def test_c10_bad_input():
    with pytest.raises(TinyLMError):
        c10_as_written([0.0], [0.0])
    with pytest.raises(ShapeError):
        c10_matrix(np.ones((2, 2)))


def test_tfidf_follows_the_formula():
    (rows, cols, vals), shape = tfidf(DOCS, INDEX)
    assert shape == (4, 5)
    X = SparseMatrix(rows, cols, vals, shape).toarray()
    n = 4
    df = np.array([3, 3, 1, 2, 1])
    idf = np.log((1 + n) / (1 + df)) + 1
    tf = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [2, 1, 0, 1, 1], [0, 0, 0, 0, 0]])
    raw = tf * idf
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    expected = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
    np.testing.assert_allclose(X, expected, rtol=1e-12)


def test_tfidf_equals_scikit_learn():
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    (rows, cols, vals), shape = tfidf(DOCS, INDEX)
    ours = SparseMatrix(rows, cols, vals, shape).toarray()
    theirs = sklearn_text.TfidfVectorizer(analyzer=lambda d: d, vocabulary=INDEX)
    np.testing.assert_allclose(ours, theirs.fit_transform(DOCS).toarray(), rtol=1e-12)


def test_tfidf_bad_input():
    with pytest.raises(TinyLMError, match="none of the"):
        tfidf([["x", "y"]], INDEX)
    with pytest.raises(TinyLMError, match="empty"):
        tfidf(DOCS, {})


def test_sparse_products_equal_dense():
    rng = np.random.default_rng(0)
    X = rng.random((9, 7)) * (rng.random((9, 7)) < 0.4)
    X[3] = 0                                           # an empty row
    S, B, C = SparseMatrix.from_dense(X), rng.normal(size=(7, 3)), rng.normal(size=(9, 2))
    np.testing.assert_allclose(S.dot(B), X @ B, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(S.t_dot(C), X.T @ C, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmf_error_never_increases_and_factors_stay_non_negative(seed):
    rng = np.random.default_rng(seed)
    X = rng.random((30, 20)) * (rng.random((30, 20)) < 0.5)
    A, H, errors = nmf(X, 5, iterations=150, seed=seed)
    assert np.all(np.diff(errors) <= 1e-10 * errors[0])      # Lee & Seung, Theorem 1
    assert errors[-1] < 0.7 * errors[0]
    assert A.min() >= 0 and H.min() >= 0
    assert errors[-1] == pytest.approx(np.linalg.norm(X - A @ H), rel=1e-9)


def test_nmf_recovers_an_exact_low_rank_product():
    rng = np.random.default_rng(3)
    X = rng.random((25, 3)) @ rng.random((3, 18))
    _, _, errors = nmf(X, 3, iterations=2000, seed=0)
    assert errors[-1] < 0.02 * errors[0]


def test_nmf_same_seed_same_factors():
    X = np.random.default_rng(4).random((10, 8))
    A1, H1, _ = nmf(X, 3, iterations=20, seed=7)
    A2, H2, _ = nmf(X, 3, iterations=20, seed=7)
    A3, _, _ = nmf(X, 3, iterations=20, seed=8)
    np.testing.assert_array_equal(A1, A2)
    np.testing.assert_array_equal(H1, H2)
    assert not np.allclose(A1, A3)


def test_nmf_bad_input():
    with pytest.raises(TinyLMError, match="non-negative"):
        nmf(-np.ones((3, 3)), 2)
    with pytest.raises(TinyLMError, match="k must be"):
        nmf(np.ones((3, 3)), 4)
    with pytest.raises(TinyLMError, match="all zeros"):
        nmf(np.zeros((3, 3)), 2)
    with pytest.raises(ShapeError):
        nmf(np.ones(3), 1)
