"""The one interface every tokenizer has (A2 step 2, tokenization).

``tok = SomeTokenizer.train(texts, ...)``; ``ids = tok.encode(text)`` (a list of ints);
``text = tok.decode(ids)``; ``tok.vocab_size``; ``tok.save(path)`` / ``SomeTokenizer.load(path)``
(JSON, written atomically, never pickle). ``load_tokenizer(path)`` reads any of them.
"""
import numbers
from abc import ABC, abstractmethod

import numpy as np

from ...errors import DTypeError, IndexRangeError, TinyLMError
from ...io import load_json, save_json


class Tokenizer(ABC):
    """Base class: subclasses define ``train``, ``encode``, ``decode``, ``vocab_size``,
    ``to_dict`` and ``from_dict`` (the JSON form, with a ``"format"`` entry); a subclass
    missing one cannot be instantiated (``abc``), so the gap shows at once, not at first use."""

    FORMAT = None

    @classmethod
    @abstractmethod
    def train(cls, texts, **options):
        """Learn a vocabulary (and merges, for BPE) from ``texts``; returns a tokenizer."""

    @abstractmethod
    def encode(self, text):
        """``text`` -> list of token ids."""

    @abstractmethod
    def decode(self, ids):
        """Token ids -> text."""

    @property
    @abstractmethod
    def vocab_size(self):
        """How many ids there are (the embedding table's row count)."""

    def __len__(self):
        return self.vocab_size

    @abstractmethod
    def to_dict(self):
        """The JSON-able form, with a ``"format"`` entry equal to ``FORMAT``."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d):
        """The inverse of ``to_dict``."""

    def save(self, path):
        """Write the tokenizer as JSON, atomically."""
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        d = load_json(path, cls.__name__)
        if not isinstance(d, dict) or d.get("format") != cls.FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise TinyLMError(f"{cls.__name__}.load: {path} is not a saved {cls.__name__} "
                              f"(expected format {cls.FORMAT!r}, got {got!r})")
        try:
            return cls.from_dict(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise TinyLMError(f"{cls.__name__}.load: {path} is corrupt ({type(exc).__name__}: "
                              f"{exc})") from None


def check_text(text, who):
    if not isinstance(text, str):
        raise DTypeError(f"{who}: expected a str, got {type(text).__name__}")
    return text


def check_texts(texts, who):
    """``texts`` as a list of strings (a single string counts as one text)."""
    if isinstance(texts, str):
        return [texts]
    try:
        texts = list(texts)
    except TypeError:
        raise TinyLMError(f"{who}: expected an iterable of strings, got "
                          f"{type(texts).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DTypeError(f"{who}: text {i} is a {type(t).__name__}, expected a str")
    return texts


def check_ids(ids, size, who):
    """``ids`` as a list of Python ints in 0..size-1 (DTypeError for non-integers,
    IndexRangeError for ids out of range)."""
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
            raise DTypeError(f"{who}: expected a 1-d sequence of integer ids, got an array of "
                             f"shape {ids.shape} and dtype {ids.dtype}")
        ids = ids.tolist()
    elif isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise DTypeError(f"{who}: expected a sequence of integer ids, got {type(ids).__name__}")
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise DTypeError(f"{who}: ids must be integers, got {i!r} ({type(i).__name__})")
        i = int(i)
        if not 0 <= i < size:
            raise IndexRangeError(f"{who}: id {i} is outside 0..{size - 1}")
        out.append(i)
    return out
