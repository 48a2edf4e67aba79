"""The documents' two "GloVe"s, built as written so that they can be compared with GloVe.

C10 as written (section 4.3.2 of the source): ``f(w, c) = f(w) / (f(c) + f(w))`` with ``f(w)``
and ``f(c)`` the frequencies of the words ``w`` and ``c``. ERRATUM: this is a function of two
word frequencies only; it never looks at how often ``w`` and ``c`` occur *together*, so it
carries one number of information per word. Indeed, dividing by ``f(w)``,

    f(w) / (f(c) + f(w)) = 1 / (1 + f(c) / f(w)) = sigma(log f(w) - log f(c)),

a logistic function of the difference of log-frequencies. Rows of the matrix ``M[w, c]`` built
from it (``c10_matrix``) are equal for any two words of equal frequency, whatever they mean.
GloVe's real objective is in ``glove.py``.

B6 (section 4.2's code, TF-IDF + NMF with scikit-learn): a count-based topic model, not GloVe.
Written here with NumPy:

- ``tfidf``: scikit-learn's ``TfidfVectorizer`` defaults: ``tf`` the raw count of term ``t`` in
  document ``d``; ``idf(t) = ln((1 + n) / (1 + df(t))) + 1`` (``smooth_idf``); each document
  row divided by its Euclidean length. Stored sparse (COO, sorted by document).
- ``nmf``: ``X ~ A H`` with ``A >= 0`` (documents x k) and ``H >= 0`` (k x terms), minimising
  ``||X - A H||_F^2`` by Lee & Seung's multiplicative updates (2001),

      H <- H * (A^T X) / (A^T A H),      A <- A * (X H^T) / (A H H^T),

  which never increase the error (their Theorem 1) and keep the factors non-negative. The word
  vectors are the columns of ``H`` (B6's ``nmf_model.components_``). ``X`` stays sparse: its
  two products ``X @ B`` and ``X^T @ B`` run in a small compiled loop
  (``kernels/glove_cpu.coo_matmul``), the rest is BLAS.
"""
import numpy as np

from ..errors import ShapeError, TinyLMError
from ..kernels import glove_cpu

EPS = 1e-12                 # keeps the multiplicative updates' denominators positive


# --- C10 as written -------------------------------------------------------------------------
def c10_as_written(f_w, f_c):
    """The documents' C10: ``f(w, c) = f(w) / (f(c) + f(w))``, elementwise (ERRATUM)."""
    f_w, f_c = np.asarray(f_w, dtype=np.float64), np.asarray(f_c, dtype=np.float64)
    if np.any(f_w < 0) or np.any(f_c < 0) or np.any(f_w + f_c == 0):
        raise TinyLMError("c10_as_written: frequencies must be >= 0 and not both 0")
    return f_w / (f_c + f_w)


def c10_matrix(counts):
    """``M[w, c] = f(w) / (f(c) + f(w))`` for every pair of words (relative frequencies
    ``f = counts / counts.sum()``; the ratio is the same for raw counts). Shape (V, V)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ShapeError(f"c10_matrix: counts must be a non-empty 1-D array, got shape "
                         f"{counts.shape}")
    f = counts / counts.sum()
    return c10_as_written(f[:, None], f[None, :])


# --- B6: TF-IDF ------------------------------------------------------------------------------
def tfidf(documents, index):
    """TF-IDF of tokenised ``documents`` over the terms of ``index`` (token -> column), as
    scikit-learn's TfidfVectorizer (smooth idf, l2-normalised rows). Returns COO arrays
    ``(rows, cols, values)`` sorted by (document, term), and the shape ``(n_docs, V)``. Tokens
    not in ``index`` are ignored; documents left empty keep an all-zero row."""
    V = len(index)
    if V == 0:
        raise TinyLMError("tfidf: the term index is empty")
    keys = []
    n_docs = 0
    for d, doc in enumerate(documents):
        keys.extend(d * V + index[t] for t in doc if t in index)
        n_docs += 1
    if not keys:
        raise TinyLMError(f"tfidf: none of the {n_docs} documents contains a term of the "
                          f"{V}-term index")
    keys, tf = np.unique(np.asarray(keys, dtype=np.int64), return_counts=True)
    rows, cols = keys // V, keys % V
    df = np.bincount(cols, minlength=V)                     # documents containing each term
    idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
    values = tf * idf[cols]
    norms = np.sqrt(np.bincount(rows, weights=values ** 2, minlength=n_docs))
    values = values / norms[rows]
    return (rows, cols, values), (n_docs, V)


def _sparse_matmul(rows, cols, values, n_out, B):
    """``X @ B`` for a COO matrix ``X``: row ``r`` of the result is ``sum over the nonzeros
    (r, c, v) of v * B[c]`` (a compiled loop: NumPy has no sparse product, SciPy is not a
    dependency)."""
    return glove_cpu.coo_matmul(rows, cols, values, int(n_out),
                                np.ascontiguousarray(B, dtype=np.float64))


class SparseMatrix:
    """A COO matrix with the two products NMF needs: ``X @ B`` and ``X^T @ B`` (entries kept
    sorted by (row, col) and, for the transpose, by (col, row))."""

    def __init__(self, rows, cols, values, shape):
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if not (rows.shape == cols.shape == values.shape and rows.ndim == 1):
            raise ShapeError(f"SparseMatrix: rows, cols, values must be 1-D of one length, got "
                             f"{rows.shape}, {cols.shape}, {values.shape}")
        if np.any(values < 0):
            raise TinyLMError("SparseMatrix: NMF needs a non-negative matrix")
        self.shape = tuple(int(s) for s in shape)
        order = np.lexsort((cols, rows))
        self.rows, self.cols, self.values = rows[order], cols[order], values[order]
        t = np.lexsort((rows, cols))                       # the transpose, sorted by column
        self.t_rows, self.t_cols, self.t_values = cols[t], rows[t], values[t]
        self.sq_norm = float(np.sum(values ** 2))

    @classmethod
    def from_dense(cls, X):
        X = np.asarray(X, dtype=np.float64)
        rows, cols = np.nonzero(X)
        return cls(rows, cols, X[rows, cols], X.shape)

    def dot(self, B):
        return _sparse_matmul(self.rows, self.cols, self.values, self.shape[0], B)

    def t_dot(self, B):
        return _sparse_matmul(self.t_rows, self.t_cols, self.t_values, self.shape[1], B)

    def toarray(self):
        out = np.zeros(self.shape)
        out[self.rows, self.cols] = self.values
        return out


def nmf(X, k, iterations=200, seed=0):
    """Non-negative matrix factorisation ``X ~ A H`` by Lee & Seung's multiplicative updates.

    ``X``: a ``SparseMatrix`` or a dense non-negative array (n, m); ``k`` components. Start
    (scikit-learn's ``init="random"``): ``sqrt(mean(X) / k) * |N(0, 1)|`` from
    ``numpy.random.default_rng(seed)``. Returns ``(A, H, errors)`` with ``errors[t]`` the
    Frobenius error ``||X - A H||_F`` after ``t`` updates (``errors[0]``: at the start), from
    ``||X||^2 - 2 tr(A^T X H^T) + tr((A^T A)(H H^T))`` so ``A H`` is never formed."""
    if not isinstance(X, SparseMatrix):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ShapeError(f"nmf: X must be 2-D, got shape {X.shape}")
        X = SparseMatrix.from_dense(X)
    n, m = X.shape
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= min(n, m):
        raise TinyLMError(f"nmf: k must be an integer in [1, min(n, m) = {min(n, m)}], "
                          f"got {k!r}")
    if X.sq_norm == 0:
        raise TinyLMError("nmf: X is all zeros; there is nothing to factorise")
    rng = np.random.default_rng(seed)
    scale = np.sqrt(X.values.sum() / (n * m) / k)
    A = scale * np.abs(rng.standard_normal((n, k)))
    H = scale * np.abs(rng.standard_normal((k, m)))

    def error(XHt):
        # ||X - AH||^2 = ||X||^2 - 2 <A, X H^T> + <A^T A, H H^T>
        sq = X.sq_norm - 2 * np.sum(A * XHt) + np.sum((A.T @ A) * (H @ H.T))
        return float(np.sqrt(max(sq, 0.0)))

    errors = [error(X.dot(H.T))]
    for _ in range(iterations):
        AtX = X.t_dot(A).T                          # (k, m) = A^T X
        H *= AtX / (A.T @ A @ H + EPS)
        XHt = X.dot(H.T)                            # (n, k) = X H^T
        A *= XHt / (A @ (H @ H.T) + EPS)
        errors.append(error(XHt))                   # X H^T does not depend on A
    return A, H, np.array(errors)
