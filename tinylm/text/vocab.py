"""Vocab: the table between tokens and integer ids (B1, C14).

Ids are given in a fixed order: the special tokens first (``<pad>`` = 0, ``<unk>`` = 1,
``<bos>`` = 2, ``<eos>`` = 3 by default), then every token that occurs at least ``min_count``
times, most frequent first (ties keep the order of first appearance, so the same corpus always
gives the same ids). ``max_size`` caps the whole table, specials included; the documents cap
their vocabulary at 25,000 (C14).

The counts are kept (``vocab.counts[i]`` is how often token ``i`` occurred; 0 for specials):
word2vec's subsampling of frequent words and its negative-sampling table are built from them.
"""
import numbers
from collections import Counter

import numpy as np

from ..errors import DTypeError, IndexRangeError, TinyLMError
from ..io import load_json, save_json

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")


class UnknownTokenError(TinyLMError, KeyError):
    """A token is not in a vocabulary that has no ``<unk>`` (also a ``KeyError``)."""

    def __str__(self):              # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


def _is_int(x):
    return isinstance(x, (numbers.Integral, np.integer)) and not isinstance(x, (bool, np.bool_))


class Vocab:
    """``Vocab(counts, min_count=1, max_size=None, specials=SPECIALS)``.

    ``counts`` maps token -> count (a ``collections.Counter`` or any mapping); ``Vocab.build``
    counts an iterable of token lists for you. ``vocab["cat"]`` is an id (``<unk>``'s id for an
    unknown token; an ``UnknownTokenError``, a ``KeyError`` too, when there is no ``<unk>``),
    ``vocab.itos[i]`` the token of id ``i``; ``encode``/``decode`` map whole lists.
    """

    def __init__(self, counts, min_count=1, max_size=None, specials=SPECIALS):
        specials = tuple(specials)
        if len(set(specials)) != len(specials):
            raise TinyLMError(f"Vocab: specials must be distinct, got {specials}")
        if not _is_int(min_count) or min_count < 1:
            raise TinyLMError(f"Vocab: min_count must be an integer >= 1, got {min_count!r}")
        if max_size is not None and (not _is_int(max_size) or max_size <= len(specials)):
            raise TinyLMError(f"Vocab: max_size must be an integer larger than the "
                              f"{len(specials)} specials, got {max_size!r}")
        counts = dict(counts)
        if not counts:
            raise TinyLMError("Vocab: the corpus is empty (no tokens to count)")
        kept = [(tok, int(n)) for tok, n in counts.items()
                if n >= min_count and tok not in specials]
        if not kept:
            top = max(counts.items(), key=lambda kv: kv[1])
            raise TinyLMError(f"Vocab: no token occurs at least min_count={min_count} times "
                              f"(the most frequent, {top[0]!r}, occurs {top[1]} times)")
        kept.sort(key=lambda kv: -kv[1])        # stable: ties stay in order of appearance
        if max_size is not None:
            kept = kept[:max_size - len(specials)]
        self.specials = specials
        self.min_count, self.max_size = int(min_count), max_size
        self.itos = list(specials) + [tok for tok, _ in kept]
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}
        self.counts = np.array([0] * len(specials) + [n for _, n in kept], dtype=np.int64)

    @classmethod
    def build(cls, sentences, min_count=1, max_size=None, specials=SPECIALS):
        """Count the tokens of ``sentences`` (an iterable of token lists) and build the table."""
        counts = Counter()
        for i, sentence in enumerate(sentences):
            if isinstance(sentence, str):
                raise TinyLMError(f"Vocab.build: sentences must be lists of tokens; sentence "
                                  f"{i} is a string ({sentence[:30]!r}); split it first")
            counts.update(sentence)
        return cls(counts, min_count=min_count, max_size=max_size, specials=specials)

    # --- lookups -----------------------------------------------------------------------
    def __len__(self):
        return len(self.itos)

    def __contains__(self, token):
        return token in self.stoi

    def __iter__(self):
        return iter(self.itos)

    def __getitem__(self, token):
        idx = self.stoi.get(token)
        if idx is not None:
            return idx
        if "<unk>" in self.stoi:
            return self.stoi["<unk>"]
        raise UnknownTokenError(f"Vocab: {token!r} is not in the vocabulary (and it has no "
                                f"<unk> to map it to)")

    def lookup_token(self, idx):
        if not _is_int(idx):
            raise DTypeError(f"Vocab: ids must be integers, got {idx!r} ({type(idx).__name__})")
        if not 0 <= idx < len(self.itos):
            raise IndexRangeError(f"Vocab: id {idx} is outside 0..{len(self.itos) - 1}")
        return self.itos[idx]

    def encode(self, tokens):
        """Token list -> int64 id array (unknown tokens -> ``<unk>``)."""
        if isinstance(tokens, str):
            raise TinyLMError(f"Vocab.encode: expected a list of tokens, got the string "
                              f"{tokens[:30]!r}; split it first")
        return np.array([self[t] for t in tokens], dtype=np.int64)

    def decode(self, ids):
        """Id sequence -> token list (DTypeError for non-integer ids, IndexRangeError for ids
        outside the table)."""
        return [self.lookup_token(i) for i in ids]

    def _special_id(self, token):
        if token not in self.stoi:
            raise TinyLMError(f"Vocab: this vocabulary has no {token} (specials: {self.specials})")
        return self.stoi[token]

    pad_id = property(lambda self: self._special_id("<pad>"))
    unk_id = property(lambda self: self._special_id("<unk>"))
    bos_id = property(lambda self: self._special_id("<bos>"))
    eos_id = property(lambda self: self._special_id("<eos>"))

    def frequencies(self):
        """Each id's share of the counted tokens (specials: 0)."""
        return self.counts / max(int(self.counts.sum()), 1)

    def __repr__(self):
        return (f"Vocab(size={len(self)}, specials={list(self.specials)}, "
                f"min_count={self.min_count}, max_size={self.max_size})")

    # --- saving ------------------------------------------------------------------------
    def to_dict(self):
        return {"format": "tinylm.Vocab", "version": 1, "specials": list(self.specials),
                "min_count": self.min_count, "max_size": self.max_size,
                "tokens": self.itos[len(self.specials):],
                "counts": self.counts[len(self.specials):].tolist()}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("format") != "tinylm.Vocab":
            raise TinyLMError("Vocab.from_dict: not a saved tinylm Vocab (no "
                              "'format': 'tinylm.Vocab' entry)")
        try:
            specials, tokens, counts = list(d["specials"]), list(d["tokens"]), list(d["counts"])
            min_count, max_size = d["min_count"], d["max_size"]
        except (KeyError, TypeError) as exc:
            raise TinyLMError(f"Vocab.from_dict: a saved Vocab needs 'specials', 'tokens', "
                              f"'counts', 'min_count' and 'max_size' ({exc!r})") from None
        if len(tokens) != len(counts):
            raise TinyLMError(f"Vocab.from_dict: {len(tokens)} tokens but {len(counts)} counts")
        itos = specials + tokens
        if not all(isinstance(t, str) for t in itos) or len(set(itos)) != len(itos):
            raise TinyLMError("Vocab.from_dict: tokens and specials must be distinct strings")
        if not all(_is_int(n) and n >= 0 for n in counts):
            raise TinyLMError("Vocab.from_dict: counts must be integers >= 0")
        vocab = cls.__new__(cls)
        vocab.specials = tuple(specials)
        vocab.min_count, vocab.max_size = min_count, max_size
        vocab.itos = itos
        vocab.stoi = {tok: i for i, tok in enumerate(itos)}
        vocab.counts = np.array([0] * len(specials) + counts, dtype=np.int64)
        return vocab

    def save(self, path):
        """Write the table as JSON, atomically."""
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        return cls.from_dict(load_json(path, "Vocab"))
