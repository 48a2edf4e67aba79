"""Word2Vec with gensim's API: skip-gram and CBOW (B2), negative sampling or full softmax (C9).

    from tinylm.embeddings import Word2Vec
    model = Word2Vec(sentences, vector_size=100, window=5, negative=5, min_count=5, sg=1,
                     epochs=5, workers=2, seed=1)
    model.wv["king"]; model.wv.most_similar("king")
    model.wv.evaluate_word_pairs(path); model.wv.evaluate_word_analogies(path)

What happens, in gensim's order (so the two give vectors of the same quality):

1. vocabulary: the words seen at least ``min_count`` times, most frequent first (ties: the
   word seen first goes last, as gensim orders them); ``max_final_vocab`` raises ``min_count``
   until the table fits, as gensim.
2. subsampling of frequent words: with ``t = sample * (total count)``, word ``w`` of count ``c``
   is kept with probability ``min(1, (sqrt(c / t) + 1) t / c)`` each time it occurs.
3. windows: each centre word sees ``window - b`` words each side, ``b`` uniform in
   ``[0, window)`` (nearer words are used more often), within its sentence.
4. negative sampling (``negative=k > 0``): ``k`` negatives per pair from the unigram
   distribution raised to ``ns_exponent=0.75``; the Numba kernel runs the epoch on
   ``workers`` threads with lock-free ("Hogwild") updates. With ``workers > 1`` the result
   depends on thread timing, as in gensim and word2vec.c; ``workers=1`` is reproducible.
   ``device="cuda"`` runs the same updates on a GPU instead, thousands of examples at once
   with atomic adds (``kernels/word2vec_gpu.py``; never reproducible to the last bit).
   ``negative=0`` (and ``hs=0``): the full softmax over the vocabulary, trained through the
   autograd engine (``word2vec_autograd.py``); O(V) per pair, for small vocabularies and for
   teaching. gensim has no full softmax (it would need ``hs=1``, hierarchical softmax, which
   tinylm does not implement).
5. the learning rate falls linearly from ``alpha`` to ``min_alpha`` over all epochs.

Input vectors start uniform in ``[-0.5, 0.5) / vector_size``, output vectors at zero, float32.
"""
import math
import time
from collections import Counter

import numba
import numpy as np

from ..backend import check_device
from ..errors import TinyLMError
from ..io import load_npz, save_npz
from ..kernels import word2vec_cpu
from .keyed_vectors import KeyedVectors
from .word2vec_autograd import train_full_softmax

CUM_TABLE_DOMAIN = 2 ** 31 - 1                       # gensim's range for the cumulative table



def alias_table(p):
    """Walker's alias tables for drawing i with probability p[i] in O(1) (Vose's build).

    Scale p to mean 1 (q = V p); columns with q < 1 ("small") are topped up to 1 by an alias
    column with q > 1, which gives away the difference. Column k then keeps k with
    probability q[k] (as a 32-bit threshold) and otherwise yields alias[k]."""
    V = len(p)
    q = np.asarray(p, dtype=np.float64) * V
    alias = np.arange(V, dtype=np.int64)
    small = [i for i in range(V) if q[i] < 1.0]
    large = [i for i in range(V) if q[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        alias[s] = g
        q[g] -= 1.0 - q[s]
        (small if q[g] < 1.0 else large).append(g)
    for i in small + large:                   # what is left is 1 up to rounding
        q[i] = 1.0
    threshold = np.minimum(np.round(q * 2.0 ** 32), 2.0 ** 32).astype(np.uint64)
    return threshold, alias

class Word2Vec:
    """Word vectors trained with word2vec; ``model.wv`` is a ``KeyedVectors``.

    Parameters follow ``gensim.models.Word2Vec`` (same names and defaults, except
    ``workers=2``). ``sentences``: a list of token lists; when given, the vocabulary is built
    and the model trained at once, else call ``build_vocab`` and ``train``.
    """

    def __init__(self, sentences=None, vector_size=100, alpha=0.025, window=5, min_count=5,
                 max_final_vocab=None, sample=1e-3, seed=1, workers=2, min_alpha=0.0001, sg=0,
                 hs=0, negative=5, ns_exponent=0.75, cbow_mean=1, epochs=5, compute_loss=False,
                 batch_words=64, device="cpu"):
        for name, value, low in (("vector_size", vector_size, 1), ("window", window, 1),
                                 ("min_count", min_count, 1), ("workers", workers, 1),
                                 ("epochs", epochs, 1), ("negative", negative, 0)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise TinyLMError(f"Word2Vec: {name} must be an integer >= {low}, got {value!r}")
        if sg not in (0, 1):
            raise TinyLMError(f"Word2Vec: sg must be 0 (CBOW) or 1 (skip-gram), got {sg!r}")
        if hs:
            raise TinyLMError("Word2Vec: hierarchical softmax (hs=1) is not implemented; use "
                              "negative > 0 (negative sampling) or negative=0 (full softmax)")
        if cbow_mean != 1:
            raise TinyLMError(f"Word2Vec: only cbow_mean=1 (the mean of the context vectors) "
                              f"is implemented, got {cbow_mean!r}")
        if not 0 <= sample < 1:
            raise TinyLMError(f"Word2Vec: sample must be in [0, 1), got {sample!r}")
        if not (isinstance(ns_exponent, (int, float, np.number)) and np.isfinite(ns_exponent)):
            raise TinyLMError(f"Word2Vec: ns_exponent must be a finite number, got "
                              f"{ns_exponent!r}")
        if not (alpha > 0 and 0 <= min_alpha <= alpha):
            raise TinyLMError(f"Word2Vec: need alpha > 0 and 0 <= min_alpha <= alpha, got "
                              f"alpha={alpha!r}, min_alpha={min_alpha!r}")
        self.device = check_device(device, "Word2Vec")
        if self.device == "cuda":
            if negative == 0:
                raise TinyLMError("Word2Vec: device='cuda' trains with negative sampling; the "
                                  "full softmax (negative=0) runs on the CPU only")
            from .. import cuda
            cuda.require("Word2Vec(device='cuda')")
        self.vector_size, self.alpha, self.min_alpha = int(vector_size), alpha, min_alpha
        self.window, self.min_count, self.max_final_vocab = int(window), min_count, max_final_vocab
        self.sample, self.seed, self.workers = sample, seed, int(workers)
        self.sg, self.hs, self.negative, self.ns_exponent = sg, hs, int(negative), ns_exponent
        self.cbow_mean, self.epochs, self.compute_loss = cbow_mean, int(epochs), compute_loss
        self.batch_words = batch_words                 # pairs per autograd batch (softmax)
        self.rng = np.random.default_rng(seed)
        self.wv = None
        self.syn1neg = None
        self.running_training_loss = 0.0
        self.loss_history = []
        self.train_seconds = 0.0
        if sentences is not None:
            self.build_vocab(sentences)
            self.train(sentences, epochs=self.epochs)

    # --- vocabulary ----------------------------------------------------------------------
    def build_vocab(self, sentences):
        """Count the words, keep those with ``count >= min_count`` (raised by
        ``max_final_vocab``), and set up the vectors, the subsampling and negative tables."""
        counts = Counter()
        n_sentences = 0
        for i, sentence in enumerate(sentences):
            if isinstance(sentence, str):
                raise TinyLMError(f"Word2Vec: sentences must be lists of tokens; sentence {i} "
                                  f"is a string ({sentence[:30]!r}); split it first")
            counts.update(sentence)
            n_sentences += 1
        if not counts:
            raise TinyLMError(f"Word2Vec: the corpus is empty ({n_sentences} sentences, 0 "
                              f"words); give a list of token lists")
        min_count = self.min_count
        if self.max_final_vocab is not None and len(counts) > self.max_final_vocab:
            ranked = sorted(counts.values(), reverse=True)
            min_count = max(min_count, ranked[self.max_final_vocab] + 1)
        top_word, top_count = counts.most_common(1)[0]
        if top_count < min_count:
            raise TinyLMError(f"Word2Vec: min_count={min_count} leaves no word (the most "
                              f"frequent, {top_word!r}, occurs {top_count} times); lower "
                              f"min_count or give a larger corpus")
        kept = [(w, c) for w, c in counts.items() if c >= min_count]
        # most frequent first; ties: the word seen first goes LAST (gensim's lexsort order,
        # so that restrict_vocab and the ids agree with gensim's on the same corpus)
        kept_counts = np.array([c for _, c in kept], dtype=np.int64)
        order = np.lexsort((-np.arange(len(kept)), -kept_counts))
        words, word_counts = [kept[i][0] for i in order], kept_counts[order]
        self.effective_min_count = min_count
        self.corpus_total_words = sum(counts.values())
        self._set_vocab(words, word_counts)
        # vectors: uniform(-0.5, 0.5) / d for the inputs (gensim), zeros for the outputs
        V, d = len(words), self.vector_size
        vectors = ((self.rng.random((V, d), dtype=np.float32) - 0.5) / d).astype(np.float32)
        self.wv = KeyedVectors(words, vectors, counts=word_counts)
        self.syn1neg = np.zeros((V, d), dtype=np.float32)
        return self

    def _set_vocab(self, words, counts):
        counts = np.asarray(counts, dtype=np.int64)
        self._index = {w: i for i, w in enumerate(words)}
        retained = int(counts.sum())
        if self.sample > 0:
            threshold = self.sample * retained
            keep = (np.sqrt(counts / threshold) + 1) * (threshold / counts)
            self.keep_prob = np.minimum(keep, 1.0)
            # gensim's integer form: keep when sample_int >= a 32-bit random number
            self.sample_ints = np.round(self.keep_prob * 2 ** 32).astype(np.int64)
        else:
            self.keep_prob = None
            self.sample_ints = np.zeros(0, dtype=np.int64)
        power = counts.astype(np.float64) ** self.ns_exponent
        self.cum_table = np.round(np.cumsum(power) / power.sum() * CUM_TABLE_DOMAIN).astype(
            np.int64)                                   # gensim's table, kept to compare
        self.alias_threshold, self.alias_index = alias_table(power / power.sum())

    def _encode(self, sentences):
        """One flat int32 array of the in-vocabulary word ids and the sentence offsets
        (out-of-vocabulary words are dropped before windows are taken, as in gensim)."""
        index = self._index
        ids, offsets, raw = [], [0], 0
        for sentence in sentences:
            raw += len(sentence)
            kept = [index[w] for w in sentence if w in index]
            ids.extend(kept)
            offsets.append(len(ids))
        return (np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64), raw)

    # --- training ------------------------------------------------------------------------
    def train(self, sentences, epochs=None, total_examples=None, total_words=None,
              start_alpha=None, end_alpha=None, compute_loss=None):
        """Train on ``sentences`` for ``epochs`` (default: the constructor's). Returns
        ``(effective_words, raw_words)`` like gensim: words trained on after subsampling, and
        words read, both summed over epochs. ``total_examples``/``total_words`` are accepted
        for gensim compatibility (the corpus is counted anyway)."""
        if self.wv is None:
            raise TinyLMError("Word2Vec.train: build_vocab(sentences) first")
        epochs = self.epochs if epochs is None else int(epochs)
        start_alpha = self.alpha if start_alpha is None else start_alpha
        end_alpha = self.min_alpha if end_alpha is None else end_alpha
        want_loss = self.compute_loss if compute_loss is None else compute_loss
        corpus, offsets, raw = self._encode(sentences)
        if len(corpus) == 0:
            raise TinyLMError(f"Word2Vec.train: none of the {raw} words of these sentences is "
                              f"in the vocabulary ({len(self.wv)} words)")
        start = time.perf_counter()
        if self.negative == 0:
            self.loss_history = train_full_softmax(
                self.wv.vectors, self.syn1neg, corpus, offsets, self.keep_prob, self.sg,
                self.window, epochs, start_alpha, end_alpha, self.rng, self.batch_words)
            effective = int(round(len(corpus) * epochs * (
                1.0 if self.keep_prob is None else self.keep_prob[corpus].mean())))
        else:
            effective = self._train_negative_sampling(corpus, offsets, epochs, start_alpha,
                                                      end_alpha, want_loss)
        self.train_seconds = time.perf_counter() - start
        self.wv.fill_norms()
        self.raw_words = raw * epochs
        self.words_per_second = self.raw_words / max(self.train_seconds, 1e-9)
        return effective, self.raw_words

    # Each epoch is cut into this many chunks per worker; threads take the next free chunk
    # (prange with chunk size 1), so a thread slowed down by other work on the machine does
    # not leave the others idle at the end of the epoch (gensim's job queue does the same).
    CHUNKS_PER_WORKER = 8

    def _chunks(self, offsets):
        """Cut the sentences into runs of about equal word counts, ``CHUNKS_PER_WORKER`` per
        worker (one run per sentence at most)."""
        n_sent = len(offsets) - 1
        n_chunks = max(1, min(self.workers * self.CHUNKS_PER_WORKER, n_sent))
        targets = np.linspace(0, offsets[-1], n_chunks + 1)
        starts = np.searchsorted(offsets, targets).clip(0, n_sent)
        starts[0], starts[-1] = 0, n_sent
        return np.maximum.accumulate(starts).astype(np.int64)

    def _train_negative_sampling(self, corpus, offsets, epochs, start_alpha, end_alpha,
                                 want_loss):
        if self.device == "cuda":
            return self._train_negative_sampling_gpu(corpus, offsets, epochs, start_alpha,
                                                     end_alpha, want_loss)
        chunk_starts = self._chunks(offsets)
        threads = min(self.workers, numba.config.NUMBA_NUM_THREADS)
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        effective = 0
        self.loss_history = []
        try:
            for epoch in range(epochs):
                seeds = self.rng.integers(1, 2 ** 48, len(chunk_starts) - 1, dtype=np.uint64)
                with numba.parallel_chunksize(1):
                    losses, eff = word2vec_cpu.train_epoch(
                        corpus, offsets, chunk_starts, self.wv.vectors, self.syn1neg,
                        self.alias_threshold, self.alias_index, self.sample_ints,
                        bool(self.sg), self.window,
                        self.negative, epoch, epochs, float(start_alpha), float(end_alpha),
                        seeds, bool(want_loss))
                effective += int(eff.sum())
                self.loss_history.append(float(losses.sum()))
        finally:
            numba.set_num_threads(previous)
        self.running_training_loss = sum(self.loss_history)
        return effective

    def _train_negative_sampling_gpu(self, corpus, offsets, epochs, start_alpha, end_alpha,
                                     want_loss):
        """The vectors go to the GPU for the whole call and come back at the end."""
        from .. import cuda
        from ..kernels import word2vec_gpu
        cupy = cuda.require("Word2Vec(device='cuda')")
        syn0, syn1neg = cupy.asarray(self.wv.vectors), cupy.asarray(self.syn1neg)
        effective = 0
        self.loss_history = []
        for epoch in range(epochs):
            loss, eff = word2vec_gpu.train_epoch(
                syn0, syn1neg, corpus, offsets, self.alias_threshold, self.alias_index,
                self.sample_ints, bool(self.sg), self.window, self.negative, epoch, epochs,
                float(start_alpha), float(end_alpha), self.rng, bool(want_loss), xp=cupy,
                update=word2vec_gpu.update_gpu)
            effective += eff
            self.loss_history.append(loss)
        self.wv.vectors[...] = cupy.asnumpy(syn0)
        self.syn1neg[...] = cupy.asnumpy(syn1neg)
        self.running_training_loss = sum(self.loss_history)
        return effective

    def get_latest_training_loss(self):
        """The summed loss of the last ``train`` call (with ``compute_loss=True``)."""
        return self.running_training_loss

    # --- files ---------------------------------------------------------------------------
    _CONFIG = ("vector_size", "alpha", "window", "min_count", "sample", "seed", "workers",
               "min_alpha", "sg", "hs", "negative", "ns_exponent", "cbow_mean", "epochs")

    def save(self, path):
        """The whole model (input and output vectors, counts, settings) as one ``.npz``.
        For the vectors alone in the word2vec text format: ``model.wv.save_word2vec_format``."""
        if self.wv is None:
            raise TinyLMError("Word2Vec.save: the model has no vocabulary yet")
        config = np.array([float(getattr(self, k)) for k in self._CONFIG])
        save_npz(path, format=np.array("tinylm.Word2Vec"),
                 index_to_key=np.array(self.wv.index_to_key, dtype=str),
                 vectors=self.wv.vectors, syn1neg=self.syn1neg, counts=self.wv.counts,
                 config_names=np.array(self._CONFIG, dtype=str), config=config)

    @classmethod
    def load(cls, path):
        data = load_npz(path, "Word2Vec")
        if str(data.get("format", "")) != "tinylm.Word2Vec":
            raise TinyLMError(f"Word2Vec.load: {path} is not a saved tinylm Word2Vec model")
        config = dict(zip(data["config_names"].tolist(), data["config"].tolist()))
        kwargs = {k: (int(v) if float(v).is_integer() and k not in ("alpha", "min_alpha",
                                                                    "sample", "ns_exponent")
                      else v) for k, v in config.items()}
        model = cls(**kwargs)
        model._set_vocab(data["index_to_key"].tolist(), data["counts"])
        model.wv = KeyedVectors(data["index_to_key"].tolist(), data["vectors"], data["counts"])
        model.syn1neg = np.ascontiguousarray(data["syn1neg"], dtype=np.float32)
        return model

    def __repr__(self):
        size = 0 if self.wv is None else len(self.wv)
        mode = "skip-gram" if self.sg else "CBOW"
        loss = f"negative={self.negative}" if self.negative else "full softmax"
        return f"Word2Vec({mode}, {loss}, vocab={size}, vector_size={self.vector_size})"


def keep_probability(count, sample, total):
    """Subsampling (gensim / word2vec.c): ``P(keep) = min(1, (sqrt(c / t) + 1) t / c)`` with
    ``t = sample * total``."""
    t = sample * total
    return min(1.0, (math.sqrt(count / t) + 1) * t / count)
