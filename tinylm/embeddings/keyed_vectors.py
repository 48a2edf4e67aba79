"""KeyedVectors: a table of word vectors with gensim's API (B2, B5, C13).

The same object is what ``Word2Vec(...).wv`` and GloVe give back, and it answers the questions
one asks of word vectors:

- ``kv["king"]`` the vector, ``kv.similarity(a, b)`` the cosine ``a.b / (|a| |b|)``;
- ``kv.most_similar(positive=["king", "woman"], negative=["man"])``: the words whose unit vectors
  are closest (by cosine) to ``unit(sum_i w_i unit(x_i))`` with ``w = +1`` for positives and
  ``-1`` for negatives (the "3CosAdd" vector offset), the input words left out;
- ``kv.evaluate_word_pairs(path)``: Pearson and Spearman correlation between the model's cosine
  and human similarity judgements (the wordsim353 format: ``word1<TAB>word2<TAB>score``);
- ``kv.evaluate_word_analogies(path)``: accuracy on ``a b c d`` questions (``b - a + c ~ d``,
  the questions-words format with ``: section`` headers).

The method names, arguments and return values follow gensim 4 (``gensim.models.KeyedVectors``),
so code written for one runs on the other; ``tests/test_keyed_vectors.py`` checks the numbers
against gensim on the same vectors. The correlations' p-values are computed here, without SciPy:
both are the two-sided t-test with ``n - 2`` degrees of freedom, which is the regularised
incomplete beta function ``p = I_{1 - r^2}((n - 2) / 2, 1 / 2)`` (``_betainc`` below).

Files: ``save``/``load`` write ``.npz`` (no pickle); ``save_word2vec_format`` /
``load_word2vec_format`` the word2vec C tool's format (text: a ``"V d"`` header line, then
``word v1 ... vd`` per line; binary: the same header, then ``word `` and ``d`` little-endian
float32 per word).
"""
import math
from collections import namedtuple
from itertools import chain
from pathlib import Path

import numpy as np

from ..errors import ShapeError, TinyLMError
from ..io import atomic_write, load_npz, save_npz

# the shapes of SciPy's results (``.statistic``, ``.pvalue``; unpack as ``r, p = result``)
PearsonResult = namedtuple("PearsonResult", ["statistic", "pvalue"])


class SpearmanResult(namedtuple("SpearmanResult", ["statistic", "pvalue"])):
    """``(statistic, pvalue)``; ``.correlation`` is the name older SciPy used for the statistic."""

    @property
    def correlation(self):
        return self.statistic


class VocabularyError(TinyLMError, KeyError):
    """A word is not in the vocabulary. Also a ``KeyError``, as in gensim and in a dict."""

    def __str__(self):      # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class KeyedVectors:
    """``KeyedVectors(index_to_key, vectors, counts=None)``: word ``index_to_key[i]`` has vector
    ``vectors[i]`` (float32, shape ``(V, d)``) and, optionally, corpus count ``counts[i]``."""

    def __init__(self, index_to_key, vectors, counts=None):
        index_to_key = [str(k) for k in index_to_key]
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ShapeError(f"KeyedVectors: vectors must be a 2-D (V, d) array, got shape "
                             f"{vectors.shape}")
        if vectors.shape[0] != len(index_to_key):
            raise ShapeError(f"KeyedVectors: {len(index_to_key)} keys but {vectors.shape[0]} "
                             f"vectors (shape {vectors.shape})")
        if len(set(index_to_key)) != len(index_to_key):
            dup = next(k for i, k in enumerate(index_to_key) if k in index_to_key[:i])
            raise TinyLMError(f"KeyedVectors: keys must be distinct, {dup!r} occurs twice")
        if not np.issubdtype(vectors.dtype, np.floating):
            raise TinyLMError(f"KeyedVectors: vectors must be floating point, got {vectors.dtype}")
        self.index_to_key = index_to_key
        self.key_to_index = {k: i for i, k in enumerate(index_to_key)}
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if counts is not None:
            counts = np.asarray(counts, dtype=np.int64)
            if counts.shape != (len(index_to_key),):
                raise ShapeError(f"KeyedVectors: counts must have shape ({len(index_to_key)},), "
                                 f"got {counts.shape}")
        self.counts = counts
        self._normed = None

    # --- lookups -------------------------------------------------------------------------
    @property
    def vector_size(self):
        return self.vectors.shape[1]

    def __len__(self):
        return len(self.index_to_key)

    def __contains__(self, key):
        return key in self.key_to_index

    has_index_for = __contains__

    def get_index(self, key, default=None):
        """The row of ``key``; ``default`` if given, else a ``VocabularyError`` naming the key."""
        idx = self.key_to_index.get(key)
        if idx is not None:
            return idx
        if isinstance(key, (int, np.integer)) and 0 <= key < len(self):
            return int(key)                         # gensim also accepts a row number
        if default is not None:
            return default
        raise VocabularyError(f"{key!r} is not in the vocabulary ({len(self)} words)")

    def get_vector(self, key, norm=False):
        """The vector of ``key`` (a view of the table); ``norm=True``: divided by its length."""
        idx = self.get_index(key)
        return self.get_normed_vectors()[idx] if norm else self.vectors[idx]

    def __getitem__(self, keys):
        if isinstance(keys, (str, int, np.integer)):
            return self.get_vector(keys)
        return np.stack([self.get_vector(k) for k in keys])

    def get_vecattr(self, key, attr):
        """gensim's ``get_vecattr(word, "count")``: the corpus count of ``key``."""
        if attr != "count":
            raise TinyLMError(f"KeyedVectors.get_vecattr: only 'count' is kept, got {attr!r}")
        if self.counts is None:
            raise TinyLMError("KeyedVectors.get_vecattr: these vectors carry no counts")
        return int(self.counts[self.get_index(key)])

    def get_normed_vectors(self):
        """Every vector divided by its Euclidean length (cached; zero vectors stay zero)."""
        if self._normed is None or self._normed.shape != self.vectors.shape:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._normed = self.vectors / np.where(norms > 0, norms, 1).astype(np.float32)
        return self._normed

    def fill_norms(self, force=False):
        """Recompute the unit vectors (call after changing ``vectors`` in place)."""
        self._normed = None
        self.get_normed_vectors()

    # --- similarity ----------------------------------------------------------------------
    def similarity(self, w1, w2):
        """Cosine similarity ``a.b / (|a| |b|)`` of two words (C13)."""
        return float(np.dot(self.get_vector(w1, norm=True), self.get_vector(w2, norm=True)))

    def n_similarity(self, ws1, ws2):
        """Cosine between the means of two word lists."""
        if not ws1 or not ws2:
            raise TinyLMError("KeyedVectors.n_similarity: both word lists must be non-empty")
        a, b = self[list(ws1)].mean(axis=0), self[list(ws2)].mean(axis=0)
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    def most_similar(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """The ``topn`` words closest by cosine to ``unit(sum_i w_i unit(x_i))``.

        ``positive``/``negative`` are words, vectors, or ``(word, weight)`` pairs (default
        weights +1 and -1), a single word or a list of them. Returns ``[(word, cosine), ...]``,
        best first, without the input words; ``topn=None`` returns the cosine of every word.
        ``restrict_vocab=n`` searches only the ``n`` most frequent words (the first rows).
        """
        items = [(x, 1.0) for x in _as_list(positive)] + [(x, -1.0) for x in _as_list(negative)]
        if not items:
            raise TinyLMError("KeyedVectors.most_similar: give at least one positive or "
                              "negative word")
        if isinstance(topn, int) and topn < 1:
            return []
        normed = self.get_normed_vectors()
        vecs, weights, exclude = [], [], set()
        for item, default_weight in items:
            if isinstance(item, tuple):
                item, weight = item[0], float(item[1])
            else:
                weight = default_weight
            if isinstance(item, np.ndarray):
                if item.shape != (self.vector_size,):
                    raise ShapeError(f"KeyedVectors.most_similar: a vector must have shape "
                                     f"({self.vector_size},), got {item.shape}")
                vecs.append(item / max(np.linalg.norm(item), 1e-30))
            else:
                idx = self.get_index(item)
                vecs.append(normed[idx])
                exclude.add(idx)
            weights.append(weight)
        return self._most_similar_to(np.asarray(weights) @ np.asarray(vecs), exclude, topn,
                                     restrict_vocab)

    def _most_similar_to(self, target, exclude, topn, restrict_vocab):
        """Rank the (first ``restrict_vocab``) words by cosine to ``target``, skipping rows in
        ``exclude``."""
        target = np.asarray(target, dtype=np.float32)
        length = np.linalg.norm(target)
        if length > 0:
            target = target / length
        normed = self.get_normed_vectors()
        if restrict_vocab:
            normed = normed[:restrict_vocab]
        dists = normed @ target
        if topn is None:
            return dists
        k = min(topn + len(exclude), len(dists))
        best = np.argpartition(-dists, k - 1)[:k] if k < len(dists) else np.arange(len(dists))
        best = best[np.argsort(-dists[best], kind="stable")]
        result = [(self.index_to_key[i], float(dists[i])) for i in best if i not in exclude]
        return result[:topn]

    def similar_by_vector(self, vector, topn=10, restrict_vocab=None):
        """The words closest by cosine to a vector (nothing excluded)."""
        return self.most_similar(positive=[np.asarray(vector, dtype=np.float32)], topn=topn,
                                 restrict_vocab=restrict_vocab)

    # --- evaluation ----------------------------------------------------------------------
    def _ok_vocab(self, restrict_vocab, case_insensitive):
        """The words the evaluation may use: the ``restrict_vocab`` most frequent, upper-cased
        when case-insensitive (the most frequent spelling wins, as in gensim)."""
        keys = self.index_to_key[:restrict_vocab]
        fold = str.upper if case_insensitive else (lambda s: s)
        return {fold(k): i for i, k in reversed(list(enumerate(keys)))}

    def evaluate_word_pairs(self, pairs, delimiter="\t", encoding="utf8", restrict_vocab=300000,
                            case_insensitive=True, dummy4unknown=False):
        """Correlation of the model's cosine with human similarity scores (wordsim353 format).

        Each non-comment line is ``word1 <delimiter> word2 <delimiter> score``. Pairs with a word
        outside the ``restrict_vocab`` most frequent are skipped (``dummy4unknown=True``: scored
        0 instead). Returns ``(pearson, spearman, oov_ratio)`` as gensim does: ``pearson`` and
        ``spearman`` are ``(statistic, pvalue)`` pairs, ``oov_ratio`` the percentage of pairs
        with an unknown word. Spearman's rho is Pearson's r of the ranks (ties averaged).
        """
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        normed = self.get_normed_vectors()
        gold, model, oov = [], [], 0
        for line in _read_lines(pairs, encoding, "evaluate_word_pairs"):
            if not line or line.startswith("#"):
                continue
            fields = line.split(delimiter)
            if len(fields) != 3:
                continue                            # gensim skips malformed lines too
            a, b, sim = [w.upper() for w in fields] if case_insensitive else fields
            try:
                sim = float(sim)
            except ValueError:
                continue
            if a not in ok_vocab or b not in ok_vocab:
                oov += 1
                if dummy4unknown:
                    gold.append(sim)
                    model.append(0.0)
                continue
            gold.append(sim)
            model.append(float(np.dot(normed[ok_vocab[a]], normed[ok_vocab[b]])))
        if not gold:
            raise TinyLMError(f"evaluate_word_pairs: no pair of {pairs} has both words in the "
                              f"vocabulary ({len(self)} words, restrict_vocab={restrict_vocab}); "
                              f"{oov} pairs had an unknown word")
        if len(gold) < 3:
            raise TinyLMError(f"evaluate_word_pairs: a correlation needs at least 3 pairs, "
                              f"{pairs} gave {len(gold)} usable ones")
        gold, model = np.asarray(gold), np.asarray(model)
        pearson = PearsonResult(*_correlation(gold, model))
        spearman = SpearmanResult(*_correlation(_rankdata(gold), _rankdata(model)))
        total = len(gold) if dummy4unknown else len(gold) + oov
        return pearson, spearman, 100.0 * oov / total

    def evaluate_word_analogies(self, analogies, restrict_vocab=300000, case_insensitive=True,
                                dummy4unknown=False):
        """Accuracy on analogy questions ``a b c d``: is ``d`` the word nearest to
        ``b - a + c`` (3CosAdd, over unit vectors, ``a``/``b``/``c`` excluded)?

        The file has ``: section name`` header lines, then one question per line (the
        questions-words format). Questions with a word outside the ``restrict_vocab`` most
        frequent are skipped (``dummy4unknown=True``: counted wrong). Returns
        ``(score, sections)`` as gensim does: ``sections`` is a list of dicts
        ``{"section", "correct", "incorrect"}`` (lists of the questions' 4-tuples) ending
        with ``"Total accuracy"``; ``score`` is that total's ``correct / (correct + incorrect)``.
        """
        ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        fold = str.upper if case_insensitive else (lambda s: s)
        normed = self.get_normed_vectors()[:restrict_vocab]
        sections, section = [], None
        for line_no, line in enumerate(_read_lines(analogies, "utf8", "evaluate_word_analogies")):
            if line.startswith(": "):
                if section:
                    sections.append(section)
                section = {"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []}
                continue
            if section is None:
                raise TinyLMError(f"evaluate_word_analogies: line {line_no + 1} of {analogies} "
                                  f"comes before any ': section' header")
            words = line.split()
            if len(words) != 4:
                continue
            a, b, c, expected = question = tuple(fold(w) for w in words)
            if any(w not in ok_vocab for w in question):
                if dummy4unknown:
                    section["incorrect"].append(question)
                continue
            ia, ib, ic = ok_vocab[a], ok_vocab[b], ok_vocab[c]
            target = normed[ib] + normed[ic] - normed[ia]
            predicted = None
            for word, _ in self._most_similar_to(target, {ia, ib, ic}, 5, restrict_vocab):
                predicted = fold(word)
                if predicted in ok_vocab and predicted not in (a, b, c):
                    break
            section["correct" if predicted == expected else "incorrect"].append(question)
        if section:
            sections.append(section)
        if not sections:
            raise TinyLMError(f"evaluate_word_analogies: {analogies} has no ': section' "
                              f"header and no questions")
        total = {"section": "Total accuracy",
                 "correct": list(chain.from_iterable(s["correct"] for s in sections)),
                 "incorrect": list(chain.from_iterable(s["incorrect"] for s in sections))}
        sections.append(total)
        n = len(total["correct"]) + len(total["incorrect"])
        return (len(total["correct"]) / n if n else 0.0), sections

    # --- files ---------------------------------------------------------------------------
    def save(self, path):
        """Write keys, vectors (and counts) to an ``.npz`` file, atomically, without pickle."""
        arrays = {"format": np.array("tinylm.KeyedVectors"),
                  "index_to_key": np.array(self.index_to_key, dtype=str), "vectors": self.vectors}
        if self.counts is not None:
            arrays["counts"] = self.counts
        save_npz(path, **arrays)

    @classmethod
    def load(cls, path):
        data = load_npz(path, "KeyedVectors")
        if str(data.get("format", "")) != "tinylm.KeyedVectors":
            raise TinyLMError(f"KeyedVectors.load: {path} is not a saved tinylm KeyedVectors "
                              f"(no 'format' entry 'tinylm.KeyedVectors')")
        return cls(data["index_to_key"].tolist(), data["vectors"], data.get("counts"))

    def save_word2vec_format(self, path, binary=False):
        """The word2vec C tool's format: ``"V d"`` then one word and its vector per entry."""
        bad = next((k for k in self.index_to_key if not k or any(c.isspace() for c in k)), None)
        if bad is not None:
            raise TinyLMError(f"save_word2vec_format: key {bad!r} is empty or contains "
                              f"whitespace, which the format cannot hold")
        header = f"{len(self)} {self.vector_size}\n".encode("utf8")
        with atomic_write(path, "wb") as f:
            f.write(header)
            if binary:
                vectors = self.vectors.astype("<f4")
                for key, vec in zip(self.index_to_key, vectors):
                    f.write(key.encode("utf8") + b" " + vec.tobytes())
            else:
                row = " ".join(["%.9g"] * self.vector_size)   # 9 digits round-trip float32
                f.write("".join(f"{key} {row % tuple(vec)}\n"
                                for key, vec in zip(self.index_to_key, self.vectors.tolist()))
                        .encode("utf8"))

    @classmethod
    def load_word2vec_format(cls, path, binary=False, limit=None, encoding="utf8"):
        """Read the word2vec C tool's format (``limit``: only the first ``limit`` words)."""
        path = Path(path)
        if not path.is_file():
            raise TinyLMError(f"load_word2vec_format: {path} does not exist")
        data = path.read_bytes()
        end = data.find(b"\n")
        try:
            n, dim = (int(x) for x in data[:end].split())
        except ValueError:
            raise TinyLMError(f"load_word2vec_format: {path} does not start with a 'V d' "
                              f"header line (got {data[:min(end, 40)]!r})") from None
        if limit is not None:
            n = min(n, int(limit))
        keys, vectors = [], np.empty((n, dim), dtype=np.float32)
        if binary:
            pos = end + 1
            for i in range(n):
                while data[pos:pos + 1] == b"\n":   # the C tool ends each vector with "\n"
                    pos += 1
                space = data.find(b" ", pos)
                if space < 0 or space + 1 + 4 * dim > len(data):
                    raise TinyLMError(f"load_word2vec_format: {path} ends early, at word {i} "
                                      f"of {n}")
                keys.append(data[pos:space].decode(encoding))
                vectors[i] = np.frombuffer(data, "<f4", dim, space + 1)
                pos = space + 1 + 4 * dim
        else:
            lines = data[end + 1:].decode(encoding).splitlines()
            if len(lines) < n:
                raise TinyLMError(f"load_word2vec_format: {path} promises {n} words, has "
                                  f"{len(lines)} lines")
            for i, line in enumerate(lines[:n]):
                parts = line.rstrip().split(" ")
                if len(parts) != dim + 1:
                    raise TinyLMError(f"load_word2vec_format: line {i + 2} of {path} has "
                                      f"{len(parts) - 1} numbers, expected {dim}")
                keys.append(parts[0])
                vectors[i] = np.array(parts[1:], dtype=np.float32)
        return cls(keys, vectors)

    def __repr__(self):
        return f"KeyedVectors({len(self)} words, vector_size={self.vector_size})"


# --- helpers ----------------------------------------------------------------------------------
def _as_list(x):
    if x is None:
        return []
    if isinstance(x, (str, np.ndarray, tuple)) and not (isinstance(x, np.ndarray) and x.ndim == 2):
        return [x]
    return list(x)


def _read_lines(path, encoding, who):
    path = Path(path)
    if not path.is_file():
        raise TinyLMError(f"{who}: {path} does not exist")
    with open(path, encoding=encoding) as f:
        return [line.rstrip("\n") for line in f]


def _rankdata(x):
    """Ranks 1..n, ties given the average of their ranks (SciPy's ``rankdata`` default)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # start of each run of equal values, in sorted order
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0                 # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _correlation(x, y):
    """Pearson's ``r = sum (x - mx)(y - my) / (|x - mx| |y - my|)`` and its two-sided p-value
    under independence: ``t = r sqrt((n-2)/(1-r^2))`` has Student's t distribution with
    ``n - 2`` degrees of freedom, and ``P(|T| >= t) = I_{1-r^2}((n-2)/2, 1/2)``."""
    xm, ym = x - x.mean(), y - y.mean()
    denom = np.linalg.norm(xm) * np.linalg.norm(ym)
    if denom == 0:
        return float("nan"), float("nan")           # a constant input has no correlation
    r = float(np.clip(np.dot(xm / np.linalg.norm(xm), ym / np.linalg.norm(ym)), -1.0, 1.0))
    df = len(x) - 2
    p = _betainc(df / 2.0, 0.5, 1.0 - r * r) if df > 0 else 1.0
    return r, p


def _betainc(a, b, x):
    """The regularised incomplete beta function ``I_x(a, b)``, from its continued fraction
    (evaluated with the modified Lentz method); the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)``
    keeps ``x`` on the side where the fraction converges fast."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def _beta_continued_fraction(a, b, x, tiny=1e-300, eps=1e-15, max_iter=10000):
    """``1 / (1 + d1 / (1 + d2 / (1 + ...)))`` with ``d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))``
    and ``d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))``."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter):
        for coef in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                     -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + coef / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    return h
