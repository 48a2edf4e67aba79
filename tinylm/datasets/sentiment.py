"""Sentence classification data as ``(texts, labels)``: SST-2, rt-polarity, any labelled TSV.

* SST-2 (GLUE): ``train.tsv`` / ``dev.tsv``, a header ``sentence<TAB>label``, then one
  sentence and its label (0 negative, 1 positive) per line. GLUE's test labels are not public,
  so ``dev`` is the held-out split.
* rt-polarity (Pang & Lee 2005): ``rt-polarity.pos`` and ``rt-polarity.neg``, one lower-cased,
  tokenized sentence per line, UTF-8. There is no official split: ``split="train"``/``"dev"``
  is a seeded 90/10 partition, stratified so both parts keep the 50/50 balance.
* ``load_labelled_tsv``: ``text<TAB>label`` with integer labels 0..C-1 and an optional header.

Labels are Python ints; texts are stripped of surrounding white space. A malformed line is a
TinyLMError naming the file, the line number and what was expected.
"""
from pathlib import Path

from ..errors import IndexRangeError, TinyLMError
from ..text import train_val_test_split
from . import DATA_DIR, is_url, join, pick_split, read_lines, resolve

__all__ = ["load_sst2", "load_rt_polarity", "load_labelled_tsv"]

SST2_SPLITS = ("train", "dev")


def _parse_labelled_lines(lines, where, num_classes=None, header=None, who="load_labelled_tsv"):
    """``(texts, labels)`` from ``text<TAB>label`` lines. ``header``: True (the first line is
    one), False, or None (a header when its last field is not an integer)."""
    if not lines or not any(line.strip() for line in lines):
        raise TinyLMError(f"{who}: {where} has no lines (expected text<TAB>label lines)")
    first = lines[0].rsplit("\t", 1)
    if header is None:
        header = len(first) == 2 and not first[1].strip().lstrip("-").isdigit()
    texts, labels = [], []
    for number, line in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        if not line.strip():
            continue                       # blank lines (a trailing one) carry nothing
        fields = line.rsplit("\t", 1)
        label = fields[1].strip() if len(fields) == 2 else ""
        if len(fields) != 2 or not label.lstrip("-").isdigit() or not fields[0].strip():
            raise TinyLMError(f"{who}: {where} line {number}: expected text<TAB>integer label, "
                              f"got {line[:80]!r}")
        label = int(label)
        if label < 0 or (num_classes is not None and label >= num_classes):
            upper = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
            raise IndexRangeError(f"{who}: {where} line {number}: label must be in {upper}, "
                                  f"got {label}")
        texts.append(fields[0].strip())
        labels.append(label)
    if not texts:
        raise TinyLMError(f"{who}: {where} has a header but no examples")
    return texts, labels


def load_labelled_tsv(source, num_classes=None, header=None):
    """``(texts, labels)`` from a ``text<TAB>label`` file or URL; labels must be integers in
    0..num_classes-1 (any >= 0 when ``num_classes`` is None)."""
    if source is None:
        raise TinyLMError("load_labelled_tsv: expected a file or URL, got None")
    source = resolve(source, None, "load_labelled_tsv")
    return _parse_labelled_lines(read_lines(source, "load_labelled_tsv"), str(source),
                                 num_classes, header)


def load_sst2(source=None, split="train"):
    """SST-2 ``(texts, labels)``, labels 0/1. ``source``: the folder holding ``train.tsv`` and
    ``dev.tsv`` (default ``DATA_DIR/sentiment/sst2``), its URL, or one TSV file (then
    ``split`` is ignored). The header ``sentence<TAB>label`` is required."""
    pick_split(dict.fromkeys(SST2_SPLITS), split, "load_sst2")
    source = resolve(source, DATA_DIR / "sentiment" / "sst2", "load_sst2")
    if is_url(source) and not source.lower().endswith(".tsv") or \
            not is_url(source) and Path(source).is_dir():
        source = join(source, f"{split}.tsv")
    lines = read_lines(source, "load_sst2")
    if not lines or lines[0].strip().split("\t") != ["sentence", "label"]:
        got = lines[0][:60] if lines else ""
        raise TinyLMError(f"load_sst2: {source} must start with the header "
                          f"'sentence<TAB>label' (GLUE SST-2 format), got {got!r}")
    return _parse_labelled_lines(lines, str(source), num_classes=2, header=True,
                                 who="load_sst2")


def load_rt_polarity(source=None, split="train", seed=0, dev_fraction=0.1):
    """rt-polarity ``(texts, labels)``: label 1 for ``rt-polarity.pos``, 0 for ``.neg``.

    ``source``: the folder (or URL folder) holding both files, default
    ``DATA_DIR/sentiment/rt-polarity``. ``split``: ``"train"``, ``"dev"`` (a seeded stratified
    ``1 - dev_fraction`` / ``dev_fraction`` partition; the same seed gives the same split) or
    ``"all"`` (positives then negatives, file order)."""
    pick_split(dict.fromkeys(("train", "dev", "all")), split, "load_rt_polarity")
    if not 0 < dev_fraction < 1:
        raise TinyLMError(f"load_rt_polarity: dev_fraction must be in (0, 1), got "
                          f"{dev_fraction}")
    source = resolve(source, DATA_DIR / "sentiment" / "rt-polarity", "load_rt_polarity")
    if not is_url(source) and not Path(source).is_dir():
        raise TinyLMError(f"load_rt_polarity: {source} must be a folder holding "
                          f"rt-polarity.pos and rt-polarity.neg")
    texts, labels = [], []
    for label, suffix in ((1, "pos"), (0, "neg")):
        lines = [line.strip() for line in read_lines(join(source, f"rt-polarity.{suffix}"),
                                                     "load_rt_polarity")]
        lines = [line for line in lines if line]
        texts += lines
        labels += [label] * len(lines)
    if split == "all":
        return texts, labels
    train, dev, _ = train_val_test_split(list(range(len(texts))),
                                         (1 - dev_fraction, dev_fraction, 0.0), seed=seed,
                                         stratify=labels)
    rows = train if split == "train" else dev
    return [texts[i] for i in rows], [labels[i] for i in rows]
