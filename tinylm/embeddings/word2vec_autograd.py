"""word2vec written with tinylm Tensors: the readable version (B2, C9).

The Numba kernel (``tinylm/kernels/word2vec_cpu.py``) is the fast one; this file states the same
objectives as differentiable expressions, so ``loss.backward()`` gives the gradients the kernel
applies by hand (``tests/test_word2vec.py`` checks that one step of each is the same), and it
trains the full-softmax model that the kernel does not have.

Notation: ``W_in`` (V, d) holds the input vectors ``v_w`` (gensim's ``syn0``, what ``model.wv``
returns), ``W_out`` (V, d) the output vectors ``u_w`` (``syn1neg``).

- C9 as written in the source document: ``y^ = sigma(sum_j w_j . e_w)``: one logistic output
  per candidate word ``w`` from the sum of its dot products with the context vectors ``w_j``.
  Nothing ties the candidates together, so the ``y^_w`` do not sum to 1 over the vocabulary,
  and maximising ``y^`` of the true words alone is solved by making every dot product large:
  every word then gets probability near 1 (chapter 06 shows it with numbers).
- Full softmax (the standard skip-gram): ``p(o | c) = exp(u_o . v_c) / sum_w exp(u_w . v_c)``,
  loss ``-log p(o | c)``; CBOW: the same with ``v_c`` replaced by the mean of the window's
  input vectors and ``o`` the centre word. One step costs O(V d): fine for small vocabularies.
- Negative sampling (Mikolov et al. 2013): ``-log sigma(u_o . h) - sum_k log sigma(-u_k . h)``
  with ``k`` negatives drawn from the unigram^0.75 distribution. One step costs O(k d).
"""
import numpy as np

from .. import functional as F
from ..tensor import Tensor


# --- the objectives -----------------------------------------------------------------------------
def c9_as_written(w_in, w_out, contexts, word):
    """C9 as written: ``y^ = sigma(sum_j w_j . e_w)`` with ``w_j = W_in[contexts[j]]`` and
    ``e_w = W_out[word]`` (``word`` may be an id array: one ``y^`` per candidate)."""
    summed = w_in[np.asarray(contexts)].sum(axis=0)            # sum_j w_j . e_w = (sum_j w_j) . e_w
    return F.sigmoid(w_out[np.asarray(word)] @ summed)


def negative_sampling_loss(h, u_true, u_neg):
    """C9 (standard): ``-log sigma(u_o . h) - sum_k log sigma(-u_k . h)``; ``h`` (d,),
    ``u_true`` (d,), ``u_neg`` (k, d)."""
    positive = (u_true * h).sum()
    negatives = (u_neg * h).sum(axis=1)
    return -(F.sigmoid(positive).log() + F.sigmoid(-negatives).log().sum())


def sg_negative_sampling_loss(w_in, w_out, center, context, negatives):
    """Skip-gram, negative sampling, gensim's pairing: the context word's input vector
    ``v_context`` predicts the centre word against ``negatives``."""
    return negative_sampling_loss(w_in[int(context)], w_out[int(center)],
                                  w_out[np.asarray(negatives)])


def cbow_negative_sampling_loss(w_in, w_out, center, contexts, negatives):
    """CBOW, negative sampling: ``h`` = mean of the context words' input vectors predicts the
    centre word against ``negatives``."""
    h = w_in[np.asarray(contexts)].mean(axis=0)
    return negative_sampling_loss(h, w_out[int(center)], w_out[np.asarray(negatives)])


def softmax_loss(h, w_out, target, reduction="sum"):
    """Full softmax: ``-log exp(u_o . h) / sum_w exp(u_w . h)`` for rows ``h`` (B, d) and
    targets ``o`` (B,): a cross-entropy over the whole vocabulary."""
    return F.cross_entropy(h @ w_out.transpose(0, 1), target, reduction=reduction)


# --- training pairs (NumPy) ---------------------------------------------------------------------
def keep_mask(corpus, keep_prob, rng):
    """Subsampling: keep word ``w`` with probability ``keep_prob[w]``."""
    return rng.random(len(corpus)) < keep_prob[corpus]


def window_pairs(corpus, sentence_ids, window, rng):
    """All (centre, context) position pairs with a reduced window: centre ``i`` draws
    ``b_i`` uniform in ``[0, window)`` and sees the words up to ``window - b_i`` away, within
    its sentence. Returns two int arrays of positions."""
    b = rng.integers(0, window, len(corpus))
    centers, contexts = [], []
    for dist in range(1, window + 1):
        left, right = np.arange(len(corpus) - dist), np.arange(dist, len(corpus))
        same = sentence_ids[left] == sentence_ids[right]
        for c, o in ((left, right), (right, left)):
            ok = same & (dist <= window - b[c])
            centers.append(c[ok])
            contexts.append(o[ok])
    return np.concatenate(centers), np.concatenate(contexts)


def window_contexts(corpus, sentence_ids, window, rng):
    """CBOW: for every position, the positions of its context (reduced window), as a padded
    (n, 2 window) array and a boolean mask; positions with no context are dropped."""
    n = len(corpus)
    b = rng.integers(0, window, n)
    pos = np.arange(n)
    slots = np.concatenate([-np.arange(window, 0, -1), np.arange(1, window + 1)])
    ctx = pos[:, None] + slots[None, :]
    inside = (ctx >= 0) & (ctx < n)
    ctx = np.clip(ctx, 0, n - 1)
    mask = inside & (sentence_ids[ctx] == sentence_ids[:, None]) \
        & (np.abs(slots)[None, :] <= (window - b)[:, None])
    has = mask.any(axis=1)
    return pos[has], ctx[has], mask[has]


# --- full-softmax training ----------------------------------------------------------------------
def train_full_softmax(w_in, w_out, corpus, offsets, keep_prob, sg, window, epochs, alpha,
                       min_alpha, rng, batch_size=64, callback=None):
    """Train ``w_in``/``w_out`` (float arrays, updated in place) with the full softmax by
    autograd and plain SGD: per batch, ``loss = sum of -log p`` and ``W -= lr * dloss/dW`` with
    ``lr`` decaying linearly from ``alpha`` to ``min_alpha``. Returns the mean loss per epoch."""
    sentence_ids = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    W_in = Tensor(w_in, requires_grad=True)
    W_out = Tensor(w_out, requires_grad=True)
    history = []
    for epoch in range(epochs):
        kept = keep_mask(corpus, keep_prob, rng) if keep_prob is not None \
            else np.ones(len(corpus), bool)
        words, sids = corpus[kept].astype(np.int64), sentence_ids[kept]
        if sg:
            c, o = window_pairs(words, sids, window, rng)
            order = rng.permutation(len(c))
            inputs, targets, masks = words[c[order]], words[o[order]], None
        else:
            c, ctx, mask = window_contexts(words, sids, window, rng)
            order = rng.permutation(len(c))
            inputs, targets, masks = words[ctx[order]], words[c[order]], mask[order]
        total, n_batches = 0.0, max(1, -(-len(targets) // batch_size))
        for k in range(n_batches):
            sl = slice(k * batch_size, (k + 1) * batch_size)
            if sg:
                h = F.embedding(inputs[sl], W_in)
            else:
                m = masks[sl].astype(w_in.dtype)
                summed = (F.embedding(inputs[sl], W_in) * Tensor(m[:, :, None])).sum(axis=1)
                h = summed / Tensor(m.sum(axis=1, keepdims=True))
            loss = softmax_loss(h, W_out, targets[sl])
            W_in.grad = W_out.grad = None
            loss.backward()
            progress = (epoch + k / n_batches) / epochs
            lr = max(alpha - (alpha - min_alpha) * progress, min_alpha)
            W_in.data -= lr * W_in.grad              # in place: w_in/w_out see the update
            W_out.data -= lr * W_out.grad
            total += float(loss.data)
            if callback is not None:
                callback(epoch, k, float(loss.data))
        history.append(total / max(len(targets), 1))
    return history
