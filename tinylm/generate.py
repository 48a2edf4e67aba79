"""Choosing the next token (C6, E6): greedy, temperature, top-k and top-p (nucleus) sampling,
and the autoregressive loop that feeds each choice back in.

Given the model's logits z for the next token, sampling draws from

    p_i = exp(z_i / T) / sum_j exp(z_j / T)

restricted to a candidate set and renormalised: top-k keeps the k largest logits; top-p keeps
the smallest set of most likely tokens whose probability reaches p. T -> 0 is greedy
(argmax); T = 1 is the model's own distribution; T > 1 flattens it.
"""
import numpy as np

from .errors import ShapeError, TinyLMError

__all__ = ["next_token_distribution", "sample_next_token", "generate"]


def check_max_new_tokens(max_new_tokens, who="generate"):
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) \
            or max_new_tokens < 0:
        raise TinyLMError(f"{who}: max_new_tokens must be an integer >= 0, got "
                          f"{max_new_tokens!r}")


def _check(temperature, top_k, top_p, vocab_size):
    if not temperature >= 0:
        raise TinyLMError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
        raise TinyLMError(f"generate: top_k must be a positive integer, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise TinyLMError(f"generate: top_p must be in (0, 1], got {top_p}")
    if vocab_size < 1:
        raise ShapeError("generate: the logits have no vocabulary axis entries")


def next_token_distribution(logits, temperature=1.0, top_k=None, top_p=None):
    """The (B, V) probabilities actually sampled from, given (B, V) or (V,) logits.

    ``temperature=0`` puts all mass on the argmax (ties: the lowest id)."""
    z = np.asarray(getattr(logits, "data", logits), dtype=np.float64)
    squeeze = z.ndim == 1
    z = np.atleast_2d(z)
    if z.ndim != 2:
        raise ShapeError(f"generate: logits must be (V,) or (B, V), got shape {z.shape}")
    if np.isnan(z).any():
        raise TinyLMError("generate: the logits contain NaN (did training diverge?)")
    _check(temperature, top_k, top_p, z.shape[1])
    if temperature == 0:
        probs = np.zeros_like(z)
        probs[np.arange(len(z)), z.argmax(axis=1)] = 1.0
        return probs[0] if squeeze else probs
    z = z / temperature
    if top_k is not None and top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    z = z - z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-probs, axis=1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=1)
        # keep a token if the mass BEFORE it is still below p (so the top token always stays)
        keep_sorted = np.cumsum(sorted_probs, axis=1) - sorted_probs < top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=1)
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum(axis=1, keepdims=True)
    return probs[0] if squeeze else probs


def sample_next_token(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """One token id per row of ``logits`` ((B, V) -> (B,) int64; (V,) -> int)."""
    if not isinstance(rng, np.random.Generator):
        raise TinyLMError(f"generate: rng must be a numpy.random.Generator (for example "
                          f"np.random.default_rng(seed)), got {type(rng).__name__}")
    probs = next_token_distribution(logits, temperature, top_k, top_p)
    squeeze = probs.ndim == 1
    probs = np.atleast_2d(probs)
    # inverse-CDF sampling: one uniform number per row, so the same seed gives the same text
    u = rng.random((len(probs), 1))
    ids = (np.cumsum(probs, axis=1) < u).sum(axis=1)
    ids = np.minimum(ids, probs.shape[1] - 1).astype(np.int64)
    return int(ids[0]) if squeeze else ids


def generate(next_logits, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             seed=None, eos_id=None):
    """Autoregressive generation: append ``max_new_tokens`` ids to ``idx`` (B, T), one at a time.

    ``next_logits(idx)`` returns the (B, V) logits for the token after each row of ``idx``
    (a model wraps its forward pass, cropping to its context and using a KV cache if it has
    one). Rows that produced ``eos_id`` keep producing it. Returns (B, T + max_new_tokens).
    """
    idx = np.asarray(idx)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise ShapeError(f"generate: idx must be (B, T) integer token ids, got shape "
                         f"{idx.shape}, dtype {idx.dtype}")
    check_max_new_tokens(max_new_tokens)
    rng = np.random.default_rng(seed)
    done = np.zeros(len(idx), dtype=bool)
    for _ in range(max_new_tokens):
        nxt = sample_next_token(next_logits(idx), rng, temperature, top_k, top_p)
        if eos_id is not None:
            nxt = np.where(done, eos_id, nxt)
            done |= nxt == eos_id
        idx = np.concatenate([idx, nxt[:, None].astype(idx.dtype)], axis=1)
        if eos_id is not None and done.all():
            break
    return idx
