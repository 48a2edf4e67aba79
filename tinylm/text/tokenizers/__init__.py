"""Tokenizers with one interface (A2 step 2): characters, words, byte-level BPE."""
from ...io import load_json
from ...errors import TinyLMError
from .base import Tokenizer
from .bpe import PRETOKENIZE_RE, BPETokenizer
from .char import UNK_CHAR, CharTokenizer
from .word import WordTokenizer, detokenize

__all__ = ["Tokenizer", "CharTokenizer", "WordTokenizer", "BPETokenizer", "load_tokenizer",
           "UNK_CHAR", "PRETOKENIZE_RE", "detokenize"]

_KINDS = {cls.FORMAT: cls for cls in (CharTokenizer, WordTokenizer, BPETokenizer)}


def load_tokenizer(path):
    """Load any saved tinylm tokenizer (the kind is read from the file's ``format``)."""
    d = load_json(path, "tokenizer")
    kind = d.get("format") if isinstance(d, dict) else None
    if kind not in _KINDS:
        raise TinyLMError(f"load_tokenizer: {path} is not a saved tinylm tokenizer (expected "
                          f"format one of {sorted(_KINDS)}, got {kind!r})")
    return _KINDS[kind].load(path)
