"""Evaluation metrics: classification (A4), perplexity (E1) and corpus BLEU (translation).

Plain NumPy on label arrays and token lists; nothing here needs gradients.

Classification, with TP/FP/FN counted per class c from the confusion matrix M
(M[i, j] = how many examples of true class i were predicted as j):

    precision_c = TP_c / (TP_c + FP_c)      recall_c = TP_c / (TP_c + FN_c)
    F1_c = 2 precision_c recall_c / (precision_c + recall_c)

``average="binary"`` reports class ``pos_label``; ``"macro"`` the unweighted mean over the
classes; ``"micro"`` pools the counts (for single-label problems, micro F1 = accuracy). A
ratio with a zero denominator is 0 (as scikit-learn's ``zero_division=0``).
"""
import math
from collections import Counter

import numpy as np

from .errors import ShapeError, TinyLMError

__all__ = ["accuracy", "confusion_matrix", "precision_recall_f1", "perplexity", "corpus_bleu"]


def _labels(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"metrics: y_true has {y_true.size} labels, y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise TinyLMError("metrics: no labels to score (empty arrays)")
    return y_true, y_pred


def accuracy(y_true, y_pred):
    """The share of predictions equal to the label (A4)."""
    y_true, y_pred = _labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes=None):
    """(C, C) int64 counts, rows = true class, columns = predicted class; labels 0..C-1."""
    y_true, y_pred = _labels(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise TinyLMError(f"confusion_matrix: {name} must hold integer labels >= 0, got "
                              f"dtype {y.dtype}, min {y.min()}")
    n = int(max(y_true.max(), y_pred.max())) + 1
    if num_classes is not None:
        if n > num_classes:
            raise TinyLMError(f"confusion_matrix: label {n - 1} >= num_classes={num_classes}")
        n = num_classes
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def _ratio(a, b):
    return np.divide(a, b, out=np.zeros(np.shape(a), dtype=np.float64), where=np.asarray(b) > 0)


def precision_recall_f1(y_true, y_pred, average="binary", pos_label=1, num_classes=None):
    """``(precision, recall, f1)`` for ``average`` in "binary", "macro", "micro" or None
    (None: one array per metric, one entry per class)."""
    m = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(m).astype(np.float64)
    fp, fn = m.sum(axis=0) - tp, m.sum(axis=1) - tp
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    if average is None:
        return precision, recall, f1
    if average == "micro":
        return float(precision), float(recall), float(f1)
    if average == "binary":
        if m.shape[0] > 2:
            raise TinyLMError(f"precision_recall_f1: average='binary' needs 2 classes, found "
                              f"{m.shape[0]}; use average='macro'")
        if pos_label not in (0, 1):
            raise TinyLMError(f"precision_recall_f1: pos_label must be 0 or 1, got {pos_label}")
        if pos_label >= m.shape[0]:
            return 0.0, 0.0, 0.0
        return float(precision[pos_label]), float(recall[pos_label]), float(f1[pos_label])
    if average == "macro":
        return float(precision.mean()), float(recall.mean()), float(f1.mean())
    raise TinyLMError(f"precision_recall_f1: average must be 'binary', 'macro', 'micro' or "
                      f"None, got {average!r}")


def perplexity(mean_nll):
    """E1: PPL = exp(-(1/N) sum_t log p(w_t | w_<t)) = exp(mean negative log-likelihood).

    By the chain rule of probability, p(w_1..w_N) = prod_t p(w_t | w_<t), so the perplexity is
    the inverse geometric mean of the per-token probabilities: a model as unsure as a fair
    choice among k tokens has perplexity k. ``mean_nll`` is in nats (natural log), as
    ``cross_entropy`` returns it."""
    mean_nll = float(mean_nll)
    if not math.isfinite(mean_nll) or mean_nll < 0:
        raise TinyLMError(f"perplexity: the mean negative log-likelihood must be finite and "
                          f">= 0, got {mean_nll}")
    return math.exp(mean_nll)


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses, references, max_n=4, smooth=False):
    """Corpus BLEU (Papineni et al. 2002), in [0, 1]:

        BLEU = BP * exp(sum_n (1/N) log p_n),   BP = min(1, exp(1 - r / c))

    p_n: the n-gram precision pooled over the corpus, each hypothesis n-gram counted at most
    as often as it occurs in the most generous of its references ("clipped"); c: the total
    hypothesis length; r: the sum over sentences of the reference length closest to the
    hypothesis length (the shorter one on a tie). ``hypotheses``: token lists;
    ``references``: for each hypothesis a token list or a list of token lists. With
    ``smooth=True``, add 1 to the numerator and denominator of every p_n with n > 1 (Lin &
    Och's smoothing 2), so short corpora do not score 0 for want of one 4-gram.
    Multiply by 100 for the usual reporting scale.
    """
    if len(hypotheses) != len(references):
        raise ShapeError(f"corpus_bleu: {len(hypotheses)} hypotheses but {len(references)} "
                         f"references")
    if not hypotheses:
        raise TinyLMError("corpus_bleu: no sentences to score")
    matched, total = np.zeros(max_n), np.zeros(max_n)
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        if isinstance(hyp, str) or isinstance(refs, str):
            raise TinyLMError("corpus_bleu: pass token lists (e.g. sentence.split()), not "
                              "strings")
        refs = [refs] if refs and isinstance(refs[0], str) else list(refs)
        if not refs:
            raise TinyLMError("corpus_bleu: a hypothesis has no reference")
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            best = Counter()
            for r in refs:
                best |= _ngrams(r, n)                # element-wise max over references
            matched[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    if smooth:
        matched[1:] += 1
        total[1:] += 1
    if hyp_len == 0 or np.any(matched == 0):
        return 0.0
    log_precision = np.mean(np.log(matched / total))
    brevity = min(1.0, math.exp(1 - ref_len / hyp_len))
    return float(brevity * math.exp(log_precision))
