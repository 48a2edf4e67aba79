"""word2vec: the Numba step equals the autograd step, both modes learn, bad input, files, gensim."""
import numpy as np
import pytest

from tinylm.embeddings import KeyedVectors, VocabularyError, Word2Vec
from tinylm.embeddings import word2vec_autograd as wa
from tinylm.embeddings.word2vec import alias_table, keep_probability
from tinylm.errors import TinyLMError
from tinylm.kernels import word2vec_cpu
from tinylm.tensor import Tensor


def topic_corpus(n_sentences=400, seed=0):
    """Sentences drawn from one of two topics: words of a topic occur together, never mixed."""
    rng = np.random.default_rng(seed)
    topics = [[f"a{i}" for i in range(8)], [f"b{i}" for i in range(8)]]
    return [list(rng.choice(topics[s % 2], size=8)) for s in range(n_sentences)]


def within_minus_across(wv):
    a = [f"a{i}" for i in range(8)]
    b = [f"b{i}" for i in range(8)]
    within = np.mean([wv.similarity(x, y) for x in a for y in a if x != y])
    across = np.mean([wv.similarity(x, y) for x in a for y in b])
    return within - across


def _tables(seed=0, V=12, d=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((V, d)) * 0.5, rng.standard_normal((V, d)) * 0.5


@pytest.mark.parametrize("mode", ["sg", "cbow"])
def test_kernel_step_equals_autograd_step(mode):
    """One SGD step of the Numba kernel = -alpha x the autograd gradient of the C9 loss."""
    syn0, syn1 = _tables()
    center, context, contexts, negatives = 3, 5, np.array([1, 5, 7, 9]), np.array([0, 2, 8])
    alpha = 0.05
    W_in, W_out = Tensor(syn0.copy(), requires_grad=True), Tensor(syn1.copy(), requires_grad=True)
    if mode == "sg":
        loss = wa.sg_negative_sampling_loss(W_in, W_out, center, context, negatives)
    else:
        loss = wa.cbow_negative_sampling_loss(W_in, W_out, center, contexts, negatives)
    loss.backward()
    k0, k1 = syn0.copy(), syn1.copy()
    if mode == "sg":
        k_loss = word2vec_cpu.sg_step(k0, k1, center, context, negatives, alpha)
        expected_in = syn0 - alpha * W_in.grad
    else:
        k_loss = word2vec_cpu.cbow_step(k0, k1, center, contexts, negatives, alpha)
        # word2vec.c / gensim: each context vector gets the whole dL/dh step, and
        # dL/dv_j = dL/dh / count, so the step is count x the gradient
        expected_in = syn0 - alpha * len(contexts) * W_in.grad
    assert k_loss == pytest.approx(float(loss.data), rel=1e-12)
    np.testing.assert_allclose(k1, syn1 - alpha * W_out.grad, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(k0, expected_in, rtol=1e-12, atol=1e-14)
    assert not np.allclose(k0, syn0) and not np.allclose(k1, syn1)


def test_negative_sampling_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    h, u, un = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal((3, 4))
    H = Tensor(h.copy(), requires_grad=True)
    wa.negative_sampling_loss(H, Tensor(u), Tensor(un)).backward()
    sig = lambda x: 1 / (1 + np.exp(-x))
    f = lambda hh: -np.log(sig(u @ hh)) - np.log(sig(-un @ hh)).sum()
    eps = 1e-6
    numeric = np.array([(f(h + eps * e) - f(h - eps * e)) / (2 * eps) for e in np.eye(4)])
    hand = (sig(u @ h) - 1) * u + (sig(un @ h)[:, None] * un).sum(axis=0)
    np.testing.assert_allclose(H.grad, numeric, rtol=1e-6)
    np.testing.assert_allclose(H.grad, hand, rtol=1e-12)


@pytest.mark.parametrize("sg", [1, 0])
def test_negative_sampling_learns_topics(sg):
    model = Word2Vec(topic_corpus(), vector_size=16, window=3, min_count=1, sample=0, sg=sg,
                     negative=5, epochs=5, workers=1, seed=3, compute_loss=True)
    assert within_minus_across(model.wv) > 0.3
    assert model.wv.most_similar("a0", topn=3)[0][0].startswith("a")
    assert model.loss_history[-1] < model.loss_history[0]


@pytest.mark.parametrize("sg", [1, 0])
def test_full_softmax_learns_topics(sg):
    model = Word2Vec(topic_corpus(200), vector_size=8, window=3, min_count=1, sample=0, sg=sg,
                     negative=0, epochs=3, workers=1, seed=2, alpha=0.05)
    assert model.loss_history[-1] < model.loss_history[0]
    assert model.loss_history[0] < np.log(16) + 0.1         # below uniform guessing at once
    assert within_minus_across(model.wv) > 0.3


def test_same_seed_same_vectors_with_one_worker():
    sents = topic_corpus(100)
    kw = dict(vector_size=8, min_count=1, epochs=2, workers=1, sg=1)
    a, b = Word2Vec(sents, seed=5, **kw), Word2Vec(sents, seed=5, **kw)
    c = Word2Vec(sents, seed=6, **kw)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    assert not np.array_equal(a.wv.vectors, c.wv.vectors)


def test_vocabulary_and_tables():
    sents = [["the", "cat", "the", "dog", "the", "cat"]] * 3 + [["a"]]
    model = Word2Vec(vector_size=4, min_count=2, sample=0.1).build_vocab(sents)
    assert model.wv.index_to_key == ["the", "cat", "dog"] and "a" not in model.wv
    assert list(model.wv.counts) == [9, 6, 3]
    expected = [keep_probability(c, 0.1, 18) for c in (9, 6, 3)]
    np.testing.assert_allclose(model.keep_prob, expected)
    # negatives: the table's steps are count^0.75 / sum count^0.75
    p = np.diff(np.r_[0, model.cum_table]) / model.cum_table[-1]
    np.testing.assert_allclose(p, np.array([9, 6, 3]) ** 0.75 / (np.array([9, 6, 3]) ** 0.75).sum(),
                               rtol=1e-6)
    draws, state = [], np.uint64(7)
    for _ in range(20000):
        t, state = word2vec_cpu._sample_negative(model.alias_threshold, model.alias_index,
                                                 state)
        draws.append(t)
    np.testing.assert_allclose(np.bincount(draws) / len(draws), p, atol=0.02)
    capped = Word2Vec(vector_size=4, min_count=1, max_final_vocab=2).build_vocab(sents)
    assert capped.wv.index_to_key == ["the", "cat"] and capped.effective_min_count == 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alias_table_gives_the_distribution_exactly(seed):
    p = np.random.default_rng(seed).random(50) ** 3
    p /= p.sum()
    threshold, alias = alias_table(p)
    # column k yields k with probability t_k and alias[k] otherwise, each column with 1/V
    keep = threshold / 2.0 ** 32
    implied = np.bincount(np.arange(50), weights=keep, minlength=50) + \
        np.bincount(alias, weights=1 - keep, minlength=50)
    np.testing.assert_allclose(implied / 50, p, atol=1e-9)


def test_bad_input():
    with pytest.raises(TinyLMError, match="corpus is empty"):
        Word2Vec([], min_count=1)
    with pytest.raises(TinyLMError, match="corpus is empty"):
        Word2Vec([[], []], min_count=1)
    with pytest.raises(TinyLMError, match="min_count=5 leaves no word .*'b'.* 2 times"):
        Word2Vec([["a", "b", "b"]], min_count=5)
    with pytest.raises(TinyLMError, match="sentence 0 is a string"):
        Word2Vec(["a sentence as one string"], min_count=1)
    with pytest.raises(TinyLMError, match="hierarchical softmax"):
        Word2Vec(hs=1)
    with pytest.raises(TinyLMError, match="window must be an integer >= 1, got 0"):
        Word2Vec(window=0)
    model = Word2Vec(topic_corpus(20), vector_size=4, min_count=1, epochs=1, workers=1)
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary \\(16 words\\)"):
        model.wv["zebra"]
    with pytest.raises(VocabularyError):
        model.wv.most_similar("zebra")
    with pytest.raises(TinyLMError, match="none of the 2 words"):
        model.train([["zebra", "yak"]])
    with pytest.raises(TinyLMError, match="build_vocab"):
        Word2Vec().train(topic_corpus(5))


def test_save_and_load(tmp_path):
    model = Word2Vec(topic_corpus(50), vector_size=6, min_count=1, epochs=1, workers=1, sg=1)
    model.save(tmp_path / "w2v.npz")
    back = Word2Vec.load(tmp_path / "w2v.npz")
    assert back.sg == 1 and back.vector_size == 6 and back.sample == model.sample
    np.testing.assert_array_equal(back.wv.vectors, model.wv.vectors)
    np.testing.assert_array_equal(back.syn1neg, model.syn1neg)
    back.train(topic_corpus(10), epochs=1)                   # it can go on training
    model.wv.save_word2vec_format(tmp_path / "w2v.txt")
    kv = KeyedVectors.load_word2vec_format(tmp_path / "w2v.txt")
    np.testing.assert_array_equal(kv.vectors, model.wv.vectors)
    with pytest.raises(TinyLMError, match="not a saved tinylm Word2Vec"):
        model.wv.save(tmp_path / "kv.npz")
        Word2Vec.load(tmp_path / "kv.npz")


def test_vocabulary_and_subsampling_match_gensim():
    gensim = pytest.importorskip("gensim")
    sents = topic_corpus(50) + [["rare", "a1", "word"]]
    ours = Word2Vec(vector_size=4, min_count=2, sample=1e-2).build_vocab(sents)
    theirs = gensim.models.Word2Vec(vector_size=4, min_count=2, sample=1e-2)
    theirs.build_vocab(sents)
    assert ours.wv.index_to_key == theirs.wv.index_to_key
    their_ints = [theirs.wv.get_vecattr(w, "sample_int") for w in theirs.wv.index_to_key]
    np.testing.assert_allclose(ours.sample_ints, their_ints, rtol=1e-9)
    their_cum = theirs.cum_table.astype(np.int64)
    np.testing.assert_allclose(ours.cum_table, their_cum, rtol=1e-6)


def test_quality_close_to_gensim_on_a_small_corpus():
    gensim = pytest.importorskip("gensim")
    sents = topic_corpus(600, seed=4)
    kw = dict(vector_size=16, window=3, min_count=1, sample=0, negative=5, epochs=3, sg=1,
              seed=1, workers=1)
    ours = Word2Vec(sents, **kw)
    theirs = gensim.models.Word2Vec(sents, **kw)
    assert within_minus_across(ours.wv) > 0.5 * within_minus_across(theirs.wv) > 0
