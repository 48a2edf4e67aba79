# %% [markdown]
# # Chapter 05: embeddings, a lookup that is a matrix product (A5, A10, C5, E3, C13)
#
# A network cannot read the word "list"; it reads numbers. The vocabulary (chapter 04) turns
# each word into an id `x`, and an **embedding** turns the id into a vector of `d` numbers
# that training can adjust. The documents write this four times:
#
# * A5 (document 000, 4.1.1): `word_embedding(x) = W vec(x)`, `x` a word index, `W` the
#   embedding matrix. `vec(x)` is the one-hot vector of `x`: all zeros but a 1 at place `x`;
# * A10 (document 000, 4.2.1): the derivation `W vec(x) = sum_i W_i vec_i(x)`;
# * C5 (document 002, 3.2.1): `embedding_matrix[word]`, a row lookup;
# * E3 (document 004, 4): `W_e = Embedding(x)`.
#
# They are one operation. This chapter
#
# 1. computes A5 as a one-hot matrix product and C5/E3 as indexing (`tinylm.nn.Embedding`,
#    `tinylm.functional.embedding`) and checks they agree;
# 2. writes out A10's sum: a matrix times a one-hot vector *selects* a row;
# 3. derives the gradient: since `E = onehot(X) W`, `dL/dW = onehot(X)^T dL/dE`, which is a
#    **scatter-add** of the upstream rows into the rows of the words in the batch. It is
#    computed three ways (autograd of the one-hot product, `nn.Embedding`'s backward,
#    `np.add.at` by hand); only the rows of words that occur are non-zero (counted on a real
#    batch with C14's 25,000-word vocabulary), and the padding row gets no gradient;
# 4. times the dense one-hot product against the gather at C14's size (V = 25,000, d = 100,
#    a batch of 64 x 50 tokens);
# 5. shows how batching sentences of similar length (`bucket_batches`) cuts the padding;
# 6. trains C13, "word2vec with a 100-word vocabulary and 100-dim vectors", on the corpus,
#    counts its parameters, prints neighbours and a PCA map, and measures what a 100-word
#    vocabulary covers and what it cannot do.

# %%
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinylm import functional as F
from tinylm import nn
from tinylm.chapter import Chapter, plt
from tinylm.embeddings import Word2Vec
from tinylm.embeddings.projection import pca_2d
from tinylm.errors import IndexRangeError, TinyLMError
from tinylm.tensor import Tensor
from tinylm.text import Vocab, corpus_sentences
from tinylm.text.batching import bucket_batches, pad_sequences


# %% [markdown]
# ## The tools of this chapter
#
# The lookup three ways, its gradient three ways (and the classic bug), the timing of the
# dense product against the gather, vocabulary coverage, the padding share of a set of
# batches and the PCA of the map. The tests (`tests/test_chapter_05.py`, marker `ch05`) use
# them.

# %%
def one_hot(ids, V, dtype=np.float64):
    """vec(x): rows of the identity, one per id; shape ids.shape + (V,)."""
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (V,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


def lookup_as_matmul(ids, W):
    """A5: word_embedding(x) = vec(x) W with W of shape (V, d), one row per word (tinylm's
    and PyTorch's layout; the document's W is its transpose, one column per word)."""
    return one_hot(ids, W.shape[0], W.dtype) @ W


def lookup_as_sum(x, W):
    """A10 as written: W vec(x) = sum_i W_i vec_i(x); only the term i = x is not zero."""
    vec = one_hot(x, W.shape[0], W.dtype)
    return sum(W[i] * vec[i] for i in range(W.shape[0]))


def grad_by_one_hot_autograd(ids, W, G):
    """dL/dW by autograd of E = onehot(ids) @ W with L = sum(E * G), so dL/dE = G."""
    w = Tensor(W.copy(), requires_grad=True)
    E = Tensor(one_hot(ids, W.shape[0], W.dtype)) @ w
    (E * Tensor(G)).sum().backward()
    return w.grad


def grad_by_embedding_layer(ids, W, G, padding_idx=None):
    """dL/dW by the backward of tinylm.nn.Embedding (weight set to W), same L."""
    emb = nn.Embedding(W.shape[0], W.shape[1], padding_idx=padding_idx, dtype=W.dtype)
    emb.weight.data[...] = W
    (emb(ids) * Tensor(G)).sum().backward()
    return emb.weight.grad


def grad_by_scatter_add(ids, G, V, padding_idx=None):
    """A10's gradient by hand: dL/dW = onehot(ids)^T G = for each position p,
    dL/dW[ids[p]] += G[p]. np.add.at adds every repeat of a word (unbuffered); the padding
    row is then zeroed, as nn.Embedding(padding_idx=...) does."""
    ids = np.asarray(ids).reshape(-1)
    G = np.asarray(G).reshape(len(ids), -1)
    gW = np.zeros((V, G.shape[1]), dtype=G.dtype)
    np.add.at(gW, ids, G)
    if padding_idx is not None:
        gW[padding_idx] = 0
    return gW


def grad_by_fancy_index_bug(ids, G, V):
    """The classic mistake: gW[ids] += G is buffered, so a word that occurs k times in the
    batch receives only ONE of its k gradients (the last write wins)."""
    ids = np.asarray(ids).reshape(-1)
    G = np.asarray(G).reshape(len(ids), -1)
    gW = np.zeros((V, G.shape[1]), dtype=G.dtype)
    gW[ids] += G
    return gW


def time_lookup(V, d, n_tokens, repeats=3, seed=0):
    """Best-of-`repeats` seconds of the lookup and its backward, dense (one-hot products,
    BLAS) against sparse (gather / scatter-add), float32, and the bytes of what each reads
    besides W: the one-hot matrix (n_tokens x V) or the ids (n_tokens int64)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, d)).astype(np.float32)
    ids = rng.integers(0, V, n_tokens)
    G = rng.standard_normal((n_tokens, d)).astype(np.float32)
    H = one_hot(ids, V, np.float32)

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return min(times), out

    t_dense_fwd, E_dense = best(lambda: H @ W)
    t_gather, E_gather = best(lambda: W[ids])
    t_dense_bwd, g_dense = best(lambda: H.T @ G)
    t_scatter, g_sparse = best(lambda: grad_by_scatter_add(ids, G, V))
    return {"dense_forward": t_dense_fwd, "gather": t_gather,
            "dense_backward": t_dense_bwd, "scatter_add": t_scatter,
            "onehot_bytes": H.nbytes, "ids_bytes": ids.astype(np.int64).nbytes,
            "forward_max_diff": float(np.abs(E_dense - E_gather).max()),
            "backward_max_diff": float(np.abs(g_dense - g_sparse).max())}


def coverage_of_top(counts, k):
    """Share of corpus tokens whose word is among the k most frequent words."""
    counts = np.sort(np.asarray(counts))[::-1]
    return float(counts[:k].sum() / counts.sum())


def padding_fraction(batches):
    """Padding cells / all cells of the padded (B, T) arrays, over (ids, lengths, ...) batches."""
    cells = sum(b[0].size for b in batches)
    real = sum(int(b[1].sum()) for b in batches)
    return 1 - real / cells


# %%
ch = Chapter(5, "Embeddings: a lookup that is a matrix product")
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A5, C5, E3: the same lookup three ways
#
# With `V` words and `d` numbers per word, the table `W` has one row per word (shape
# `(V, d)`, as in tinylm and PyTorch). A5 multiplies it by the one-hot vector of the word,
# C5 indexes it, E3 calls a layer that does the indexing. (The document writes `W vec(x)`
# with one *column* per word, `W_doc = W^T` of shape `(d, V)`: the same numbers.)
#
# E3 calls the result `W_e`, "the embedding matrix"; strictly `Embedding(x)` gives the
# vectors of the words in `x` (a `(T, d)` array), picked from the matrix, which is the layer's
# weight. Its example code also sizes the table by `max_length` (`nn.Embedding(max_length,
# d_model)`): the table needs one row per *word* of the vocabulary, and an id beyond the table
# is an error (checked below).

# %%
ch.section("1. A5, C5, E3  word_embedding(x) = W vec(x) = embedding_matrix[x] = Embedding(x)")
ch.formula("A5:  word_embedding(x) = W vec(x),   vec(x) = (0, .., 0, 1, 0, .., 0), 1 at place x",
           "C5:  embedding_matrix[word]          E3:  W_e = Embedding(x)")
ch.code(one_hot)
ch.code(lookup_as_matmul)
V, d = 8, 4
W = rng.normal(0, 1, (V, d))
x = 5
ch.show("W (V x d)", W)
ch.show("vec(5)", one_hot(x, V))
ch.show("vec(5) @ W", lookup_as_matmul(x, W))
ch.check("A5 (one-hot product) == C5 (W[x])", (lookup_as_matmul(x, W), W[x], 0))
ch.check("A5 with the document's layout: W_doc @ vec(x), W_doc = W^T (d x V)",
         ((W.T @ one_hot(x, V)), W[x], 0))
ids = np.array([[5, 1, 1, 7], [0, 3, 5, 2]])            # a batch of 2 sentences of 4 ids
emb = nn.Embedding(V, d, dtype=np.float64)
emb.weight.data[...] = W
ch.show("ids (B x T)", ids)
ch.show("Embedding(ids).shape", str(emb(ids).shape))
ch.check("E3: nn.Embedding(ids) == W[ids] == one_hot(ids) @ W, for a (B, T) batch",
         (emb(ids), lookup_as_matmul(ids, W), 0))
ch.check("F.embedding(ids, W) == W[ids]", (F.embedding(ids, Tensor(W)), W[ids], 0))
try:
    nn.Embedding(4, d)(np.array([1, 6]))                  # a table sized by max_length = 4
    too_big = "no error"
except IndexRangeError as err:
    too_big = str(err)
print("a 4-row table given id 6:", too_big)
ch.check("an id beyond the table is a clear IndexRangeError", "out of range [0, 4)" in too_big)

# %% [markdown]
# ## 2. A10: a matrix times a one-hot vector selects one row
#
# Write the product as a sum over the vocabulary: `W vec(x) = sum_i W_i vec_i(x)`, `W_i`
# the vector of word `i` and `vec_i(x)` the `i`-th entry of the one-hot vector, which is
# `1` if `i = x` and `0` otherwise. Every term but one is zero, so the sum is `W_x`: the
# product is a lookup. (The document's gloss calls `vec_i(x)` "the vector representation of
# word i"; read that way the sum would mix many words' vectors. With `vec(x)` one-hot, as
# A5 defines it, it selects exactly one.) The product costs `V d` multiplications, all but
# `d` of them by zero; the lookup copies `d` numbers.

# %%
ch.section("2. A10  W vec(x) = sum_i W_i vec_i(x) = W_x")
ch.formula("W vec(x) = sum_{i=1}^{V} W_i vec_i(x),   vec_i(x) = 1 if i = x else 0   =>   = W_x")
ch.code(lookup_as_sum)
terms = [float(np.abs(W[i] * one_hot(x, V)[i]).sum()) for i in range(V)]
ch.show("|W_i vec_i(5)| summed over d, for i = 0..V-1", np.array(terms))
ch.check("only the term i = x is non-zero", int(np.count_nonzero(terms)) == 1 and terms[x] > 0)
ch.check("sum_i W_i vec_i(x) == W_x for every word", all(
    np.array_equal(lookup_as_sum(i, W), W[i]) for i in range(V)))

# %% [markdown]
# ## 3. A10: the gradient of the lookup is a sparse scatter-add
#
# For a batch of `N` positions with ids `x_1..x_N`, stack the one-hot rows into `H`
# (`N x V`); the embedded batch is `E = H W`. The chain rule through a matrix product gives
#
#     dL/dW = H^T dL/dE,      i.e.  dL/dW_i = sum_{p : x_p = i} dL/dE_p
#
# Row `i` of the gradient is the sum of the upstream gradients of the positions where word
# `i` occurs: a **scatter-add**. A word absent from the batch gets an exactly zero row; a word
# that occurs `k` times gets `k` rows added. Three computations, one answer: autograd through
# the one-hot product, the backward of `nn.Embedding` (a gather forward, `np.add.at`
# backward), and `np.add.at` by hand. The tempting `gW[ids] += G` is wrong: NumPy buffers it,
# so repeated words keep only one of their gradients.

# %%
ch.section("3. A10  dL/dW = onehot(X)^T dL/dE: a scatter-add into the rows in the batch")
ch.formula("E = H W  (H = one-hot rows, N x V)   =>   dL/dW = H^T dL/dE",
           "dL/dW_i = sum over the positions p where x_p = i of dL/dE_p   (0 if i not in batch)")
ch.code(grad_by_scatter_add)
G = rng.normal(0, 1, ids.shape + (d,))                  # an upstream gradient dL/dE
g_auto = grad_by_one_hot_autograd(ids, W, G)
g_layer = grad_by_embedding_layer(ids, W, G)
g_hand = grad_by_scatter_add(ids, G, V)
ch.show("dL/dW by np.add.at", g_hand)
ch.check("autograd of onehot(X) @ W == nn.Embedding backward", (g_auto, g_layer, 1e-12))
ch.check("nn.Embedding backward == np.add.at by hand", (g_layer, g_hand, 1e-12))
ch.check("the dense product H^T G gives the same", (one_hot(ids, V).reshape(-1, V).T
                                                     @ G.reshape(-1, d), g_hand, 1e-12))
nonzero_rows = np.flatnonzero(np.abs(g_hand).sum(axis=1))
ch.show("rows with a non-zero gradient", nonzero_rows)
ch.check("the non-zero rows are exactly the words in the batch",
         np.array_equal(nonzero_rows, np.unique(ids)))
ch.check("word 1 occurs twice: its row is the sum of its two upstream rows",
         (g_hand[1], G[0, 1] + G[0, 2], 1e-12))
g_bug = grad_by_fancy_index_bug(ids, G, V)
ch.check("gW[ids] += G loses repeats (word 1 gets one of its two gradients)",
         not np.allclose(g_bug[1], g_hand[1]) and np.allclose(g_bug[1], G[0, 2]))

# %% [markdown]
# ### On a real batch, with a vocabulary capped at 25,000 words (C14)
#
# The corpus sentences are encoded with a vocabulary capped at 25,000 (C14; the embedded
# corpus has fewer distinct words, so all of them are kept), padded to 50 tokens, 64
# sentences per batch. Only the rows of the words in that batch have a gradient;
# the padding row gets none, because `nn.Embedding(padding_idx=...)` zeroes it, so padding
# never learns and stays the zero vector it starts as.

# %%
ch.section("3b. A10 on a real batch: how sparse the gradient is (V capped at 25,000, d = 100)")
sentences = corpus_sentences(ch.corpus, max_sentences=20000 if ch.quick else None)
vocab = Vocab.build(sentences, max_size=25000)
V_real, d_real, B, T = len(vocab), 100, 64, 50
batch_ids, batch_lengths = pad_sequences([vocab.encode(s) for s in sentences[:B]],
                                         pad_id=vocab.pad_id, max_len=T)
layer = nn.Embedding(V_real, d_real, padding_idx=vocab.pad_id, seed=0, dtype=np.float64)
E_batch = layer(batch_ids)
G_batch = np.random.default_rng(1).normal(0, 1, E_batch.shape)
(E_batch * Tensor(G_batch)).sum().backward()
g_rows = np.abs(layer.weight.grad).sum(axis=1) > 0
words_in_batch = np.setdiff1d(np.unique(batch_ids), [vocab.pad_id])
ch.show("vocabulary V, batch (B, T)", np.array([V_real, B, T]))
ch.show("positions, padding positions", np.array([batch_ids.size,
                                                  int((batch_ids == vocab.pad_id).sum())]))
ch.show("distinct words in the batch", len(words_in_batch))
ch.show("rows with a non-zero gradient", int(g_rows.sum()))
ch.show("share of the V rows that get a gradient", float(g_rows.mean()))
ch.check("non-zero gradient rows == the distinct non-padding words of the batch",
         np.array_equal(np.flatnonzero(g_rows), words_in_batch))
ch.check("the padding row gets no gradient and stays the zero vector",
         not g_rows[vocab.pad_id] and not np.any(layer.weight.data[vocab.pad_id]))
ch.check("nn.Embedding(padding_idx) backward == np.add.at with the padding row zeroed",
         (layer.weight.grad, grad_by_scatter_add(batch_ids, G_batch, V_real, vocab.pad_id), 1e-12))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 2.2]})
im = axes[0].imshow(g_hand, cmap="RdBu_r", aspect="auto",
                    vmin=-np.abs(g_hand).max(), vmax=np.abs(g_hand).max())
axes[0].set_yticks(range(V))
axes[0].set_xlabel("dimension")
axes[0].set_ylabel("word id")
axes[0].set_title(f"dL/dW, V={V}: rows of ids {sorted(set(ids.ravel().tolist()))}")
fig.colorbar(im, ax=axes[0])
norms = np.linalg.norm(layer.weight.grad, axis=1)
axes[1].vlines(np.flatnonzero(g_rows), 0, norms[g_rows], lw=0.6)
axes[1].set_xscale("symlog", linthresh=10)
axes[1].set_xlabel("word id (by frequency, log scale)")
axes[1].set_ylabel("|dL/dW_i|")
axes[1].set_title(f"one batch of {B}x{T}: {int(g_rows.sum())} of {V_real} rows non-zero")
ch.savefig(fig, "05_sparse_gradient.png")

# %% [markdown]
# ## 4. What the one-hot product costs
#
# The dense form reads an `N x V` one-hot matrix and does `N V d` multiply-adds forward and
# as many backward; the gather reads `N` ids and copies `N d` numbers, and the scatter-add
# adds `N d`. At C14's sizes (V = 25,000, d = 100, 64 x 50 tokens; `--quick`: 16 x 50), in
# float32, best of three:

# %%
ch.section("4. Dense one-hot product vs gather, at V = 25,000, d = 100")
ch.code(time_lookup)
n_tok = (16 if ch.quick else 64) * 50
t = time_lookup(25000, 100, n_tok, repeats=2 if ch.quick else 3)
print(f"  tokens N = {n_tok}, V = 25000, d = 100 (float32)")
print(f"  forward : one-hot @ W {t['dense_forward'] * 1e3:9.3f} ms   W[ids]      "
      f"{t['gather'] * 1e3:8.3f} ms   ratio {t['dense_forward'] / t['gather']:8.0f}x")
print(f"  backward: H^T @ G     {t['dense_backward'] * 1e3:9.3f} ms   np.add.at   "
      f"{t['scatter_add'] * 1e3:8.3f} ms   ratio {t['dense_backward'] / t['scatter_add']:8.0f}x")
print(f"  memory  : one-hot {t['onehot_bytes'] / 2**20:.1f} MiB   ids "
      f"{t['ids_bytes'] / 2**10:.1f} KiB   ratio {t['onehot_bytes'] / t['ids_bytes']:.0f}x")
ch.check("dense and sparse forward agree (float32)", t["forward_max_diff"] < 1e-4)
ch.check("dense and sparse backward agree (float32)", t["backward_max_diff"] < 1e-3)
ch.check("the gather is faster than the dense product", t["gather"] < t["dense_forward"])
ch.check("the one-hot matrix takes V/2 times the bytes of int64 ids",
         t["onehot_bytes"] / t["ids_bytes"] == 25000 / 2)

# %% [markdown]
# ## 5. Less padding: batches of sentences of similar length
#
# A batch is a rectangle: shorter sentences are padded to the longest. In random batches most
# cells can be padding, wasted work for the lookup and for everything after it.
# `bucket_batches` shuffles, sorts by length inside pools of `batch_size * 50` sentences, cuts
# batches and shuffles the batches: each sentence still appears once per pass.

# %%
ch.section("5. Padding: random batches vs length buckets")
ch.code(padding_fraction)
encoded = [vocab.encode(s) for s in sentences]
order = np.random.default_rng(0).permutation(len(encoded))
random_batches = [pad_sequences([encoded[i] for i in order[k:k + 64]], pad_id=vocab.pad_id)
                  for k in range(0, len(order), 64)]
bucketed = list(bucket_batches(encoded, batch_size=64, pad_id=vocab.pad_id, seed=0))
p_random, p_bucket = padding_fraction(random_batches), padding_fraction(bucketed)
ch.show("padding share: random batches", p_random)
ch.show("padding share: bucket_batches", p_bucket)
ch.check("every sentence once in the bucketed batches",
         sum(len(b[1]) for b in bucketed) == len(encoded)
         and sum(int(b[1].sum()) for b in bucketed) == sum(map(len, encoded)))
ch.show("relative drop of the padding share", 1 - p_bucket / p_random if p_random else 0.0)
ch.check("buckets pad less than random batches (or neither pads)",
         p_bucket < p_random or p_random == 0)

# %% [markdown]
# ## 6. C13: word2vec with a 100-word vocabulary and 100-dimensional vectors
#
# Document 002 (4.5.3) assumes "a vocabulary of 100 words, each with a 100-dimensional
# vector". With `tinylm.embeddings.Word2Vec` (gensim's API; chapter 06 derives it), keeping
# the 100 most frequent words (`max_final_vocab=100`), skip-gram with negative sampling.
# `workers=1` keeps the run reproducible. A word2vec model holds two tables, the input
# vectors (`wv.vectors`, the embeddings) and the output vectors (`syn1neg`): `2 x V x d`
# parameters.
#
# What can 100 words do? They are the most frequent ones: Zipf's law (chapter 04) makes them
# cover a large share of the running text, but they are nearly all function words ("the",
# "is", "of") and the commonest nouns of the corpus. Every other word is dropped before the
# windows are taken, and any question about it is an error.

# %%
ch.section("6. C13  word2vec, V = 100 words, d = 100")
ch.formula("parameters = input vectors (V x d) + output vectors (V x d) = 2 x 100 x 100")
w2v = Word2Vec(sentences, vector_size=100, window=5, negative=5, min_count=5, sg=1,
               epochs=5, workers=1, seed=1, max_final_vocab=100)
wv = w2v.wv
n_params = wv.vectors.size + w2v.syn1neg.size
ch.show("vocabulary size, vector size", np.array([len(wv), wv.vector_size]))
ch.show("parameters", n_params)
ch.check("parameters == 2 x V x d", n_params == 2 * len(wv) * wv.vector_size)
# max_final_vocab=100 raises min_count until at most 100 words are left (gensim's rule), so a
# corpus with ties at the 100th place gives a few words fewer; the default corpus gives 100
ch.check("at most 100 words; 2 x 100 x 100 = 20,000 parameters when there are 100",
         len(wv) <= 100 and (len(wv) < 100 or n_params == 20000))
print("the 100 words:", " ".join(wv.index_to_key))

counts = Counter(w for s in sentences for w in s)
total = sum(counts.values())
covered = sum(counts[w] for w in wv.index_to_key) / total
ch.show("corpus tokens, distinct words", np.array([total, len(counts)]))
ch.show("share of corpus tokens that are among the 100 words", covered)
ch.check("coverage from the model's counts == coverage of the top 100 by frequency",
         abs(covered - coverage_of_top(list(counts.values()), len(wv))) < 1e-12)
for k in (10, 100, 1000, 25000):
    print(f"  top {k:>6} words cover {coverage_of_top(list(counts.values()), k):6.1%} of tokens")
share_full = np.mean([all(w in wv for w in s) for s in sentences])
ch.show("share of sentences with every word in the 100", float(share_full))
in_vocab = np.array([wv.get_index(w) for s in sentences for w in s if w in wv])
kept = np.mean(w2v.keep_prob[in_vocab])     # gensim's keep probability, token by token
ch.show("share of in-vocabulary tokens kept by subsampling (sample=1e-3)", float(kept))
example = max(sentences[:200], key=len)[:18]
print("a sentence as the model sees it:", " ".join(w if w in wv else "_" for w in example))

probes = [w for w in ("is", "a", "if", "function", "returns", "list") if w in wv][:5]
for word in probes:
    near = wv.most_similar(word, topn=5)
    print(f"  {word:>9} -> " + ", ".join(f"{w} ({c:.2f})" for w, c in near))
unit = wv.get_normed_vectors()
cos = unit @ unit.T
np.fill_diagonal(cos, -np.inf)
nearest = float(cos.max(axis=1).mean())
random_pairs = float(cos[np.triu_indices(len(wv), 1)].mean())
ch.show("mean cosine: each word and its nearest neighbour", nearest)
ch.show("mean cosine: all pairs of words", random_pairs)
if total >= 50000:
    ch.check("neighbours are far closer than an average pair", nearest > random_pairs + 0.3)
else:   # a few thousand tokens leave the vectors near one common direction (all cos ~ 1)
    ch.note(f"The corpus has only {total} tokens: too few for word2vec to pull the words "
            f"apart, so the neighbour check needs at least 50,000 and is not run.")
outside = max((w for w in counts if w not in wv), key=counts.get, default=None)  # the 101st
if outside is not None:
    try:
        wv[outside]
        missing = "no error"
    except TinyLMError as err:
        missing = str(err)
    print(f"wv[{outside!r}] ({counts[outside]} occurrences):", missing)
    ch.check("a word outside the 100 is an error, not a silent vector", missing != "no error")

# %% [markdown]
# On the default corpus the neighbours group words by *grammatical role* ("is" near "will",
# "has"; "a" near "the", "an") because that is what the contexts of frequent words tell
# apart. What the 100-word model cannot do: represent any word outside the list, not even
# the 101st most frequent (half the tokens of the corpus are not in it, and almost no
# sentence is fully covered); see real windows (the dropped words make "5 words around" span
# much further); or learn much from its frequent words, which subsampling discards most of
# the time (about 60% of their occurrences here). The C14 classifier keeps up to 25,000
# words for this reason.

# %% [markdown]
# ## 7. A 2-D map of the 100 vectors
#
# PCA by `np.linalg.svd`: centre, `X_c = U S V^T`, coordinates `U[:, :2] S[:2]`.

# %%
ch.section("7. The 100 vectors on a PCA map")
ch.code(pca_2d)
X = unit.astype(np.float64)
coords, explained = pca_2d(X)
Xc = X - X.mean(axis=0)
eig = np.sort(np.linalg.eigvalsh(Xc.T @ Xc / (len(X) - 1)))[::-1]
ch.check("PCA: S^2/(n-1) == eigenvalues of the covariance",
         (explained, eig[:len(explained)], 1e-10))
ch.show("share of variance on the map", float(explained[:2].sum() / explained.sum()))
fig, ax = plt.subplots(figsize=(9, 7))
ax.scatter(coords[:, 0], coords[:, 1], s=8, color="tab:blue")
for (px, py), word in zip(coords, wv.index_to_key):
    ax.annotate(word, (px, py), fontsize=7)
ax.set_xlabel("first principal direction")
ax.set_ylabel("second principal direction")
ax.set_title(f"C13: word2vec with V = {len(wv)}, d = 100 (skip-gram, PCA of unit vectors)")
ch.savefig(fig, "05_word2vec_100_map.png")

# %%
ch.finish()
