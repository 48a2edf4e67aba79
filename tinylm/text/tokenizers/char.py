"""CharTokenizer: one id per character seen in training (A2 step 2, the finest split).

The table is a ``Vocab`` over characters with the four specials (``<pad>`` = 0, ``<unk>`` = 1,
``<bos>`` = 2, ``<eos>`` = 3), then the characters most frequent first (``min_count`` and
``max_size`` as in ``Vocab``).

Unknown characters: a character not in the table encodes to ``<unk>``, and ``<unk>`` decodes to
``UNK_CHAR`` (U+FFFD, the Unicode replacement character); ``<pad>``, ``<bos>`` and ``<eos>``
decode to nothing. So, exactly::

    decode(encode(x)) == "".join(c if c in tok else UNK_CHAR for c in x)

and ``decode(encode(x)) == x`` for every text whose characters were all seen in training.
"""
from collections import Counter

from ..vocab import SPECIALS, Vocab
from .base import Tokenizer, check_ids, check_text, check_texts

UNK_CHAR = "\ufffd"


class CharTokenizer(Tokenizer):
    FORMAT = "tinylm.CharTokenizer"

    def __init__(self, vocab):
        if "<unk>" not in vocab.stoi:
            raise ValueError("CharTokenizer needs a vocabulary with <unk>")
        self.vocab = vocab
        self._unk = vocab.stoi["<unk>"]
        self._pieces = [UNK_CHAR if t == "<unk>" else ("" if t in vocab.specials else t)
                        for t in vocab.itos]

    @classmethod
    def train(cls, texts, min_count=1, max_size=None, specials=SPECIALS):
        """Count the characters of ``texts`` (a string or an iterable of strings)."""
        counts = Counter()
        for text in check_texts(texts, "CharTokenizer.train"):
            counts.update(text)
        if "<unk>" not in specials:
            specials = tuple(specials) + ("<unk>",)
        return cls(Vocab(counts, min_count=min_count, max_size=max_size, specials=specials))

    @property
    def vocab_size(self):
        return len(self.vocab)

    def __contains__(self, char):
        return char in self.vocab.stoi and char not in self.vocab.specials

    def encode(self, text):
        check_text(text, "CharTokenizer.encode")
        get, unk = self.vocab.stoi.get, self._unk
        # a special's name is several characters, so no single character can hit it
        return [get(c, unk) for c in text]

    def decode(self, ids):
        ids = check_ids(ids, len(self._pieces), "CharTokenizer.decode")
        return "".join(self._pieces[i] for i in ids)

    def to_dict(self):
        return {"format": self.FORMAT, "version": 1, "vocab": self.vocab.to_dict()}

    @classmethod
    def from_dict(cls, d):
        return cls(Vocab.from_dict(d["vocab"]))

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"
