"""GloVe (C10, standard form): co-occurrence counts against plain Python, the objective's hand
gradient against finite differences and tinylm autograd, the Numba epoch against the NumPy
reference, determinism, training, files, and bad input."""
from collections import defaultdict

import numpy as np
import pytest

from tinylm import functional as F
from tinylm.embeddings.glove import (GloVe, adagrad_epoch_reference, co_occurrence, encode,
                                     objective_and_gradients, weighting)
from tinylm.embeddings.keyed_vectors import KeyedVectors
from tinylm.errors import TinyLMError
from tinylm.kernels import glove_cpu
from tinylm.tensor import Tensor

WORDS = "the cat sat on a mat while the dog ate a bone near the cat".split()


def toy_corpus(n_sentences=60, seed=0):
    """Sentences of random length over a small vocabulary (some of length 0 and 1)."""
    rng = np.random.default_rng(seed)
    return [list(rng.choice(WORDS, size=rng.integers(0, 12))) for _ in range(n_sentences)]


def python_cooccurrence(sentences, index, window, symmetric):
    """Reference counts in plain Python, following GloVe's cooccur.c literally."""
    X = defaultdict(float)
    for sentence in sentences:
        ids = [index[w] for w in sentence if w in index]
        for q, word in enumerate(ids):
            for p in range(max(0, q - window), q):
                X[word, ids[p]] += 1.0 / (q - p)
                if symmetric:
                    X[ids[p], word] += 1.0 / (q - p)
    return X


def small_problem(V=6, d=3, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(rng.random((V, V)) < 0.6)
    x = rng.uniform(0.3, 150.0, len(rows))          # some entries above x_max = 100
    params = [rng.normal(0, 0.3, (V, d)), rng.normal(0, 0.3, (V, d)), rng.normal(0, 0.3, V),
              rng.normal(0, 0.3, V)]
    return params, rows.astype(np.int32), cols.astype(np.int32), x


# --- counting -------------------------------------------------------------------------------
@pytest.mark.parametrize("window,symmetric", [(1, True), (3, True), (3, False), (20, True)])
def test_cooccurrence_matches_plain_python(window, symmetric):
    sentences = toy_corpus()
    index = {w: i for i, w in enumerate(sorted(set(WORDS) - {"a"}))}   # "a" is dropped first
    ids, offsets = encode(sentences, index)
    rows, cols, vals = co_occurrence(ids, offsets, len(index), window, symmetric)
    ref = python_cooccurrence(sentences, index, window, symmetric)
    assert len(vals) == len(ref)
    got = {(int(i), int(j)): v for i, j, v in zip(rows, cols, vals)}
    assert got.keys() == ref.keys()
    for key, v in ref.items():
        assert got[key] == pytest.approx(v, rel=1e-12)
    keys = rows.astype(np.int64) * len(index) + cols
    assert np.all(np.diff(keys) > 0)                   # sorted by (row, col), no duplicates
    if symmetric:
        dense = np.zeros((len(index),) * 2)
        dense[rows, cols] = vals
        np.testing.assert_allclose(dense, dense.T, rtol=1e-12)


def test_cooccurrence_chunking_does_not_change_the_counts():
    sentences = toy_corpus(200, seed=3)
    index = {w: i for i, w in enumerate(sorted(set(WORDS)))}
    ids, offsets = encode(sentences, index)
    whole = co_occurrence(ids, offsets, len(index), 5)
    chunked = co_occurrence(ids, offsets, len(index), 5, pairs_per_chunk=7)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_weighting_is_the_papers_f():
    x = np.array([0.5, 1.0, 50.0, 99.9, 100.0, 1e4])
    expected = [(0.5 / 100) ** 0.75, 0.01 ** 0.75, 0.5 ** 0.75, 0.999 ** 0.75, 1.0, 1.0]
    np.testing.assert_allclose(weighting(x, 100.0, 0.75), expected, rtol=1e-12)


# --- objective and gradient -----------------------------------------------------------------
def test_objective_hand_gradient_equals_finite_differences_and_autograd():
    params, rows, cols, x = small_problem()
    J, *grads = objective_and_gradients(*params, rows, cols, x)
    # finite differences, one coordinate at a time
    eps = 1e-6
    for p, g in zip(params, grads):
        num = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = objective_and_gradients(*params, rows, cols, x)[0]
            p[idx] = old - eps
            down = objective_and_gradients(*params, rows, cols, x)[0]
            p[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)
    # tinylm autograd on the same formula
    W, Wc, b, bc = (Tensor(p.copy().reshape(p.shape[0], -1), requires_grad=True)
                    for p in params)
    f, logx = Tensor(weighting(x)), Tensor(np.log(x))
    d = ((F.embedding(rows, W) * F.embedding(cols, Wc)).sum(axis=1)
         + F.embedding(rows, b)[:, 0] + F.embedding(cols, bc)[:, 0] - logx)
    loss = (f * d * d).sum()
    loss.backward()
    assert float(loss.data) == pytest.approx(J, rel=1e-12)
    for t, g in zip((W, Wc, b, bc), grads):
        np.testing.assert_allclose(t.grad.reshape(g.shape), g, rtol=1e-10, atol=1e-12)


def test_objective_is_zero_at_an_exact_fit():
    # choose the biases so that w_i.w~_j + b_i + b~_j = log X_ij exactly for a rank-1 X
    V = 4
    u = np.array([1.0, 2.0, 3.0, 4.0])
    rows, cols = np.nonzero(np.ones((V, V)))
    x = np.exp(u[rows] + u[cols])
    W, Wc = np.zeros((V, 2)), np.zeros((V, 2))
    J, dW, dWc, db, dbc = objective_and_gradients(W, Wc, u.copy(), u.copy(), rows, cols, x)
    assert J == pytest.approx(0.0, abs=1e-20)
    assert np.abs(db).max() < 1e-12


# --- the epoch ------------------------------------------------------------------------------
def test_numba_epoch_equals_numpy_reference():
    params, rows, cols, x = small_problem(V=7, d=4, seed=1)
    ref_params = [p.copy() for p in params]
    acc = [np.ones_like(p) for p in params]
    ref_acc = [a.copy() for a in acc]
    order = np.random.default_rng(5).permutation(len(x))
    for _ in range(3):
        loss = glove_cpu.train_epoch(rows, cols, np.log(x), weighting(x), order, 1, *params,
                                     *acc, 0.05).sum()
        ref_loss = adagrad_epoch_reference(ref_params, ref_acc, rows, cols, x, order, 0.05)
        assert loss == pytest.approx(ref_loss, rel=1e-12)
    for a, b in zip(params + acc, ref_params + ref_acc):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_first_adagrad_step_is_eta_times_the_half_gradient():
    # accumulators start at 1, so the first step of every parameter is eta * g with
    # g = (1/2) dJ_e/dtheta (glove.c's convention)
    params, rows, cols, x = small_problem(seed=2)
    e = np.array([0])
    before = [p.copy() for p in params]
    _, *grads = objective_and_gradients(*before, rows[e], cols[e], x[e])
    acc = [np.ones_like(p) for p in params]
    glove_cpu.train_epoch(rows, cols, np.log(x), weighting(x), e, 1, *params, *acc, 0.1)
    for p, p0, g in zip(params, before, grads):
        np.testing.assert_allclose(p, p0 - 0.1 * g / 2, rtol=1e-12, atol=1e-15)


# --- the model ------------------------------------------------------------------------------
def test_same_seed_same_vectors_with_one_worker():
    sentences = toy_corpus(80)
    kw = dict(vector_size=8, window=3, min_count=1, epochs=5, workers=1)
    a, b = GloVe(sentences, seed=4, **kw), GloVe(sentences, seed=4, **kw)
    c = GloVe(sentences, seed=5, **kw)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    assert a.loss_history == b.loss_history
    assert not np.allclose(a.wv.vectors, c.wv.vectors)


@pytest.mark.parametrize("workers", [1, 2])
def test_training_lowers_the_objective(workers):
    sentences = toy_corpus(150, seed=7)
    model = GloVe(sentences, vector_size=10, window=4, min_count=1, epochs=30,
                  workers=workers, seed=0, learning_rate=0.1)
    hist = model.loss_history
    assert len(hist) == 30 and hist[-1] < 0.5 * hist[0]
    assert model.objective() < hist[0]
    np.testing.assert_allclose(model.wv.vectors, (model.W + model.Wc).astype(np.float32))
    assert isinstance(model.wv, KeyedVectors) and model.wv.index_to_key[0] == "the"


def test_save_and_load_round_trip(tmp_path):
    model = GloVe(toy_corpus(), vector_size=5, window=2, min_count=1, epochs=2, workers=1)
    model.save(tmp_path / "g.npz")
    back = GloVe.load(tmp_path / "g.npz")
    np.testing.assert_array_equal(back.wv.vectors, model.wv.vectors)
    assert back.wv.index_to_key == model.wv.index_to_key
    assert back.loss_history == model.loss_history and back.window == 2
    # training goes on from the same state (vectors, accumulators, random generator)
    model.train(1)
    back.train(1)
    np.testing.assert_array_equal(back.wv.vectors, model.wv.vectors)


# --- bad input ------------------------------------------------------------------------------
def test_empty_corpus_is_refused():
    with pytest.raises(TinyLMError, match="empty"):
        GloVe([], min_count=1)
    with pytest.raises(TinyLMError, match="empty"):
        GloVe([[], []], min_count=1)


def test_min_count_that_leaves_nothing_is_refused():
    with pytest.raises(TinyLMError, match="min_count=50"):
        GloVe(toy_corpus(10), min_count=50)


def test_no_pairs_within_the_window_is_refused():
    with pytest.raises(TinyLMError, match="window"):
        GloVe([["a"], ["b"], ["a"]], min_count=1)


def test_unknown_word_raises_a_key_error():
    model = GloVe(toy_corpus(), vector_size=4, min_count=1, epochs=1, workers=1)
    with pytest.raises(KeyError, match="zebra"):
        model.wv["zebra"]
    with pytest.raises(TinyLMError, match="zebra"):
        model.wv.most_similar("zebra")


@pytest.mark.parametrize("kwargs", [dict(vector_size=0), dict(window=-1), dict(epochs=1.5),
                                    dict(x_max=0), dict(alpha=float("nan")),
                                    dict(learning_rate=-1), dict(max_vocab=0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(TinyLMError):
        GloVe(toy_corpus(), **kwargs)


def test_strings_instead_of_token_lists_are_refused():
    with pytest.raises(TinyLMError, match="string"):
        GloVe(["the cat sat", "on the mat"], min_count=1)


def test_load_of_a_missing_file_is_refused(tmp_path):
    with pytest.raises(TinyLMError):
        GloVe.load(tmp_path / "nothing.npz")
