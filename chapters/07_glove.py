# %% [markdown]
# # Chapter 07: GloVe (C10), and the documents' two "GloVe"s (B5, B6)
#
# GloVe (Pennington, Socher and Manning, 2014) learns word vectors from one table: `X_ij`, how
# often word `j` occurs near word `i` in the whole corpus. Its model says that the dot product
# of two vectors (plus two biases) should be the log of that count:
#
#     J = sum_ij f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2
#     f(x) = (x / x_max)^alpha  if x < x_max  else 1          (x_max = 100, alpha = 3/4)
#
# a weighted least-squares fit over the nonzero counts, trained with AdaGrad.
#
# The source documents describe something else three times:
#
# - B5: GloVe is "based on word-frequency / inverse-frequency statistics" learnt "by matrix
#   factorisation" (ERRATUM: it is the weighted least squares above on log co-occurrences);
# - B6: its code "trains GloVe" as TF-IDF + NMF with scikit-learn on three sentences
#   (ERRATUM: that is a count-based topic model; we build it, NMF included, and compare it);
# - C10: `f(w, c) = f(w) / (f(c) + f(w))` with `f(w)`, `f(c)` the frequencies of the two
#   words (ERRATUM: a function of two frequencies only; we compute it and show why it cannot
#   give word vectors).
#
# This chapter
#
# 1. computes C10 as written and shows, with numbers from the corpus, what it is;
# 2. counts co-occurrences (sparse, compiled) and checks them against plain Python;
# 3. checks GloVe's gradient three ways and the Numba epoch against a NumPy epoch;
# 4. trains GloVe, B6's TF-IDF + NMF and C10 on the same text and compares the three on a
#    similarity set (figures `07_glove_training.png`, `07_glove_map.png`,
#    `07_similarity.png`).

# %%
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinylm import functional as F
from tinylm.chapter import Chapter, plt
from tinylm.embeddings import count_models as cm
from tinylm.embeddings.glove import (GloVe, adagrad_epoch_reference, co_occurrence, encode,
                                     objective_and_gradients, weighting)
from tinylm.embeddings.keyed_vectors import KeyedVectors
from tinylm.embeddings.projection import pca_2d
from tinylm.kernels import glove_cpu
from tinylm.tensor import Tensor
from tinylm.text import STOPWORDS, corpus_sentences

WORDSIM_NAME = "wordsim353.tsv"


# %% [markdown]
# ## The tools of this chapter
#
# A plain-Python co-occurrence count (the reference for the compiled one), central
# differences, the autograd form of J, the held-out similarity set, and PCA for the map. The
# tests (`tests/test_chapter_07.py`, marker `ch07`) use them.

# %%
def python_cooccurrence(sentences, index, window, symmetric=True):
    """GloVe's cooccur.c in plain Python: X[word, context] += 1/distance for each context word
    up to ``window`` positions to the left (and the mirror entry when symmetric)."""
    X = defaultdict(float)
    for sentence in sentences:
        ids = [index[w] for w in sentence if w in index]
        for q, word in enumerate(ids):
            for p in range(max(0, q - window), q):
                X[word, ids[p]] += 1.0 / (q - p)
                if symmetric:
                    X[ids[p], word] += 1.0 / (q - p)
    return dict(X)


def numeric_grad(f, x, eps=1e-6):
    """Central differences, one coordinate at a time."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def autograd_objective(W, Wc, b, bc, rows, cols, x, x_max=100.0, alpha=0.75):
    """J through tinylm's autograd: the same formula written with Tensor ops."""
    ts = [Tensor(p.reshape(p.shape[0], -1).copy(), requires_grad=True) for p in (W, Wc, b, bc)]
    d = ((F.embedding(rows, ts[0]) * F.embedding(cols, ts[1])).sum(axis=1)
         + F.embedding(rows, ts[2])[:, 0] + F.embedding(cols, ts[3])[:, 0]
         - Tensor(np.log(x)))
    loss = (Tensor(weighting(x, x_max, alpha)) * d * d).sum()
    loss.backward()
    return float(loss.data), [t.grad.reshape(p.shape) for t, p in zip(ts, (W, Wc, b, bc))]


def ppmi_vectors(sentences, index, window=5):
    """Positive pointwise mutual information rows from the co-occurrences of ``sentences``:
    PPMI_ij = max(0, log(X_ij X_** / (X_i* X_*j))), dense (V, V). The reference notion of
    similarity: two words are alike when they keep the same company in text not trained on."""
    ids, offsets = encode(sentences, index)
    rows, cols, x = co_occurrence(ids, offsets, len(index), window)
    row_sum = np.bincount(rows, weights=x, minlength=len(index))
    col_sum = np.bincount(cols, weights=x, minlength=len(index))
    pmi = np.log(x * x.sum() / (row_sum[rows] * col_sum[cols]))
    P = np.zeros((len(index), len(index)))
    P[rows, cols] = np.maximum(pmi, 0.0)
    return P


def heldout_pairs(P, words, candidates, n_pairs, seed):
    """A similarity set from held-out text: ``n_pairs`` random pairs of ``candidates`` (word
    ids), each scored by the cosine of their PPMI rows. Returns [(w1, w2, score)]."""
    rng = np.random.default_rng(seed)
    unit = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-30)
    pairs = set()
    while len(pairs) < n_pairs:
        a, b = rng.choice(candidates, 2, replace=False)
        pairs.add((min(a, b), max(a, b)))
    return [(words[a], words[b], float(unit[a] @ unit[b])) for a, b in sorted(pairs)]


def write_pairs(pairs, path):
    """The wordsim353 format (``w1<TAB>w2<TAB>score``), read by ``evaluate_word_pairs``."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# word1\tword2\tPPMI cosine on held-out sentences\n")
        fh.writelines(f"{a}\t{b}\t{s:.6f}\n" for a, b, s in pairs)


def neighbour_overlap(kv, P, words, probe_ids, topn=10):
    """Mean |model's top-n neighbours  ^  PPMI's top-n neighbours| / n over the probe words
    (neighbours searched among ``words``, the shared vocabulary)."""
    unit = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-30)
    sub = np.array([kv.get_index(w) for w in words])
    M = kv.get_normed_vectors()[sub]
    scores = []
    for i in probe_ids:
        ref, got = unit @ unit[i], M @ M[i]
        ref[i] = got[i] = -np.inf
        a = set(np.argpartition(-ref, topn)[:topn])
        b = set(np.argpartition(-got, topn)[:topn])
        scores.append(len(a & b) / topn)
    return float(np.mean(scores))


def wordsim_path():
    """gensim's bundled wordsim353.tsv when gensim is installed, else None."""
    try:
        from gensim.test.utils import datapath
    except ImportError:
        return None
    path = Path(datapath(WORDSIM_NAME))
    return path if path.is_file() else None


# %%
ch = Chapter(7, "GloVe, and the documents' C10 and TF-IDF + NMF")
rng = np.random.default_rng(0)
max_sentences = 8000 if ch.quick else None
sentences = corpus_sentences(ch.corpus, max_sentences=max_sentences)
train_sents, heldout_sents = sentences[0::2], sentences[1::2]   # the odd ones: held out
ch.show("sentences (train, held out)", np.array([len(train_sents), len(heldout_sents)]))
min_count = 3 if ch.quick else 5
glove = GloVe(vector_size=50 if ch.quick else 100, window=10, min_count=min_count,
              epochs=15 if ch.quick else 25, workers=2, seed=1)
start = time.perf_counter()
glove.build(train_sents)
words, counts = glove.index_to_key, glove.counts
V = len(words)
ch.show("vocabulary (words with count >= min_count)", V)

# %% [markdown]
# ## 1. C10 as written: `f(w, c) = f(w) / (f(c) + f(w))`
#
# The document says `f(w)` and `f(c)` are the frequencies of the words `w` and `c`. Dividing
# by `f(w)`: `f(w, c) = 1 / (1 + f(c)/f(w)) = sigma(log f(w) - log f(c))`. It never reads how
# often `w` and `c` occur *together*: the whole "matrix" is made from one number per word.

# %%
ch.section("C10 as written (ERRATUM): a function of two word frequencies only")
ch.formula("f(w, c) = f(w) / (f(c) + f(w)) = sigma(log f(w) - log f(c))")
ch.code(cm.c10_as_written)
M = cm.c10_matrix(counts)
f_rel = counts / counts.sum()
for a, b in [(0, 1), (1, 0), (0, V - 1), (5, 6)]:
    print(f"  f({words[a]!r}, {words[b]!r}) = {M[a, b]:.4f}   (counts {counts[a]}, {counts[b]})")
sig = 1 / (1 + np.exp(-(np.log(f_rel)[:, None] - np.log(f_rel)[None, :])))
ch.check("C10 equals sigma(log f(w) - log f(c)) on the corpus's frequencies", (M, sig, 1e-12))
ch.check("C10 is antisymmetric: f(w,c) + f(c,w) = 1", (M + M.T, np.ones_like(M), 1e-12))
# two words of the same count but different meaning get the same row, cosine exactly 1
same = np.flatnonzero(counts == counts[V // 3])
w1, w2 = words[same[0]], words[same[-1]]
cos = M[same[0]] @ M[same[-1]] / (np.linalg.norm(M[same[0]]) * np.linalg.norm(M[same[-1]]))
print(f"  {w1!r} and {w2!r} both occur {counts[same[0]]} times: cosine of their C10 rows = "
      f"{cos:.12f}")
ch.check("two words of equal count get identical C10 rows (it cannot tell them apart)",
         (M[same[0]], M[same[-1]], 0.0))
ch.show("distinct C10 rows (= distinct word counts) / words",
        np.array([len(np.unique(counts)), V]))

# %% [markdown]
# ## 2. Counting co-occurrences (sparse, compiled)
#
# For each word, each context word up to `window` positions to its left adds `1/distance` to
# `X[word, context]`, and (symmetric) to `X[context, word]`. The Numba kernel writes
# `(i*V + j, 1/d)` pairs for a chunk of sentences; a stable sort and `np.add.reduceat` sum
# equal keys. Memory is one chunk's pairs plus the nonzeros, never `V x V`.

# %%
ch.section("Co-occurrence counts X_ij (1/distance weights)")
ch.code(glove_cpu.emit_pairs)
tiny = [["the", "cat", "sat", "on", "the", "mat"]]
tiny_index = {w: i for i, w in enumerate(["the", "cat", "sat", "on", "mat"])}
r, c, x = co_occurrence(*encode(tiny, tiny_index), len(tiny_index), window=2)
dense = np.zeros((5, 5))
dense[r, c] = x
ch.show("X for 'the cat sat on the mat', window 2 (rows/cols: the cat sat on mat)", dense)
ref = python_cooccurrence(train_sents[:500], glove._index, 10)
r, c, x = co_occurrence(*encode(train_sents[:500], glove._index), V, window=10)
got = {(int(i), int(j)): v for i, j, v in zip(r, c, x)}
ch.check("compiled counts == plain-Python counts (500 sentences)",
         got.keys() == ref.keys() and all(abs(got[k] - v) < 1e-9 for k, v in ref.items()))
rows, cols, xs = glove.cooccurrence
nnz = len(xs)
ch.show("nonzeros of X / V^2", np.array([nnz, V * V]))
ch.show("co-occurrence time (s, incl. vocabulary)", glove.count_seconds)
ch.show("memory of X as COO (MB) vs dense float64 (MB)",
        np.array([(rows.nbytes + cols.nbytes + xs.nbytes) / 2**20, V * V * 8 / 2**20]))

# %% [markdown]
# ## 3. The objective, its gradient, and AdaGrad
#
# With `d_e = w_i . w~_j + b_i + b~_j - log X_ij` for the nonzero entry `e = (i, j)`,
# `dJ/dw_i = sum_e 2 f(X_e) d_e w~_j`, `dJ/dw~_j = sum_e 2 f(X_e) d_e w_i`, `dJ/db_i = dJ/db~_j =
# sum_e 2 f d`. We check the hand gradient against central differences and tinylm's autograd
# on a small random problem.

# %%
ch.section("C10, standard: J = sum f(X_ij)(w_i.w~_j + b_i + b~_j - log X_ij)^2")
ch.formula("f(x) = (x/x_max)^alpha if x < x_max else 1",
           "dJ/dw_i = sum_j 2 f(X_ij) d_ij w~_j,   dJ/db_i = sum_j 2 f(X_ij) d_ij")
ch.code(objective_and_gradients)
sr, sc = np.nonzero(rng.random((6, 6)) < 0.6)
sx = rng.uniform(0.3, 150.0, len(sr))
params = [rng.normal(0, 0.3, (6, 3)), rng.normal(0, 0.3, (6, 3)), rng.normal(0, 0.3, 6),
          rng.normal(0, 0.3, 6)]
J, *grads = objective_and_gradients(*params, sr, sc, sx)
J_auto, grads_auto = autograd_objective(*params, sr, sc, sx)
ch.show("J (hand, autograd)", np.array([J, J_auto]))
for name, p, g, ga in zip(("W", "W~", "b", "b~"), params, grads, grads_auto):
    num = numeric_grad(lambda: objective_and_gradients(*params, sr, sc, sx)[0], p)
    ch.check(f"dJ/d{name}: hand == finite differences", (g, num, 1e-5))
    ch.check(f"dJ/d{name}: hand == tinylm autograd", (g, ga, 1e-10))

ch.section("AdaGrad epoch: the Numba kernel == the NumPy reference")
ch.formula("g = f(X_e) d_e (w~_j, w_i, 1, 1)   (the gradient of J_e / 2, as glove.c)",
           "theta -= eta g / sqrt(G);   G += g^2;   G starts at 1")
ch.code(adagrad_epoch_reference)
kp = [p.copy() for p in params]
rp = [p.copy() for p in params]
ka, ra = [np.ones_like(p) for p in params], [np.ones_like(p) for p in params]
order = rng.permutation(len(sx))
for _ in range(3):
    loss_k = glove_cpu.train_epoch(sr, sc, np.log(sx), weighting(sx), order, 1, *kp, *ka,
                                   0.05).sum()
    loss_r = adagrad_epoch_reference(rp, ra, sr, sc, sx, order, 0.05)
ch.check("3 epochs: kernel parameters == reference parameters",
         (np.concatenate([p.ravel() for p in kp]), np.concatenate([p.ravel() for p in rp]),
          1e-12))
ch.check("3rd epoch loss: kernel == reference", (loss_k, loss_r, 1e-9))

# %% [markdown]
# ## 4. Training GloVe on the corpus
#
# Each epoch visits the nonzero entries in a fresh random order (from the seeded generator)
# on two threads (Hogwild). The vectors kept are `W + W~` (the paper's choice).

# %%
ch.section("GloVe on the corpus")
glove.train()
ch.show("J per epoch", np.array(glove.loss_history))
ch.show("training time (s)", glove.train_seconds)
ch.check("J falls over training (last epoch < 60% of the first)",
         glove.loss_history[-1] < 0.6 * glove.loss_history[0])
for w in ["list", "file", "string", "error", "function", "class"]:
    if w in glove.wv:
        print(f"  {w:>9}: " + ", ".join(n for n, _ in glove.wv.most_similar(w, topn=6)))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
xx = np.linspace(0, 150, 301)
ax1.plot(xx, weighting(xx, glove.x_max, glove.alpha))
ax1.set(xlabel="co-occurrence X_ij", ylabel="f(X_ij)", title="GloVe weighting f(x)")
ax2.plot(np.arange(1, len(glove.loss_history) + 1), glove.loss_history, marker="o")
ax2.set(xlabel="epoch", ylabel="J", title="GloVe objective per epoch")
ch.savefig(fig, "07_glove_training.png")

map_words = [w for w in ["list", "tuple", "dict", "set", "string", "bytes", "int", "float",
                         "file", "directory", "path", "read", "write", "open", "close",
                         "error", "exception", "raise", "class", "method", "function",
                         "the", "a", "is"] if w in glove.wv]
coords, _ = pca_2d(glove.wv[map_words])
fig, ax = plt.subplots(figsize=(6, 5))
ax.scatter(coords[:, 0], coords[:, 1], s=10)
for (px, py), w in zip(coords, map_words):
    ax.annotate(w, (px, py), fontsize=8)
ax.set_title("GloVe vectors, first two principal components")
ch.savefig(fig, "07_glove_map.png")

# %% [markdown]
# ## 5. B6: TF-IDF + NMF (a count model, not GloVe)
#
# First B6's own example (three sentences, two components, scikit-learn's English stop words
# removed: we drop ours), then the same model on the corpus with sentences as documents and
# as many components as GloVe has dimensions. NMF by multiplicative updates never increases
# `||X - A H||_F` (Lee & Seung): we check that on every step.

# %%
ch.section("B6: TF-IDF + NMF, the documents' example")
ch.formula("tfidf(t, d) = tf(t, d) (ln((1 + n)/(1 + df(t))) + 1), rows l2-normalised",
           "X ~ A H:  H <- H * (A^T X)/(A^T A H),  A <- A * (X H^T)/(A H H^T)")
b6_docs = [[w for w in s.lower().replace(".", "").split() if w not in STOPWORDS]
           for s in ["This is a sample sentence.", "This sentence contains sample data.",
                     "Another sample sentence with sample data."]]
b6_terms = sorted({w for d in b6_docs for w in d})
(tr, tc, tv), shape = cm.tfidf(b6_docs, {w: i for i, w in enumerate(b6_terms)})
A6, H6, err6 = cm.nmf(cm.SparseMatrix(tr, tc, tv, shape), 2, iterations=200, seed=1)
print("  terms:", b6_terms)
ch.show("B6 word vectors = columns of H (nmf_model.components_)", H6)
ch.check("B6 example: NMF error never increases", bool(np.all(np.diff(err6) <= 1e-12)))

ch.section("TF-IDF + NMF on the corpus (documents = sentences)")
(tr, tc, tv), shape = cm.tfidf(train_sents, glove._index)
X_tfidf = cm.SparseMatrix(tr, tc, tv, shape)
start = time.perf_counter()
A, H, nmf_err = cm.nmf(X_tfidf, glove.vector_size, iterations=100,
                       seed=1)
ch.show("TF-IDF shape, nonzeros", np.array([*shape, len(tv)]))
ch.show("NMF ||X - AH||_F (start, end), seconds",
        np.array([nmf_err[0], nmf_err[-1], time.perf_counter() - start]))
ch.check("corpus NMF: error never increases",
         bool(np.all(np.diff(nmf_err) <= 1e-10 * nmf_err[0])))
nmf_kv = KeyedVectors(words, H.T.astype(np.float32), counts=counts)
# C10's "vectors": each word's row of f(w, c) against the 1000 most frequent words
c10_kv = KeyedVectors(words, M[:, :min(V, 1000)].astype(np.float32), counts=counts)

# %% [markdown]
# ## 6. The three models on one similarity set
#
# The embedded corpus is Python's documentation, where few wordsim353 pairs occur. So the
# similarity set comes from data the models never saw: the held-out (odd) sentences. For 600
# random pairs among the most frequent non-stop-words, the "gold" score is the cosine of the
# two words' PPMI rows counted on the held-out sentences; each model is scored by Spearman's
# rho between its cosines and those. It measures how well a model's similarities predict
# distributional similarity in new text of the same kind, not human judgements of meaning.
# A second number: the mean overlap of each model's 10 nearest neighbours with PPMI's.
# With `--corpus` on PTB (`ptb.train.txt`), wordsim353 (human judgements) is added.

# %%
ch.section("Similarity: GloVe vs TF-IDF + NMF vs C10 as written")
P = ppmi_vectors(heldout_sents, glove._index, window=5)
content = [i for i in range(V) if words[i] not in STOPWORDS and len(words[i]) > 2
           and P[i].any()][:300 if ch.quick else 500]
gold = heldout_pairs(P, words, np.array(content), 600, seed=0)
models = {"GloVe": glove.wv, "TF-IDF + NMF": nmf_kv, "C10 as written": c10_kv}
results = {}
with tempfile.TemporaryDirectory() as tmp:
    pairs_path = Path(tmp) / "heldout_ppmi_pairs.tsv"
    write_pairs(gold, pairs_path)
    for name, kv in models.items():
        _, spearman, _ = kv.evaluate_word_pairs(pairs_path)
        overlap = neighbour_overlap(kv, P, words, content[:100])
        results[name] = {"spearman": spearman.statistic, "overlap@10": overlap}
ws = wordsim_path()
if ch.corpus is not None and ws is not None:
    for name, kv in models.items():
        _, spearman, oov = kv.evaluate_word_pairs(ws)
        results[name]["wordsim353"] = spearman.statistic
        results[name]["wordsim353 oov %"] = oov
for name, r in results.items():
    print(f"  {name:>15}: " + ", ".join(f"{k} = {v:.3f}" for k, v in r.items()))
ch.check("GloVe beats C10 as written on the held-out similarity set",
         results["GloVe"]["spearman"] > results["C10 as written"]["spearman"])
ch.check("GloVe's neighbours agree with held-out PPMI's more than C10's",
         results["GloVe"]["overlap@10"] > results["C10 as written"]["overlap@10"])

fig, ax = plt.subplots(figsize=(7, 3.6))
metrics = list(next(iter(results.values())))
metrics = [m for m in metrics if "oov" not in m]
width = 0.8 / len(metrics)
for k, m in enumerate(metrics):
    ax.bar(np.arange(3) + k * width, [results[n][m] for n in models], width, label=m)
ax.set_xticks(np.arange(3) + width * (len(metrics) - 1) / 2, list(models))
ax.axhline(0, color="k", lw=0.5)
ax.set(ylabel="score", title="Similarity: held-out PPMI Spearman, neighbour overlap")
ax.legend(fontsize=8)
ch.savefig(fig, "07_similarity.png")

# %%
ch.finish()
