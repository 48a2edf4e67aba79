"""Numba kernels for word2vec with negative sampling (B2, C9): one training epoch, skip-gram or
CBOW, over a corpus stored as one flat int32 array of word ids plus sentence offsets.

The math of one update (``h`` the input vector, ``u_t`` the output vector of word ``t``,
``sigma(x) = 1 / (1 + exp(-x))``, ``alpha`` the learning rate): for the true word ``o``
(label 1) and ``k`` words drawn from the unigram^0.75 table (label 0), the loss

    L = -log sigma(u_o . h) - sum_k log sigma(-u_k . h)                         (C9, standard)

has gradients ``dL/du_t = (sigma(u_t . h) - label_t) h`` and ``dL/dh = sum_t (sigma(u_t . h) -
label_t) u_t``. The kernel takes one SGD step: ``g_t = alpha (label_t - sigma(u_t . h))``,
``u_t += g_t h`` and ``h += sum_t g_t u_t`` (with each ``u_t`` read before its own update, as
in word2vec.c and gensim). Skip-gram: ``h`` is the input vector of one context word and the
target is the centre word (gensim's pairing); CBOW: ``h`` is the mean of the window's input
vectors, the target is the centre word, and every context vector receives the whole ``dL/dh``
step, not ``1/count`` of it (word2vec.c's and gensim's convention for ``cbow_mean=1``).

Everything else follows gensim 4's Cython loop so quality and speed compare like for like:
frequent words are dropped with gensim's keep-probability (``sample_ints``, a threshold on a
32-bit random number), each centre word gets a reduced window ``window - b`` with ``b`` uniform
in ``[0, window)``, negatives come from a binary search of the cumulative count^0.75 table
(a negative equal to the target is skipped), and the learning rate decays linearly with the
progress through the epochs. The sigmoid is computed exactly (no table, no +-6 cut-off), so a
step is exactly ``-alpha`` times the gradient of ``L``; ``tests/test_word2vec.py`` checks this
against tinylm's autograd.

Threads: the epoch's sentences are cut into ``len(seeds)`` contiguous chunks run under
``prange``; all threads write the shared ``syn0``/``syn1neg`` without locks ("Hogwild", as
word2vec.c and gensim do): with several threads the result depends on timing, with one it is
determined by the seeds. Each chunk has its own 48-bit linear congruential generator (the
one word2vec.c uses), seeded by the caller from a ``numpy.random.Generator``.
"""
import math

import numpy as np
from numba import njit, prange

LCG_MULT = np.uint64(25214903917)
LCG_ADD = np.uint64(11)
LCG_MASK = np.uint64((1 << 48) - 1)


@njit(cache=True)
def _next_random(state):
    """One step of word2vec.c's LCG: ``state' = (state * 25214903917 + 11) mod 2^48``."""
    return (state * LCG_MULT + LCG_ADD) & LCG_MASK


@njit(cache=True, fastmath=True)
def _dot(a, b):
    # fastmath lets LLVM reorder the sum into SIMD lanes (measured on 12k PTB sentences, one
    # thread: skip-gram 296k vs 199k words/s, CBOW 1.15M vs 0.87M, against fastmath=False)
    s = a.dtype.type(0)
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=True, fastmath=True)
def _axpy(alpha, x, y):
    """y += alpha * x."""
    for i in range(x.shape[0]):
        y[i] += alpha * x[i]


@njit(cache=True)
def _sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)                                 # no overflow for very negative x
    return e / (1.0 + e)


@njit(cache=True)
def _sample_negative(alias_threshold, alias_index, state):
    """A word id drawn with probability count^0.75 / sum count^0.75 in O(1), by Walker's alias
    method: pick a column k uniformly, then keep k with probability threshold[k] / 2^32, else
    take its alias. (word2vec.c and gensim binary-search a cumulative table instead: ~log2 V
    unpredictable branches per draw, a quarter of skip-gram's time here.)
    Returns (word id, the advanced random state)."""
    state = _next_random(state)
    k = np.int64((state >> np.uint64(16)) % np.uint64(alias_index.shape[0]))
    state = _next_random(state)
    u = (state >> np.uint64(16)) & np.uint64(0xFFFFFFFF)
    return (k if u < alias_threshold[k] else alias_index[k]), state


@njit(cache=True)
def _draw_targets(targets, center, negative, alias_threshold, alias_index, state):
    """``targets[0] = center``, then ``negative`` draws from the unigram^0.75 distribution,
    skipping any that hit the center word (as word2vec.c). Returns (how many targets, the
    advanced random state)."""
    n_t = 1
    targets[0] = center
    for _ in range(negative):
        t, state = _sample_negative(alias_threshold, alias_index, state)
        if t != center:
            targets[n_t] = t
            n_t += 1
    return n_t, state


@njit(cache=True)
def negative_sampling_update(h, syn1neg, targets, alpha, work, want_loss):
    """One negative-sampling step for input vector ``h``: ``targets[0]`` is the true word
    (label 1), the rest are negatives (label 0). Updates the output rows of ``syn1neg`` in
    place and adds ``-alpha dL/dh`` to ``work``; returns the loss ``L`` (0 unless
    ``want_loss``)."""
    loss = 0.0
    for n in range(targets.shape[0]):
        t = targets[n]
        label = 1.0 if n == 0 else 0.0
        f = _sigmoid(_dot(h, syn1neg[t]))
        g = h.dtype.type((label - f) * alpha)
        _axpy(g, syn1neg[t], work)
        _axpy(g, h, syn1neg[t])
        if want_loss:
            p = f if n == 0 else 1.0 - f
            loss -= math.log(max(p, 1e-30))
    return loss


@njit(cache=True)
def sg_step(syn0, syn1neg, center, context, negatives, alpha):
    """One skip-gram step on one sample: input ``syn0[context]``, true output ``center``, the
    given ``negatives``. Returns the loss before the step."""
    targets = np.empty(negatives.shape[0] + 1, dtype=np.int64)
    targets[0] = center
    targets[1:] = negatives
    work = np.zeros(syn0.shape[1], dtype=syn0.dtype)
    loss = negative_sampling_update(syn0[context], syn1neg, targets, alpha, work, True)
    _axpy(syn0.dtype.type(1), work, syn0[context])
    return loss


@njit(cache=True)
def cbow_step(syn0, syn1neg, center, contexts, negatives, alpha):
    """One CBOW step: ``h`` = mean of ``syn0[contexts]``, true output ``center``; each context
    vector then moves by the whole ``-alpha dL/dh`` (word2vec.c's convention)."""
    targets = np.empty(negatives.shape[0] + 1, dtype=np.int64)
    targets[0] = center
    targets[1:] = negatives
    h = np.zeros(syn0.shape[1], dtype=syn0.dtype)
    for c in contexts:
        _axpy(syn0.dtype.type(1), syn0[c], h)
    h /= contexts.shape[0]
    work = np.zeros(syn0.shape[1], dtype=syn0.dtype)
    loss = negative_sampling_update(h, syn1neg, targets, alpha, work, True)
    for c in contexts:
        _axpy(syn0.dtype.type(1), work, syn0[c])
    return loss


@njit(cache=True)
def _kept_words(corpus, start, stop, sample_ints, use_sample, buf, state):
    """Copy the words of ``corpus[start:stop]`` that survive subsampling into ``buf``; a word
    is kept when its ``sample_ints`` entry is at least a fresh 32-bit random number."""
    n = 0
    for pos in range(start, stop):
        w = corpus[pos]
        if use_sample:
            state = _next_random(state)
            if sample_ints[w] < np.int64((state >> np.uint64(16)) & np.uint64(0xFFFFFFFF)):
                continue
        buf[n] = w
        n += 1
    return n, state


@njit(cache=True, parallel=True)
def train_epoch(corpus, offsets, chunk_starts, syn0, syn1neg, alias_threshold, alias_index,
                sample_ints, sg,
                window, negative, epoch, epochs, start_alpha, end_alpha, seeds, want_loss):
    """One epoch over every sentence (sentence ``s`` is ``corpus[offsets[s]:offsets[s+1]]``).

    ``chunk_starts`` (length ``len(seeds) + 1``) cuts the sentences into chunks, one per
    ``prange`` iteration. Returns ``(loss_per_chunk, effective_words_per_chunk)``, where the
    effective words are those that survived subsampling.
    """
    n_chunks = seeds.shape[0]
    losses = np.zeros(n_chunks)
    effective = np.zeros(n_chunks, dtype=np.int64)
    use_sample = sample_ints.shape[0] > 0
    dim = syn0.shape[1]
    total_words = max(offsets[-1], 1)
    for c in prange(n_chunks):
        state = np.uint64(seeds[c])
        s0, s1 = chunk_starts[c], chunk_starts[c + 1]
        max_len = 0
        for s in range(s0, s1):
            max_len = max(max_len, offsets[s + 1] - offsets[s])
        buf = np.empty(max_len, dtype=np.int32)
        work = np.empty(dim, dtype=syn0.dtype)
        neu1 = np.empty(dim, dtype=syn0.dtype)
        targets = np.empty(negative + 1, dtype=np.int64)
        loss = 0.0
        n_eff = 0
        for s in range(s0, s1):
            # linear decay over all epochs' words, as gensim: alpha_end at the very end. The
            # chunks are taken in order by whichever thread is free, so a sentence's place in
            # the corpus is (very nearly) the share of the epoch already done
            progress = (epoch + offsets[s] / total_words) / epochs
            alpha = max(start_alpha - (start_alpha - end_alpha) * progress, end_alpha)
            n, state = _kept_words(corpus, offsets[s], offsets[s + 1], sample_ints, use_sample,
                                   buf, state)
            n_eff += n
            for i in range(n):
                state = _next_random(state)
                b = np.int64((state >> np.uint64(16)) & np.uint64(0xFFFFFFFF)) % window
                lo = max(0, i - window + b)
                hi = min(n, i + window + 1 - b)
                center = buf[i]
                if sg:
                    for j in range(lo, hi):
                        if j == i:
                            continue
                        n_t, state = _draw_targets(targets, center, negative,
                                                   alias_threshold, alias_index, state)
                        work[:] = 0
                        h = syn0[buf[j]]
                        loss += negative_sampling_update(h, syn1neg, targets[:n_t], alpha,
                                                         work, want_loss)
                        _axpy(syn0.dtype.type(1), work, h)
                else:
                    count = hi - lo - 1
                    if count == 0:
                        continue
                    neu1[:] = 0
                    for j in range(lo, hi):
                        if j != i:
                            _axpy(syn0.dtype.type(1), syn0[buf[j]], neu1)
                    neu1 /= count
                    n_t, state = _draw_targets(targets, center, negative, alias_threshold,
                                               alias_index, state)
                    work[:] = 0
                    loss += negative_sampling_update(neu1, syn1neg, targets[:n_t], alpha,
                                                     work, want_loss)
                    for j in range(lo, hi):
                        if j != i:
                            _axpy(syn0.dtype.type(1), work, syn0[buf[j]])
        losses[c] = loss
        effective[c] = n_eff
    return losses, effective
