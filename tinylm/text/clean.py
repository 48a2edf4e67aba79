"""Cleaning, sentence splitting and word tokenization with a few documented regexes (A2).

A2's preprocessing has three steps: clean (remove stop words, punctuation, ...), tokenize
(split into words), embed (ids -> vectors, chapter 05). ``clean`` does the first, each part
optional, in this fixed order:

1. ``lower``: lower-case everything (``str.lower``);
2. ``numbers``: a number (digits with optional ``.``/``,`` groups: ``3``, ``3.14``,
   ``25,000``) standing on its own (not inside a word such as ``utf8``) is removed
   (``numbers=True``) or replaced by a word (``numbers="N"``, as the Penn Treebank does);
3. ``punctuation``: every character that is neither a letter, a digit nor white space is
   removed, and so is ``_``; an apostrophe or hyphen *between* two letters/digits stays
   (``don't``, ``well-known``), since it is part of the word;
4. ``stopwords``: the words of ``STOPWORDS`` (tinylm's own English list) are removed,
   compared in lower case.

Removed spans become a space; then runs of spaces/tabs shrink to one and each line is
stripped (line breaks are kept). With every step off, ``clean`` returns its input unchanged.

``split_sentences``: a sentence ends at ``.``, ``!`` or ``?`` (optionally followed by a closing
quote or bracket) followed by white space and then a character that is not a lower-case letter
(so "e.g. this" stays one sentence), at ``。！？``, or at a blank line. A text where
fewer than 5% of the non-empty lines end with ``.!?。！？`` (the Penn Treebank: one sentence a
line, its end marks removed) is split at every line break instead. Simple and
predictable, not perfect: "Dr. Smith" is split.

``word_tokenize``: a token is a run of word characters, with inner apostrophes or hyphens
(``don't``, ``well-known``), or one single other non-space character (punctuation stays as a
token of its own).
"""
import re

from ..errors import TinyLMError
from .stopwords import STOPWORDS

__all__ = ["clean", "split_sentences", "word_tokenize", "sentences_from_text", "STOPWORDS"]

# a number on its own: not preceded or followed by a word character
NUMBER_RE = re.compile(r"(?<!\w)\d+(?:[.,]\d+)*(?!\w)")
# apostrophes and hyphens between two word characters are part of the word: keep them
_INNER = r"(?<=[^\W_])['\u2019-](?=[^\W_])"
PUNCT_RE = re.compile(rf"(?!{_INNER})(?:[^\w\s]|_)")
WORD_RE = re.compile(r"\w+(?:['\u2019-]\w+)*")
TOKEN_RE = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")
SENTENCE_END_RE = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"')\]\u201d\u2019]))\s+(?=[^a-z\s])"
    r"|(?<=[\u3002\uff01\uff1f])\s*"
    r"|\n[ \t]*\n\s*")
_LINE_END_RE = re.compile(r"[.!?\u3002\uff01\uff1f][\"')\]\u201d\u2019]*[ \t]*$",
                          re.MULTILINE)
LINE_MODE_BELOW = 0.05
_SPACES_RE = re.compile(r"[^\S\n]+")
_LINE_EDGES_RE = re.compile(r" *\n *")


def _check_text(text, who):
    if not isinstance(text, str):
        raise TinyLMError(f"{who}: expected a str, got {type(text).__name__}")


def clean(text, lower=True, punctuation=True, numbers=True, stopwords=False):
    """A2 step 1, cleaning: lower-case, drop (or replace) numbers, drop punctuation, drop stop
    words; each step optional (see the module docstring for the exact rules and order).

    ``numbers``: True removes numbers, False keeps them, a string replaces each by that word.
    ``stopwords``: False keeps them, True removes ``STOPWORDS``, or pass your own set.
    """
    _check_text(text, "clean")
    if lower:
        text = text.lower()
    if numbers:
        text = NUMBER_RE.sub(numbers if isinstance(numbers, str) else " ", text)
    if punctuation:
        text = PUNCT_RE.sub(" ", text)
    if stopwords:
        stop = STOPWORDS if stopwords is True else frozenset(w.lower() for w in stopwords)
        text = WORD_RE.sub(
            lambda m: " " if m.group().lower().replace("\u2019", "'") in stop else m.group(),
            text)
    if numbers or punctuation or stopwords:
        text = _LINE_EDGES_RE.sub("\n", _SPACES_RE.sub(" ", text)).strip()
    return text


def split_sentences(text):
    """Split ``text`` into sentences (the rule is in the module docstring); empty ones are
    dropped, each sentence is stripped."""
    _check_text(text, "split_sentences")
    n_lines = sum(1 for line in text.splitlines() if line.strip())
    by_lines = len(_LINE_END_RE.findall(text)) < LINE_MODE_BELOW * n_lines
    parts = text.splitlines() if by_lines else SENTENCE_END_RE.split(text)
    return [s.strip() for s in parts if s and not s.isspace()]


def word_tokenize(text):
    """Words (with inner ``'`` or ``-``) and single punctuation characters, in order."""
    _check_text(text, "word_tokenize")
    return TOKEN_RE.findall(text)


def sentences_from_text(text, lower=True, punctuation=True, numbers=True, stopwords=False):
    """B1's preprocessing in one call: ``split_sentences``, then ``clean`` each sentence with
    the given options, then ``word_tokenize``; sentences left empty are dropped.
    Returns one token list per sentence."""
    _check_text(text, "sentences_from_text")
    out = []
    for sentence in split_sentences(text):
        tokens = TOKEN_RE.findall(clean(sentence, lower=lower, punctuation=punctuation,
                                        numbers=numbers, stopwords=stopwords))
        if tokens:
            out.append(tokens)
    return out
