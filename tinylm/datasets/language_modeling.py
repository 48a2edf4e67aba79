"""Language-modelling data: nanoGPT's character split and word-level corpora (PTB, WikiText-2).

* ``nanogpt_split(text)``: the first 90 % of the characters train, the last 10 % validate
  (nanoGPT's ``prepare.py``; contiguous, so the validation text is unseen prose, not a
  shuffle of training sentences).
* Word level, as Mikolov's PTB files and PyTorch's ``word_language_model`` read them: every
  non-empty line is split on white space and ends with ``<eos>``, so the model learns where
  sentences end. ``load_word_lm(folder)`` reads ``train``/``valid``/``test`` files
  (``ptb.train.txt``, ``train.txt``, ``wiki.train.tokens``, ...); a single file is cut
  90/10 by tokens like nanoGPT's split.
* ``WhitespaceTokenizer``: the tokenizer of such pre-tokenized text. Its table is a ``Vocab``
  with the usual specials, so PTB's own ``<unk>`` token IS the unknown-word id, and
  ``<eos>`` decodes to a line break.
"""
from pathlib import Path

from ..errors import TinyLMError
from ..text import Vocab
from ..text.tokenizers.base import Tokenizer, check_ids, check_text, check_texts
from . import is_url, read_lines, resolve

__all__ = ["nanogpt_split", "word_tokens", "load_word_lm", "WhitespaceTokenizer"]

EOS = "<eos>"
_SPLIT_NAMES = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}


def nanogpt_split(seq, val_fraction=0.1):
    """``(train, val)``: ``seq[:n]`` and ``seq[n:]`` with ``n = int(len(seq) * (1 -
    val_fraction))`` (nanoGPT: 0.9). Works on a string, a list or an array."""
    if not 0 < val_fraction < 1:
        raise TinyLMError(f"nanogpt_split: val_fraction must be in (0, 1), got {val_fraction}")
    n = int(len(seq) * (1 - val_fraction))
    if n < 1 or n >= len(seq):
        raise TinyLMError(f"nanogpt_split: {len(seq)} items are too few to split "
                          f"{1 - val_fraction:g}/{val_fraction:g} (both parts must be non-empty)")
    return seq[:n], seq[n:]


def word_tokens(lines):
    """The tokens of pre-tokenized lines: each non-empty line's words, then ``<eos>``."""
    out = []
    for line in ([lines] if isinstance(lines, str) else lines):
        words = line.split()
        if words:
            out.extend(words)
            out.append(EOS)
    return out


def _find_split_files(folder):
    found = {}
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file():
            continue
        parts = path.name.lower().replace("-", ".").replace("_", ".").split(".")
        for split, names in _SPLIT_NAMES.items():
            if any(n in parts for n in names):
                if split in found:
                    raise TinyLMError(f"load_word_lm: {folder} has two {split} files, "
                                      f"{found[split].name} and {path.name}")
                found[split] = path
    return found


def load_word_lm(source, val_fraction=0.1):
    """``{"train": tokens, "val": tokens, "test": tokens or None}`` (lists of str).

    ``source``: a folder with train and valid (and test) files, or one file / URL (cut
    ``1 - val_fraction`` / ``val_fraction`` by tokens; no test part)."""
    who = "load_word_lm"
    if source is None:
        raise TinyLMError(f"{who}: expected a file, folder or URL, got None")
    source = resolve(source, None, who)
    if not is_url(source) and Path(source).is_dir():
        files = _find_split_files(source)
        missing = [s for s in ("train", "val") if s not in files]
        if missing:
            raise TinyLMError(f"{who}: {source} has no {' and no '.join(missing)} file "
                              f"(expected names like ptb.train.txt, valid.txt, test.txt; found "
                              f"{sorted(p.name for p in Path(source).iterdir())}); pass one "
                              f"file to split it 90/10 instead")
        out = {s: word_tokens(read_lines(p, who)) for s, p in files.items()}
        out.setdefault("test", None)
    else:
        tokens = word_tokens(read_lines(source, who))
        train, val = nanogpt_split(tokens, val_fraction)
        out = {"train": train, "val": val, "test": None}
    for split, tokens in out.items():
        if tokens is not None and not tokens:
            raise TinyLMError(f"{who}: the {split} part of {source} has no words")
    return out


class WhitespaceTokenizer(Tokenizer):
    """Words split on white space, ``<eos>`` at each line end (see the module docstring).

    ``WhitespaceTokenizer.train(texts, min_count, max_size)``; ``encode(text)`` maps unknown
    words to ``<unk>``; ``decode`` joins words by spaces and turns ``<eos>`` into a newline."""

    FORMAT = "tinylm.WhitespaceTokenizer"

    def __init__(self, vocab):
        if "<unk>" not in vocab.stoi or EOS not in vocab.stoi:
            raise TinyLMError("WhitespaceTokenizer: the vocabulary needs <unk> and <eos>")
        self.vocab = vocab

    @classmethod
    def train(cls, texts, min_count=1, max_size=None):
        tokens = word_tokens(check_texts(texts, "WhitespaceTokenizer.train"))
        return cls.from_tokens(tokens, min_count, max_size)

    @classmethod
    def from_tokens(cls, tokens, min_count=1, max_size=None):
        """Build the table from a token list (as ``load_word_lm`` returns)."""
        return cls(Vocab.build([tokens], min_count=min_count, max_size=max_size))

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, text):
        """Ids of ``text``'s words; ``<eos>`` after each line that ended with a newline."""
        check_text(text, "WhitespaceTokenizer.encode")
        lines = text.split("\n")
        tokens = word_tokens(lines[:-1]) + lines[-1].split()
        return self.encode_tokens(tokens)

    def encode_tokens(self, tokens):
        stoi, unk = self.vocab.stoi, self.vocab.stoi["<unk>"]
        return [stoi.get(t, unk) for t in tokens]

    def decode(self, ids):
        ids = check_ids(ids, len(self.vocab), "WhitespaceTokenizer.decode")
        words = [self.vocab.itos[i] for i in ids]
        text = " ".join(w for w in words if w not in ("<pad>", "<bos>"))
        return text.replace(f" {EOS} ", "\n").replace(f" {EOS}", "\n").replace(EOS, "\n")

    def to_dict(self):
        return {"format": self.FORMAT, "version": 1, "vocab": self.vocab.to_dict()}

    @classmethod
    def from_dict(cls, d):
        return cls(Vocab.from_dict(d["vocab"]))

    def __repr__(self):
        return f"WhitespaceTokenizer(vocab_size={self.vocab_size})"
