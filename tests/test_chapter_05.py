"""Chapter 05 (embeddings): it runs end to end with ``--quick``, and its lookups (A5, A10,
C5, E3), the three gradients of the lookup, the timing helper, coverage, padding share and
PCA are tested here directly."""
import numpy as np
import pytest

from tinylm import nn
from tinylm.embeddings import Word2Vec

from chapter_tools import assert_chapter_passes, load_definitions


@pytest.fixture(scope="module")
def ch05():
    return load_definitions("05_embeddings.py")


@pytest.mark.ch05
def test_chapter_05_runs(tmp_path):
    out = assert_chapter_passes("05_embeddings.py", tmp_path,
                                ["05_sparse_gradient.png", "05_word2vec_100_map.png"])
    assert "[PASS] nn.Embedding backward == np.add.at by hand" in out
    assert "[PASS] the padding row gets no gradient and stays the zero vector" in out
    assert "share of corpus tokens that are among the 100 words" in out


@pytest.mark.ch05
@pytest.mark.parametrize("seed", [0, 1])
def test_a5_one_hot_product_equals_c5_indexing_and_e3_layer(ch05, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(11, 3))
    ids = rng.integers(0, 11, (4, 6))
    emb = nn.Embedding(11, 3, dtype=np.float64)
    emb.weight.data[...] = W
    np.testing.assert_array_equal(ch05.lookup_as_matmul(ids, W), W[ids])
    np.testing.assert_array_equal(emb(ids).data, W[ids])
    assert ch05.one_hot(ids, 11).sum(axis=-1).tolist() == np.ones((4, 6)).tolist()


@pytest.mark.ch05
def test_a10_sum_over_the_vocabulary_selects_one_row(ch05):
    W = np.random.default_rng(2).normal(size=(9, 4))
    for x in range(9):
        np.testing.assert_array_equal(ch05.lookup_as_sum(x, W), W[x])


@pytest.mark.ch05
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_a10_gradient_three_ways_agree(ch05, padding_idx):
    rng = np.random.default_rng(3)
    V, d = 10, 4
    W = rng.normal(size=(V, d))
    ids = np.array([[0, 3, 3, 3], [7, 0, 9, 3]])          # repeats and a padding id 0
    G = rng.normal(size=ids.shape + (d,))
    g_layer = ch05.grad_by_embedding_layer(ids, W, G, padding_idx=padding_idx)
    g_hand = ch05.grad_by_scatter_add(ids, G, V, padding_idx=padding_idx)
    np.testing.assert_allclose(g_layer, g_hand, rtol=0, atol=1e-12)
    g_auto = ch05.grad_by_one_hot_autograd(ids, W, G)
    if padding_idx is None:
        np.testing.assert_allclose(g_auto, g_hand, rtol=0, atol=1e-12)
    else:   # the one-hot product knows no padding: it differs only in the padding row
        np.testing.assert_allclose(np.delete(g_auto, 0, 0), np.delete(g_hand, 0, 0), atol=1e-12)
        assert np.all(g_hand[0] == 0) and np.any(g_auto[0] != 0)
    np.testing.assert_allclose(g_hand[3], G[0, 1] + G[0, 2] + G[0, 3] + G[1, 3], atol=1e-12)


@pytest.mark.ch05
def test_a10_gradient_equals_finite_differences(ch05):
    rng = np.random.default_rng(4)
    V, d = 6, 3
    W, ids = rng.normal(size=(V, d)), np.array([1, 4, 1, 5])
    G = rng.normal(size=(4, d))
    loss = lambda w: float((ch05.lookup_as_matmul(ids, w) * G).sum())
    num = np.zeros_like(W)
    for i in np.ndindex(W.shape):
        up, down = W.copy(), W.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        num[i] = (loss(up) - loss(down)) / 2e-6
    np.testing.assert_allclose(ch05.grad_by_scatter_add(ids, G, V), num, rtol=1e-6, atol=1e-8)


@pytest.mark.ch05
def test_a10_only_rows_of_batch_words_are_non_zero(ch05):
    rng = np.random.default_rng(5)
    V = 1000
    ids = rng.integers(0, V, (8, 20))
    g = ch05.grad_by_scatter_add(ids, rng.normal(size=(8, 20, 5)), V)
    assert np.array_equal(np.flatnonzero(np.abs(g).sum(axis=1)), np.unique(ids))


@pytest.mark.ch05
def test_fancy_index_update_loses_repeated_words(ch05):
    G = np.array([[1.0], [2.0], [4.0]])
    ids = np.array([2, 2, 0])
    assert ch05.grad_by_scatter_add(ids, G, 3)[:, 0].tolist() == [4.0, 0.0, 3.0]
    assert ch05.grad_by_fancy_index_bug(ids, G, 3)[:, 0].tolist() == [4.0, 0.0, 2.0]


@pytest.mark.ch05
def test_time_lookup_dense_and_sparse_agree(ch05):
    t = ch05.time_lookup(V=500, d=8, n_tokens=64, repeats=1)
    assert t["forward_max_diff"] < 1e-5 and t["backward_max_diff"] < 1e-4
    assert t["onehot_bytes"] == 64 * 500 * 4 and t["ids_bytes"] == 64 * 8
    assert all(t[k] > 0 for k in ("dense_forward", "gather", "dense_backward", "scatter_add"))


@pytest.mark.ch05
def test_coverage_and_padding_fraction(ch05):
    assert ch05.coverage_of_top([1, 5, 3, 1], 2) == pytest.approx(0.8)
    assert ch05.coverage_of_top([1, 5, 3, 1], 10) == 1.0
    batches = [(np.zeros((2, 4)), np.array([4, 2])), (np.zeros((1, 3)), np.array([3]))]
    assert ch05.padding_fraction(batches) == pytest.approx(2 / 11)


@pytest.mark.ch05
def test_c13_max_final_vocab_100_gives_2_v_d_parameters():
    rng = np.random.default_rng(6)
    words = [f"w{i}" for i in range(300)]
    p = 1 / np.arange(1, 301) ** 1.1                # Zipf-like, so the top 100 are distinct
    sentences = [list(rng.choice(words, 12, p=p / p.sum())) for _ in range(400)]
    model = Word2Vec(sentences, vector_size=100, window=5, negative=5, min_count=5, sg=1,
                     epochs=1, workers=1, seed=1, max_final_vocab=100)
    assert len(model.wv) <= 100
    assert model.wv.vectors.size + model.syn1neg.size == 2 * len(model.wv) * 100

