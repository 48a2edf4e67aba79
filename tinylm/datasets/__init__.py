"""Datasets as plain Python lists: language modelling, sentiment, translation, and two tasks
that need no files (chapter 12 and ``python -m tinylm train``).

* ``language_modeling``: ``nanogpt_split`` (first 90 % train, last 10 % val), word-level
  corpora one sentence per line (PTB, WikiText-2) with ``<eos>`` per line, ``WhitespaceTokenizer``;
* ``sentiment``: SST-2 (GLUE TSV), rt-polarity (.pos/.neg, seeded 90/10 split), any
  ``text<TAB>label`` TSV -> ``(texts, labels)``;
* ``translation``: Tatoeba ``English<TAB>French`` (seeded 80/10/10), Multi30k (line-aligned
  ``train/val/test_2016_flickr.{en,de,fr}``) -> lists of ``(source, target)`` pairs;
* ``synthetic``: stdlib docstrings labelled by package, and date formats -> ISO dates
  (DLFS2's toy translation task), both deterministic given ``seed``.

Every loader takes a file, a folder or an URL (URLs are downloaded once and cached by
``tinylm.text.load_text``) and defaults to the copy under ``DATA_DIR`` (``../shared/data``
beside the repository, or ``$TINYLM_DATA``)::

    texts, labels = load_sst2(split="dev")                        # ../shared/data/sentiment/sst2
    texts, labels = load_sst2("https://example.org/SST-2/dev.tsv")  # an URL, cached
    pairs = load_tatoeba("/data/eng-fra.txt", split="test", seed=0)
    pairs = date_pairs(1000, seed=0)         # no file: [("September 27, 1994", "1994-09-27"), ...]
"""

import os
from pathlib import Path

from ..errors import TinyLMError
from ..text import load_text

# The real corpora are not part of tinylm; by convention they sit beside the repository, in
# ../shared/data (see its README). $TINYLM_DATA points elsewhere.
DATA_DIR = Path(os.environ.get("TINYLM_DATA")
                or Path(__file__).resolve().parents[2].parent / "shared" / "data")

_URL_SCHEMES = ("http://", "https://", "file://", "ftp://")


def is_url(source):
    return isinstance(source, str) and source.lower().startswith(_URL_SCHEMES)


def resolve(source, default, who):
    """``source`` as a Path or URL string; ``default`` (under DATA_DIR) when it is None."""
    if source is None:
        source = default
        if not Path(source).exists():
            raise TinyLMError(f"{who}: no path given and the default {source} does not exist "
                              f"(set $TINYLM_DATA or pass a file, folder or URL)")
        return Path(source)
    if is_url(source):
        return source
    if not isinstance(source, (str, Path)) or not str(source).strip():
        raise TinyLMError(f"{who}: expected a file, folder or URL, got {source!r}")
    path = Path(source).expanduser()
    if not path.exists():
        raise TinyLMError(f"{who}: {path} does not exist (expected a file, folder or URL)")
    return path


def join(source, name):
    """A file inside a folder (Path) or beside an URL's last slash."""
    if is_url(source):
        return source.rstrip("/") + "/" + name
    return Path(source) / name


def read_lines(source, who):
    """The lines of a UTF-8 file or URL (via ``tinylm.text.load_text``: cached URLs, a clear
    error for missing, empty or non-text files), without the final empty line."""
    if not is_url(source) and Path(source).is_dir():
        raise TinyLMError(f"{who}: {source} is a folder, expected a file")
    lines = load_text(source).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def pick_split(splits, split, who):
    """``splits[split]`` with an error naming the splits there are."""
    if split not in splits:
        raise TinyLMError(f"{who}: split must be one of {sorted(splits)}, got {split!r}")
    return splits[split]

from .language_modeling import (WhitespaceTokenizer, load_word_lm, nanogpt_split,  # noqa: E402
                                word_tokens)
from .sentiment import load_labelled_tsv, load_rt_polarity, load_sst2  # noqa: E402
from .synthetic import (DATE_FORMATS, date_pairs, format_date, stdlib_docstrings,  # noqa: E402
                        STDLIB_PACKAGES)
from .translation import load_multi30k, load_tatoeba, read_parallel  # noqa: E402

__all__ = ["DATA_DIR", "nanogpt_split", "load_word_lm", "word_tokens", "WhitespaceTokenizer",
           "load_sst2", "load_rt_polarity", "load_labelled_tsv", "load_tatoeba",
           "load_multi30k", "read_parallel", "date_pairs", "format_date", "DATE_FORMATS",
           "stdlib_docstrings", "STDLIB_PACKAGES"]
