"""Parallel text as lists of ``(source, target)`` sentence pairs: Tatoeba and Multi30k.

* Tatoeba English-French (the manythings.org Anki file): one pair per line,
  ``English<TAB>French`` (newer files add a third, attribution column, which is ignored). No
  official split: ``split`` picks from a seeded 80/10/10 partition (``"all"``: file order).
* Multi30k (Elliott et al. 2016): line-aligned files ``{split}.{lang}``, line i of
  ``train.en`` translating line i of ``train.de`` and ``train.fr``; the splits are
  ``train``, ``val`` and ``test`` (the file ``test_2016_flickr.*``, the standard benchmark).
* ``read_parallel(src_file, tgt_file)``: any two line-aligned files.

Sentences are stripped; pairs with an empty side are errors, not silently dropped, because a
misaligned file is the usual cause.
"""
from pathlib import Path

from ..errors import TinyLMError
from ..text import train_val_test_split
from . import DATA_DIR, is_url, join, pick_split, read_lines, resolve

__all__ = ["load_tatoeba", "load_multi30k", "read_parallel", "MULTI30K_FILES"]

MULTI30K_FILES = {"train": "train", "val": "val", "test": "test_2016_flickr"}
MULTI30K_LANGS = ("en", "de", "fr")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def _seeded_split(pairs, split, seed, who):
    if split == "all":
        return pairs
    parts = dict(zip(("train", "val", "test"),
                     train_val_test_split(pairs, SPLIT_FRACTIONS, seed=seed)))
    return pick_split(parts, split, who)


def load_tatoeba(source=None, split="train", seed=0, reverse=False):
    """``[(english, french), ...]`` (``reverse=True``: ``(french, english)``). ``source``: the
    file, its URL, or a folder holding ``eng-fra.txt`` (default
    ``DATA_DIR/translation/tatoeba-eng-fra``). ``split``: train/val/test (seeded 80/10/10) or
    all."""
    who = "load_tatoeba"
    pick_split(dict.fromkeys(("train", "val", "test", "all")), split, who)
    source = resolve(source, DATA_DIR / "translation" / "tatoeba-eng-fra", who)
    if not is_url(source) and Path(source).is_dir():
        source = join(source, "eng-fra.txt")
    pairs = []
    for number, line in enumerate(read_lines(source, who), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise TinyLMError(f"{who}: {source} line {number}: expected "
                              f"English<TAB>French, got {line[:80]!r}")
        src, tgt = fields[0].strip(), fields[1].strip()
        pairs.append((tgt, src) if reverse else (src, tgt))
    return _seeded_split(pairs, split, seed, who)


def read_parallel(src_source, tgt_source, who="read_parallel"):
    """Pairs from two line-aligned files (or URLs); their line counts must agree."""
    src = read_lines(src_source, who)
    tgt = read_lines(tgt_source, who)
    if len(src) != len(tgt):
        raise TinyLMError(f"{who}: {src_source} has {len(src)} lines but {tgt_source} has "
                          f"{len(tgt)}; line-aligned files must have the same number")
    pairs = []
    for number, (s, t) in enumerate(zip(src, tgt), start=1):
        if not s.strip() or not t.strip():
            empty = src_source if not s.strip() else tgt_source
            raise TinyLMError(f"{who}: line {number} of {empty} is empty (expected one "
                              f"sentence per line, aligned with the other file)")
        pairs.append((s.strip(), t.strip()))
    return pairs


def load_multi30k(source=None, split="train", src="en", tgt="de"):
    """Multi30k ``[(src sentence, tgt sentence), ...]`` for ``split`` in train/val/test
    (test = ``test_2016_flickr``). ``source``: the folder or its URL (default
    ``DATA_DIR/translation/multi30k``)."""
    who = "load_multi30k"
    stem = pick_split(MULTI30K_FILES, split, who)
    for name, lang in (("src", src), ("tgt", tgt)):
        if lang not in MULTI30K_LANGS:
            raise TinyLMError(f"{who}: {name} must be one of {MULTI30K_LANGS}, got {lang!r}")
    if src == tgt:
        raise TinyLMError(f"{who}: src and tgt must differ, got {src!r} twice")
    source = resolve(source, DATA_DIR / "translation" / "multi30k", who)
    if not is_url(source) and not Path(source).is_dir():
        raise TinyLMError(f"{who}: {source} must be a folder holding {stem}.{src} and "
                          f"{stem}.{tgt}")
    return read_parallel(join(source, f"{stem}.{src}"), join(source, f"{stem}.{tgt}"), who)
