"""WordTokenizer: one id per word or punctuation mark (A2 step 2, "split into words").

Splitting: ``tinylm.text.clean.TOKEN_RE``: a run of word characters with inner apostrophes or
hyphens (``don't``, ``well-known``), or one single other non-space character, so punctuation
marks are tokens of their own. ``lower=True`` lower-cases first. The table is a ``Vocab`` with
the four specials and ``min_count``/``max_size``; words outside it encode to ``<unk>``.

Decoding (detokenization) cannot give back the original white space, so it follows one rule:
tokens are joined by single spaces, except no space *before* ``. , ; : ! ? ) ] } %`` and
``'`` and no space *after* ``( [ {``; ``<unk>`` decodes to the text ``<unk>``, the other
specials to nothing. What is guaranteed:

* ``encode(decode(ids)) == ids`` for any ids of ordinary tokens (no specials): decoding then
  re-tokenizing is stable;
* ``decode(encode(x)) == x`` for text already written by this rule whose words are all known
  (e.g. ``"Hello, world (again)."``), with ``lower=False``.
"""
from collections import Counter

from ..clean import TOKEN_RE
from ..vocab import SPECIALS, Vocab
from .base import Tokenizer, check_ids, check_text, check_texts

NO_SPACE_BEFORE = frozenset(".,;:!?)]}%'")
NO_SPACE_AFTER = frozenset("([{")


def detokenize(tokens):
    """Join tokens by the rule above."""
    out = []
    for i, tok in enumerate(tokens):
        if i and tok not in NO_SPACE_BEFORE and tokens[i - 1] not in NO_SPACE_AFTER:
            out.append(" ")
        out.append(tok)
    return "".join(out)


class WordTokenizer(Tokenizer):
    FORMAT = "tinylm.WordTokenizer"

    def __init__(self, vocab, lower=False):
        if "<unk>" not in vocab.stoi:
            raise ValueError("WordTokenizer needs a vocabulary with <unk>")
        self.vocab, self.lower = vocab, bool(lower)

    @staticmethod
    def split(text, lower=False):
        """The token strings of ``text`` (before the lookup)."""
        return TOKEN_RE.findall(text.lower() if lower else text)

    @classmethod
    def train(cls, texts, min_count=1, max_size=None, lower=False, specials=SPECIALS):
        """Count the tokens of ``texts`` (a string or an iterable of strings)."""
        counts = Counter()
        for text in check_texts(texts, "WordTokenizer.train"):
            counts.update(cls.split(text, lower))
        if "<unk>" not in specials:
            specials = tuple(specials) + ("<unk>",)
        return cls(Vocab(counts, min_count=min_count, max_size=max_size, specials=specials),
                     lower=lower)

    @property
    def vocab_size(self):
        return len(self.vocab)

    def tokenize(self, text):
        """The token strings ``encode`` looks up."""
        return self.split(check_text(text, "WordTokenizer.tokenize"), self.lower)

    def encode(self, text):
        check_text(text, "WordTokenizer.encode")
        stoi, unk = self.vocab.stoi, self.vocab.stoi["<unk>"]
        return [stoi.get(t, unk) for t in self.split(text, self.lower)]

    def decode(self, ids):
        ids = check_ids(ids, len(self.vocab), "WordTokenizer.decode")
        itos, specials = self.vocab.itos, self.vocab.specials
        return detokenize([itos[i] for i in ids
                           if itos[i] == "<unk>" or itos[i] not in specials])

    def to_dict(self):
        return {"format": self.FORMAT, "version": 1, "lower": self.lower,
                "vocab": self.vocab.to_dict()}

    @classmethod
    def from_dict(cls, d):
        return cls(Vocab.from_dict(d["vocab"]), lower=d["lower"])

    def __repr__(self):
        return f"WordTokenizer(vocab_size={self.vocab_size}, lower={self.lower})"
