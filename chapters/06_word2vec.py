# %% [markdown]
# # Chapter 06: word2vec, skip-gram and CBOW (B2), and what C9 gets wrong
#
# word2vec learns a vector per word from one idea: a word is known by the company it keeps.
# Two modes (B2): **skip-gram** predicts the words around a centre word from the centre word,
# **CBOW** ("continuous bag of words") predicts the centre word from the mean of the words
# around it. Each word has two vectors: an input vector `v_w` (what we keep as "the word
# vector") and an output vector `u_w` (used only to make predictions).
#
# The source document writes the prediction as C9:
#
#     y^ = sigma(sum_j w_j . e_w)
#
# one sigmoid of a sum of dot products. That is not what word2vec trains. The real model is
# either the full softmax over the vocabulary,
#
#     p(o | c) = exp(u_o . v_c) / sum_w exp(u_w . v_c)
#
# or, as word2vec.c and gensim do, negative sampling:
#
#     L = -log sigma(u_o . h) - sum_k log sigma(-u_k . h)       (k words drawn at random)
#
# This chapter
#
# 1. derives the gradients of the softmax and negative-sampling losses and checks them three
#    ways (by hand, autograd, finite differences);
# 2. checks that one step of the fast Numba kernel is exactly one autograd SGD step;
# 3. runs C9 as written beside the two real objectives and shows with numbers why it fails;
# 4. trains skip-gram and CBOW on the corpus, prints nearest neighbours, and draws the vectors
#    on a 2-D map (PCA by `np.linalg.svd`, figure `06_word2vec_map.png`).

# %%
import sys
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinylm import functional as F
from tinylm.chapter import Chapter, plt
from tinylm.embeddings import Word2Vec
from tinylm.embeddings.projection import pca_2d
from tinylm.embeddings import word2vec_autograd as wa
from tinylm.kernels import word2vec_cpu
from tinylm.tensor import Tensor
from tinylm.text import corpus_sentences


# %% [markdown]
# ## The tools of this chapter
#
# The hand-derived gradients in plain NumPy, a central-difference gradient, and the PCA used
# for the map. The tests (`tests/test_chapter_06.py`, marker `ch06`) use them.

# %%
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax_grads(v_c, U, o):
    """Skip-gram full softmax, L = -log p(o|c). By hand:
    dL/dv_c = sum_w p(w|c) u_w - u_o = U^T (p - onehot(o)),  dL/dU = (p - onehot(o)) v_c^T."""
    s = U @ v_c
    p = np.exp(s - s.max())
    p /= p.sum()
    err = p.copy()
    err[o] -= 1
    return -np.log(p[o]), U.T @ err, np.outer(err, v_c)


def negative_sampling_grads(h, u_o, U_neg):
    """L = -log s(u_o.h) - sum_k log s(-u_k.h). By hand (s' = s(1-s), d/dx log s(x) = 1-s(x)):
    dL/dh = (s(u_o.h) - 1) u_o + sum_k s(u_k.h) u_k,
    dL/du_o = (s(u_o.h) - 1) h,   dL/du_k = s(u_k.h) h."""
    so, sk = sigmoid(u_o @ h), sigmoid(U_neg @ h)
    loss = -np.log(so) - np.log(1 - sk).sum()
    return loss, (so - 1) * u_o + sk @ U_neg, (so - 1) * h, np.outer(sk, h)


def numeric_grad(f, x, eps=1e-6):
    """Central differences (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), one coordinate at a time."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def c9_positive_only_training(V, d, pairs, steps, lr, seed):
    """Train C9 as written, y^ = sigma(sum_j w_j . e_w), on the true (contexts, word) pairs
    only (there is nothing else to train it on): maximise log y^. Returns the mean y^ of the
    true words and of all other words, before and after."""
    rng = np.random.default_rng(seed)
    W_in = Tensor(rng.normal(0, 0.1, (V, d)), requires_grad=True)
    W_out = Tensor(rng.normal(0, 0.1, (V, d)), requires_grad=True)

    def mean_probs():
        true, other = [], []
        for ctx, w in pairs:
            y = wa.c9_as_written(W_in, W_out, ctx, np.arange(V)).data
            true.append(y[w])
            other.append(np.delete(y, w).mean())
        return float(np.mean(true)), float(np.mean(other))

    before = mean_probs()
    for _ in range(steps):
        for ctx, w in pairs:
            loss = -wa.c9_as_written(W_in, W_out, ctx, w).log()
            W_in.grad = W_out.grad = None
            loss.backward()
            W_in.data -= lr * W_in.grad
            W_out.data -= lr * W_out.grad
    return before, mean_probs()


# %%
ch = Chapter(6, "word2vec: skip-gram, CBOW, softmax and negative sampling")
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The full softmax and its gradient (C9, standard form)
#
# With scores `s_w = u_w . v_c` and `p = softmax(s)`, the loss `L = -log p_o = -s_o + log
# sum_w exp(s_w)`. Its derivative in `s_w` is `p_w - 1[w = o]` ("predicted minus true"),
# and the chain rule through `s_w = u_w . v_c` gives the two gradients below. Every step
# touches all `V` output vectors: that is why the full softmax is slow for big vocabularies.

# %%
ch.section("1. C9 (standard)  the full softmax and its gradient")
ch.formula("p(o|c) = exp(u_o . v_c) / sum_w exp(u_w . v_c),    L = -log p(o|c)",
           "dL/dv_c = sum_w p(w|c) u_w - u_o,    dL/du_w = (p(w|c) - 1[w = o]) v_c")
ch.code(softmax_grads)
V, d = 7, 4
v_c, U, o = rng.normal(0, 1, d), rng.normal(0, 1, (V, d)), 2
loss_hand, g_v, g_U = softmax_grads(v_c, U, o)
Vt_, Ut_ = Tensor(v_c[None, :].copy(), requires_grad=True), Tensor(U.copy(), requires_grad=True)
loss_ag = wa.softmax_loss(Vt_, Ut_, np.array([o]))
loss_ag.backward()
ch.show("L", loss_hand)
ch.show("dL/dv_c (hand)", g_v)
ch.check("softmax loss: hand == autograd", (loss_hand, float(loss_ag.data), 1e-12))
ch.check("dL/dv_c: hand == autograd", (g_v, Vt_.grad[0], 1e-12))
ch.check("dL/dU: hand == autograd", (g_U, Ut_.grad, 1e-12))
ch.check("dL/dv_c: hand == central differences",
         (g_v, numeric_grad(lambda x: softmax_grads(x, U, o)[0], v_c.copy()), 1e-8))
ch.check("dL/dU: hand == central differences",
         (g_U, numeric_grad(lambda x: softmax_grads(v_c, x, o)[0], U.copy()), 1e-8))

# %% [markdown]
# ## 2. Negative sampling and its gradient
#
# Instead of normalising over all `V` words, negative sampling asks a yes/no question per
# word: is `o` really next to `c` (label 1), and is each of `k` random words (label 0)? Each
# is a logistic regression on `u_w . h`. The negatives are drawn with probability
# proportional to `count^0.75` (rare words a little more often than their share). With
# `d/dx log sigma(x) = 1 - sigma(x)` the gradients follow in one line each.

# %%
ch.section("2. C9 (standard)  negative sampling and its gradient")
ch.formula("L = -log sigma(u_o . h) - sum_k log sigma(-u_k . h)",
           "dL/dh = (sigma(u_o.h) - 1) u_o + sum_k sigma(u_k.h) u_k",
           "dL/du_o = (sigma(u_o.h) - 1) h,    dL/du_k = sigma(u_k.h) h")
ch.code(negative_sampling_grads)
h, u_o, U_neg = rng.normal(0, 1, d), rng.normal(0, 1, d), rng.normal(0, 1, (3, d))
loss_ns, g_h, g_uo, g_un = negative_sampling_grads(h, u_o, U_neg)
H, Uo, Un = (Tensor(a.copy(), requires_grad=True) for a in (h, u_o, U_neg))
loss_t = wa.negative_sampling_loss(H, Uo, Un)
loss_t.backward()
ch.show("L", loss_ns)
ch.check("negative-sampling loss: hand == autograd", (loss_ns, float(loss_t.data), 1e-12))
ch.check("dL/dh, dL/du_o, dL/du_k: hand == autograd",
         (np.concatenate([g_h, g_uo, g_un.ravel()]),
          np.concatenate([H.grad, Uo.grad, Un.grad.ravel()]), 1e-12))
ch.check("dL/dh: hand == central differences",
         (g_h, numeric_grad(lambda x: negative_sampling_grads(x, u_o, U_neg)[0], h.copy()), 1e-8))

# %% [markdown]
# ## 3. The fast kernel takes exactly the autograd step
#
# Training runs in a Numba kernel (`tinylm/kernels/word2vec_cpu.py`), threads updating the
# shared tables without locks, as word2vec.c and gensim do. Its update is written by hand from
# section 2's gradients; here one step on one sample is compared with `W -= alpha * grad` from
# autograd (skip-gram: `h` is the context word's input vector, the target is the centre word,
# gensim's pairing).

# %%
ch.section("3. One Numba step == one autograd SGD step")
ch.code(word2vec_cpu.negative_sampling_update.py_func)
syn0, syn1 = rng.normal(0, 0.5, (10, d)), rng.normal(0, 0.5, (10, d))
center, context, negatives, alpha = 4, 7, np.array([1, 2, 9]), 0.1
W_in, W_out = Tensor(syn0.copy(), requires_grad=True), Tensor(syn1.copy(), requires_grad=True)
wa.sg_negative_sampling_loss(W_in, W_out, center, context, negatives).backward()
k0, k1 = syn0.copy(), syn1.copy()
word2vec_cpu.sg_step(k0, k1, center, context, negatives, alpha)
ch.check("kernel step == autograd step (input vectors)", (k0, syn0 - alpha * W_in.grad, 1e-13))
ch.check("kernel step == autograd step (output vectors)", (k1, syn1 - alpha * W_out.grad, 1e-13))

# %% [markdown]
# ## 4. C9 as written: `y^ = sigma(sum_j w_j . e_w)`
#
# As written, C9 scores each candidate word `w` on its own. Three things go wrong, and the
# numbers show each. (a) The `y^_w` are not a distribution: summed over the vocabulary they
# give about `V/2` at the start, not 1. (b) Trained the only way the formula allows (push
# `y^` of the true words up), nothing ever pushes a wrong word down: the true words rise to
# `y^ ~ 1`, every other word stays where it started. (c) Worse, the objective is minimised by
# a useless answer: give *every* word the same vector `a (1, ..., 1)` and `y^ = sigma(2 a^2 d)`
# goes to 1 for every pair, loss 0, although the vectors now say nothing about any word. The
# softmax scores that same answer `log V` (uniform guessing: raising one word lowers the
# others), negative sampling scores it terribly (the label-0 words are just as "likely").

# %%
ch.section("4. C9 as written, beside the softmax and negative sampling")
ch.formula("as written:  y^_w = sigma(sum_j w_j . e_w)      (each word on its own)",
           "softmax:     p(w|c) = exp(u_w . v_c) / sum_w' exp(u_w' . v_c)")
ch.code(wa.c9_as_written)
V, d = 20, 8
W_in0, W_out0 = Tensor(rng.normal(0, 0.1, (V, d))), Tensor(rng.normal(0, 0.1, (V, d)))
y_all = wa.c9_as_written(W_in0, W_out0, [3, 5], np.arange(V)).data
p_all = F.softmax(W_out0 @ W_in0[np.array([3, 5])].mean(axis=0)).data
ch.show("sum over the vocabulary of y^ (C9 as written)", float(y_all.sum()))
ch.show("sum over the vocabulary of p (softmax)", float(p_all.sum()))
ch.check("C9 as written is not a distribution: sum_w y^_w ~ V/2", abs(y_all.sum() - V / 2) < 1)
ch.check("the softmax is one: sum_w p(w|c) = 1", (p_all.sum(), 1.0, 1e-12))
pairs = [([1, 2], 0), ([0, 2], 1), ([0, 1], 2), ([11, 12], 10), ([10, 12], 11), ([10, 11], 12)]
(before_true, before_other), (after_true, after_other) = c9_positive_only_training(
    V, d, pairs, steps=30 if ch.quick else 100, lr=1.0, seed=1)
ch.show("C9 as written, before: mean y^ of true words / of all other words",
        np.array([before_true, before_other]))
ch.show("C9 as written, after training: true words / all other words",
        np.array([after_true, after_other]))
ch.check("C9 as written: the true words rise, nothing pushes the others down",
         after_true > 0.9 and after_other > before_other - 0.01)
# (c) the degenerate answer: every input and output vector equal to a (1, ..., 1)
same = np.full((V, d), 2.0)
S_in, S_out = Tensor(same), Tensor(same)
c9_loss = float(np.mean([-np.log(wa.c9_as_written(S_in, S_out, ctx, w).data) for ctx, w in pairs]))
soft_loss = float(np.mean([wa.softmax_loss(S_in[np.array(ctx)].mean(axis=0)[None, :], S_out,
                                           np.array([w])).data for ctx, w in pairs]))
ns_loss = float(np.mean([wa.negative_sampling_loss(S_in[np.array(ctx)].mean(axis=0),
                                                   S_out[w], S_out[np.array([4, 5, 6])]).data
                         for ctx, w in pairs]))
ch.show("all vectors equal: loss of C9 as written / softmax / negative sampling",
        np.array([c9_loss, soft_loss, ns_loss]))
ch.check("C9 as written is minimised (loss ~ 0) by identical vectors for every word",
         c9_loss < 1e-6)
ch.check("the softmax gives identical vectors log V (uniform guessing)",
         (soft_loss, np.log(V), 1e-10))
ch.check("negative sampling gives identical vectors a large loss", ns_loss > 50)

# the same pairs with negative sampling: the true word goes up, the negatives go down
ns_in = rng.normal(0, 0.1, (V, d))
ns_out = np.zeros((V, d))
ns_rng = np.random.default_rng(2)
for _ in range(60):
    for ctx, w in pairs:
        negs = ns_rng.choice(np.setdiff1d(np.arange(V), [w]), 5, replace=False)
        word2vec_cpu.cbow_step(ns_in, ns_out, w, np.array(ctx), negs, 0.2)
true_ns = np.mean([sigmoid(ns_out[w] @ ns_in[ctx].mean(axis=0)) for ctx, w in pairs])
other_ns = np.mean([np.delete(sigmoid(ns_out @ ns_in[ctx].mean(axis=0)), w).mean()
                    for ctx, w in pairs])
ch.show("negative sampling, after training: true words / all other words",
        np.array([true_ns, other_ns]))
ch.check("negative sampling separates: true words > 0.9, the others < 0.5",
         true_ns > 0.9 and other_ns < 0.5)

# %% [markdown]
# ## 5. Training on the corpus: skip-gram and CBOW (B2)
#
# Now the real thing, with gensim's settings: subsampling of frequent words (`sample=1e-3`),
# a reduced window (each centre word sees `window - b` words each side, `b` random), 5
# negatives from the `count^0.75` table, and a learning rate falling linearly from 0.025.
# `--quick` trains on the first 20,000 sentences of the corpus; without it, on everything.

# %%
ch.section("5. B2  skip-gram and CBOW on the corpus")
sentences = corpus_sentences(ch.corpus, max_sentences=20000 if ch.quick else None)
n_words = sum(map(len, sentences))
ch.show("sentences, words", np.array([len(sentences), n_words]))
epochs = 3 if ch.quick else 10
models = {}
for sg, name in ((1, "skip-gram"), (0, "CBOW")):
    models[name] = Word2Vec(sentences, vector_size=50, window=5, min_count=5, sg=sg,
                            negative=5, epochs=epochs, workers=2, seed=1, compute_loss=True)
    m = models[name]
    ch.show(f"{name}: vocabulary, words/s", np.array([len(m.wv), round(m.words_per_second)]))
    ch.show(f"{name}: loss per epoch", np.array(m.loss_history) / m.loss_history[0])
    ch.check(f"{name}: the loss falls from the first epoch to the last",
             m.loss_history[-1] < m.loss_history[0])

wv = models["skip-gram"].wv
probes = [w for w in ("list", "string", "file", "function", "true", "two") if w in wv][:4]
for word in probes:
    near = wv.most_similar(word, topn=5)
    print(f"  {word:>10} -> " + ", ".join(f"{w} ({c:.2f})" for w, c in near))
top = wv.vectors[:200]
unit = top / np.linalg.norm(top, axis=1, keepdims=True)
random_cos = float(np.mean(unit[rng.integers(0, 200, 500)] @ unit[rng.integers(0, 200, 500)].T))
neighbour_cos = float(np.mean([wv.most_similar(w, topn=1)[0][1] for w in wv.index_to_key[:50]]))
ch.show("mean cosine of a word and its nearest neighbour (top 50 words)", neighbour_cos)
ch.show("mean cosine of two random words (top 200)", random_cos)
ch.check("nearest neighbours are much closer than random pairs",
         neighbour_cos > random_cos + 0.3)

# %% [markdown]
# ## 6. The full softmax, trained through the autograd engine
#
# For a small vocabulary the full softmax is affordable: `Word2Vec(..., negative=0)` trains
# it with `loss.backward()` and plain SGD (the readable path, `word2vec_autograd.py`). Its loss
# is a cross-entropy over the vocabulary: `log V` is uniform guessing, and it must get below.

# %%
ch.section("6. The full softmax through autograd (small vocabulary)")
small = sentences[:1500 if ch.quick else 5000]
soft = Word2Vec(small, vector_size=20, window=3, min_count=5, max_final_vocab=300, sg=1,
                negative=0, epochs=3, workers=1, seed=1, alpha=0.5)
ch.show("vocabulary, log V", np.array([len(soft.wv), np.log(len(soft.wv))]))
ch.show("mean -log p(o|c) per epoch", np.array(soft.loss_history))
ch.check("full softmax: the loss falls each epoch and ends below log V",
         soft.loss_history[-1] < np.log(len(soft.wv))
         and bool(np.all(np.diff(soft.loss_history) < 0)))

# %% [markdown]
# ## 7. A 2-D map of the vectors
#
# PCA: centre the vectors and take the SVD `X_c = U S V^T`; the first two columns of `U S`
# are the coordinates along the two directions of largest variance. (The eigenvalues of the
# covariance `X_c^T X_c / (n - 1)` are `S^2 / (n - 1)`: checked.) Words that share contexts
# should land near each other.

# %%
ch.section("7. A 2-D map of the skip-gram vectors (PCA via np.linalg.svd)")
ch.code(pca_2d)
n_map = 60
X = wv.get_normed_vectors()[:n_map].astype(np.float64)
coords, explained = pca_2d(X)
Xc = X - X.mean(axis=0)
eig = np.sort(np.linalg.eigvalsh(Xc.T @ Xc / (n_map - 1)))[::-1]
ch.check("PCA: S^2/(n-1) == eigenvalues of the covariance", (explained, eig[:len(explained)], 1e-10))
ch.show("share of variance on the map", float(explained[:2].sum() / explained.sum()))
fig, ax = plt.subplots(figsize=(8, 6))
ax.scatter(coords[:, 0], coords[:, 1], s=8, color="tab:blue")
for (x, y), word in zip(coords, wv.index_to_key[:n_map]):
    ax.annotate(word, (x, y), fontsize=8)
ax.set_xlabel("first principal direction")
ax.set_ylabel("second principal direction")
ax.set_title(f"skip-gram vectors of the {n_map} most frequent words (PCA)")
ch.savefig(fig, "06_word2vec_map.png")

# %%
ch.finish()
