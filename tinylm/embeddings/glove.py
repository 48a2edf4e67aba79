"""GloVe: global vectors from weighted least squares on log co-occurrence counts (B5, C10).

    from tinylm.embeddings.glove import GloVe
    model = GloVe(sentences, vector_size=100, window=10, min_count=5, epochs=25, seed=1)
    model.wv["king"]; model.wv.most_similar("king"); model.loss_history

The model of Pennington, Socher and Manning (2014), which the documents mis-state (B5: "word
frequency / inverse frequency statistics"; C10: ``f(w,c) = f(w) / (f(c) + f(w))``; see
``count_models.py`` for what those compute):

1. count ``X_ij``: how often word ``j`` occurs within ``window`` words of word ``i``, each
   occurrence weighted ``1 / distance`` (``co_occurrence``; symmetric by default);
2. minimise, over the nonzero ``X_ij`` only,

       J = sum_ij f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2                    (C10)
       f(x) = (x / x_max)^alpha  if x < x_max  else 1       (x_max = 100, alpha = 3/4)

   ``f`` lets rare (noisy) pairs count less and caps the weight of very frequent ones; it is
   0 at ``x = 0``, so the pairs never seen drop out (log 0 is never needed);
3. with AdaGrad (per-parameter step ``eta / sqrt(G)``, ``G`` the running sum of squared
   gradients, started at 1 as in glove.c), the entries visited in a new random order each epoch.

The word vector kept is ``w_i + w~_i`` (the paper, section 4.2: the two sets are equivalent up
to the random start when X is symmetric, and their sum is slightly better than either).

``objective_and_gradients`` is the full-batch formula in NumPy (for checks), and
``adagrad_epoch_reference`` one epoch entry by entry in plain NumPy, the readable twin of the
Numba kernel ``kernels/glove_cpu.train_epoch`` (``tests/test_glove.py`` checks they agree).
"""
import json
import time

import numba
import numpy as np

from ..errors import TinyLMError
from ..io import load_npz, save_npz
from ..kernels import glove_cpu
from ..text.vocab import Vocab
from .keyed_vectors import KeyedVectors

PAIRS_PER_CHUNK = 4_000_000          # (key, weight) pairs held at once while counting (64 MB)


def weighting(x, x_max=100.0, alpha=0.75):
    """f(x) = (x / x_max)^alpha for x < x_max, else 1 (C10, standard form), elementwise."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x < x_max, (np.minimum(x, x_max) / x_max) ** alpha, 1.0)


def encode(sentences, index):
    """The in-vocabulary word ids of all sentences as one int32 array, plus sentence offsets
    (``ids[offsets[s]:offsets[s+1]]`` is sentence ``s``). Out-of-vocabulary words are dropped
    before windows are taken (as GloVe's cooccur.c does with words below min_count)."""
    ids, offsets = [], [0]
    for sentence in sentences:
        ids.extend(index[w] for w in sentence if w in index)
        offsets.append(len(ids))
    return np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64)


def co_occurrence(ids, offsets, vocab_size, window=10, symmetric=True,
                  pairs_per_chunk=PAIRS_PER_CHUNK):
    """The sparse co-occurrence matrix ``X`` (1/distance weights) of an encoded corpus, as
    COO arrays ``(rows, cols, values)`` sorted by ``(row, col)``: int32, int32, float64.

    Sentences are processed in chunks of about ``pairs_per_chunk`` pairs; each chunk's pairs
    (key ``i * V + j``) are summed by a stable sort and ``np.add.reduceat``, then merged into
    the running total the same way, so the sums are exact up to the float order, which is fixed.
    """
    if window < 1:
        raise TinyLMError(f"co_occurrence: window must be >= 1, got {window!r}")
    V = int(vocab_size)
    n_sent = len(offsets) - 1
    keys_total = np.zeros(0, dtype=np.int64)
    vals_total = np.zeros(0, dtype=np.float64)
    s0 = 0
    while s0 < n_sent:
        # grow the chunk until it holds about pairs_per_chunk pairs (at least one sentence)
        s1 = min(n_sent, s0 + 1)
        while s1 < n_sent:
            step = max(1, (s1 - s0))
            nxt = min(n_sent, s1 + step)
            if glove_cpu.count_pairs(offsets, s0, nxt, window, symmetric) > pairs_per_chunk:
                break
            s1 = nxt
        n = glove_cpu.count_pairs(offsets, s0, s1, window, symmetric)
        keys = np.empty(n, dtype=np.int64)
        weights = np.empty(n, dtype=np.float64)
        written = glove_cpu.emit_pairs(ids, offsets, s0, s1, window, V, symmetric, keys,
                                       weights)
        assert written == n
        k, v = _sum_by_key(keys, weights)
        keys_total, vals_total = _sum_by_key(np.concatenate([keys_total, k]),
                                             np.concatenate([vals_total, v]))
        s0 = s1
    rows = (keys_total // V).astype(np.int32)
    cols = (keys_total % V).astype(np.int32)
    return rows, cols, vals_total


def _sum_by_key(keys, values):
    """The distinct keys (sorted) and the sum of the values of each."""
    if len(keys) == 0:
        return keys, values
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(values, starts)


def objective_and_gradients(W, Wc, b, bc, rows, cols, x, x_max=100.0, alpha=0.75):
    """Full-batch GloVe objective and its hand-derived gradients (C10, standard form).

        J = sum_e f(x_e) d_e^2,    d_e = w_{i_e} . w~_{j_e} + b_{i_e} + b~_{j_e} - log x_e
        dJ/dw_i  = sum_{e: i_e = i} 2 f(x_e) d_e w~_{j_e}     dJ/db_i  = sum_{e: i_e = i} 2 f d
        dJ/dw~_j = sum_{e: j_e = j} 2 f(x_e) d_e w_{i_e}      dJ/db~_j = sum_{e: j_e = j} 2 f d

    Returns ``(J, dW, dWc, db, dbc)``. The scatter-adds go through ``np.add.at`` (a word occurs
    in many entries)."""
    fx = weighting(x, x_max, alpha)
    d = np.einsum("ek,ek->e", W[rows], Wc[cols]) + b[rows] + bc[cols] - np.log(x)
    J = float(np.sum(fx * d * d))
    g = 2.0 * fx * d
    dW, dWc = np.zeros_like(W), np.zeros_like(Wc)
    db, dbc = np.zeros_like(b), np.zeros_like(bc)
    np.add.at(dW, rows, g[:, None] * Wc[cols])
    np.add.at(dWc, cols, g[:, None] * W[rows])
    np.add.at(db, rows, g)
    np.add.at(dbc, cols, g)
    return J, dW, dWc, db, dbc


def adagrad_epoch_reference(params, accumulators, rows, cols, x, order, eta, x_max=100.0,
                            alpha=0.75):
    """One AdaGrad epoch, entry by entry, in plain NumPy: the readable twin of
    ``glove_cpu.train_epoch`` (one thread). ``params = (W, Wc, b, bc)`` and
    ``accumulators = (gW, gWc, gb, gbc)`` are updated in place; returns the epoch's loss.

    For each entry ``e`` in ``order``: ``g = f(x_e) d_e * (w~_j, w_i, 1, 1)`` (the gradient of
    ``J_e / 2``, glove.c's convention), ``theta -= eta g / sqrt(G)``, then ``G += g^2``."""
    W, Wc, b, bc = params
    gW, gWc, gb, gbc = accumulators
    fx = weighting(x, x_max, alpha)
    loss = 0.0
    for e in order:
        i, j = rows[e], cols[e]
        diff = W[i] @ Wc[j] + b[i] + bc[j] - np.log(x[e])
        fdiff = fx[e] * diff
        loss += fdiff * diff
        g_w, g_c = fdiff * Wc[j], fdiff * W[i]
        W[i] -= eta * g_w / np.sqrt(gW[i])
        Wc[j] -= eta * g_c / np.sqrt(gWc[j])
        gW[i] += g_w ** 2
        gWc[j] += g_c ** 2
        b[i] -= eta * fdiff / np.sqrt(gb[i])
        bc[j] -= eta * fdiff / np.sqrt(gbc[j])
        gb[i] += fdiff ** 2
        gbc[j] += fdiff ** 2
    return float(loss)


class GloVe:
    """GloVe word vectors (C10, standard form); ``model.wv`` is a ``KeyedVectors`` of
    ``W + W~``.

    ``sentences``: a list of token lists; when given, the vocabulary is built, the
    co-occurrences counted and the model trained at once (else call ``build`` then ``train``).
    ``max_vocab`` keeps only the most frequent words. ``workers > 1`` runs the epoch on several
    threads (Hogwild: fast, not reproducible); ``workers=1`` gives the same vectors for the
    same seed.
    """

    def __init__(self, sentences=None, vector_size=100, window=10, min_count=5, x_max=100,
                 alpha=0.75, learning_rate=0.05, epochs=25, workers=2, seed=1, symmetric=True,
                 max_vocab=None):
        for name, value in (("vector_size", vector_size), ("window", window),
                            ("min_count", min_count), ("epochs", epochs),
                            ("workers", workers)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise TinyLMError(f"GloVe: {name} must be an integer >= 1, got {value!r}")
        if max_vocab is not None and (not isinstance(max_vocab, (int, np.integer))
                                      or max_vocab < 1):
            raise TinyLMError(f"GloVe: max_vocab must be None or an integer >= 1, got "
                              f"{max_vocab!r}")
        for name, value in (("x_max", x_max), ("alpha", alpha),
                            ("learning_rate", learning_rate)):
            if not (isinstance(value, (int, float, np.number)) and np.isfinite(value)
                    and value > 0):
                raise TinyLMError(f"GloVe: {name} must be a positive number, got {value!r}")
        self.vector_size, self.window, self.min_count = int(vector_size), int(window), \
            int(min_count)
        self.x_max, self.alpha, self.learning_rate = float(x_max), float(alpha), \
            float(learning_rate)
        self.epochs, self.workers, self.seed = int(epochs), int(workers), seed
        self.symmetric, self.max_vocab = bool(symmetric), max_vocab
        self.rng = np.random.default_rng(seed)
        self.wv, self.cooccurrence, self.loss_history = None, None, []
        if sentences is not None:
            self.build(sentences)
            self.train()

    # --- vocabulary and counts -------------------------------------------------------------
    def build(self, sentences):
        """Vocabulary (most frequent first), the co-occurrence counts, and the starting
        vectors: uniform in ``[-0.5, 0.5) / vector_size`` (glove.c), biases too."""
        sentences = list(sentences)
        try:
            vocab = Vocab.build(sentences, min_count=self.min_count, max_size=self.max_vocab,
                                specials=())
        except TinyLMError as err:
            raise TinyLMError(f"GloVe: {err} ({len(sentences)} sentences, "
                              f"min_count={self.min_count})") from None
        self.index_to_key, self.counts = vocab.itos, vocab.counts
        self._index = vocab.stoi
        V, d = len(self.index_to_key), self.vector_size
        start = time.perf_counter()
        ids, offsets = encode(sentences, self._index)
        self.cooccurrence = co_occurrence(ids, offsets, V, self.window, self.symmetric)
        self.count_seconds = time.perf_counter() - start
        if len(self.cooccurrence[2]) == 0:
            raise TinyLMError(f"GloVe: no two vocabulary words occur within window="
                              f"{self.window} of each other ({len(ids)} words kept of "
                              f"{V} types); give longer sentences or a larger corpus")
        self.W = (self.rng.random((V, d)) - 0.5) / d
        self.Wc = (self.rng.random((V, d)) - 0.5) / d
        self.b = (self.rng.random(V) - 0.5) / d
        self.bc = (self.rng.random(V) - 0.5) / d
        self.gW, self.gWc = np.ones((V, d)), np.ones((V, d))
        self.gb, self.gbc = np.ones(V), np.ones(V)
        self._set_wv()
        return self

    def _set_wv(self):
        self.wv = KeyedVectors(self.index_to_key, (self.W + self.Wc).astype(np.float32),
                               counts=self.counts)

    # --- training --------------------------------------------------------------------------
    def train(self, epochs=None):
        """Run ``epochs`` AdaGrad epochs (default: the constructor's); appends each epoch's
        ``J`` to ``loss_history`` and returns it."""
        if self.cooccurrence is None:
            raise TinyLMError("GloVe.train: call build(sentences) first")
        epochs = self.epochs if epochs is None else int(epochs)
        rows, cols, x = self.cooccurrence
        log_x, f_x = np.log(x), weighting(x, self.x_max, self.alpha)
        threads = min(self.workers, numba.config.NUMBA_NUM_THREADS)
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        start = time.perf_counter()
        try:
            for _ in range(epochs):
                order = self.rng.permutation(len(x))
                losses = glove_cpu.train_epoch(rows, cols, log_x, f_x, order, self.workers,
                                               self.W, self.Wc, self.b, self.bc, self.gW,
                                               self.gWc, self.gb, self.gbc,
                                               self.learning_rate)
                loss = float(losses.sum())
                if not np.isfinite(loss):
                    raise TinyLMError(f"GloVe.train: the loss became {loss} (learning_rate="
                                      f"{self.learning_rate} too large?)")
                self.loss_history.append(loss)
        finally:
            numba.set_num_threads(previous)
        self.train_seconds = time.perf_counter() - start
        self._set_wv()
        return self.loss_history

    def objective(self):
        """J at the current parameters (full batch, ``objective_and_gradients``)."""
        rows, cols, x = self.cooccurrence
        return objective_and_gradients(self.W, self.Wc, self.b, self.bc, rows, cols, x,
                                       self.x_max, self.alpha)[0]

    # --- files -----------------------------------------------------------------------------
    _CONFIG = ("vector_size", "window", "min_count", "x_max", "alpha", "learning_rate",
               "epochs", "workers", "seed", "symmetric")

    def save(self, path):
        """Everything (vectors, biases, accumulators, counts, settings, the random generator's
        state, so that training resumes exactly) as one ``.npz``."""
        if self.wv is None:
            raise TinyLMError("GloVe.save: the model has no vocabulary yet")
        rows, cols, x = self.cooccurrence
        save_npz(path, format=np.array("tinylm.GloVe"),
                 index_to_key=np.array(self.index_to_key, dtype=str), counts=self.counts,
                 W=self.W, Wc=self.Wc, b=self.b, bc=self.bc, gW=self.gW, gWc=self.gWc,
                 gb=self.gb, gbc=self.gbc, rows=rows, cols=cols, x=x,
                 loss_history=np.array(self.loss_history, dtype=np.float64),
                 rng_state=np.array(json.dumps(self.rng.bit_generator.state)),
                 config_names=np.array(self._CONFIG, dtype=str),
                 config=np.array([float(getattr(self, k)) for k in self._CONFIG]))

    @classmethod
    def load(cls, path):
        data = load_npz(path, "GloVe")
        if str(data.get("format", "")) != "tinylm.GloVe":
            raise TinyLMError(f"GloVe.load: {path} is not a saved tinylm GloVe model")
        config = dict(zip(data["config_names"].tolist(), data["config"].tolist()))
        floats = ("x_max", "alpha", "learning_rate")
        model = cls(**{k: (v if k in floats else bool(v) if k == "symmetric" else int(v))
                       for k, v in config.items()})
        model.index_to_key = data["index_to_key"].tolist()
        model.counts = data["counts"]
        model._index = {w: i for i, w in enumerate(model.index_to_key)}
        for name in ("W", "Wc", "b", "bc", "gW", "gWc", "gb", "gbc"):
            setattr(model, name, np.ascontiguousarray(data[name], dtype=np.float64))
        model.cooccurrence = (data["rows"], data["cols"], data["x"])
        model.loss_history = data["loss_history"].tolist()
        model.rng.bit_generator.state = json.loads(str(data["rng_state"]))
        model._set_wv()
        return model

    def __repr__(self):
        size = 0 if self.wv is None else len(self.wv)
        nnz = 0 if self.cooccurrence is None else len(self.cooccurrence[2])
        return (f"GloVe(vocab={size}, vector_size={self.vector_size}, window={self.window}, "
                f"nonzeros={nnz})")
