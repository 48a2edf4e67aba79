"""Two tasks that need no files, so every command works on a fresh machine.

* ``stdlib_docstrings``: text classification. The docstrings of a few standard-library
  packages (read from their ``.py`` sources with ``ast``, never imported), each labelled
  with the package it comes from: "which part of the library wrote this sentence?". A
  docstring found in two packages is dropped (its label would be ambiguous).
* ``date_pairs``: translation of dates written by people into ISO 8601, DLFS2's toy
  seq2seq task: ``("September 27, 1994", "1994-09-27")``, ``("9/27/94", "1994-09-27")``...
  Dates are drawn uniformly from 1950-01-01 .. 2049-12-31, so a two-digit year is never
  ambiguous (50..99 -> 19xx, 00..49 -> 20xx). Month and weekday names are tinylm's own
  English tables, not the locale's, so every machine gives the same pairs.

Both are deterministic given ``seed`` (``numpy.random.default_rng``).
"""
import ast
import datetime
import functools
import sysconfig
from pathlib import Path

import numpy as np

from ..errors import TinyLMError
from ..text import train_val_test_split
from . import pick_split

__all__ = ["stdlib_docstrings", "STDLIB_PACKAGES", "date_pairs", "format_date",
           "DATE_FORMATS"]

STDLIB_PACKAGES = ("asyncio", "email", "unittest", "xml")

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# how people write a date; the fields are filled by format_date
DATE_FORMATS = (
    "{Month} {day}, {year}",              # September 27, 1994
    "{month} {day}, {year}",              # september 27, 1994
    "{Mon} {day}, {year}",                # Sep 27, 1994
    "{day} {Month} {year}",               # 27 September 1994
    "{Weekday}, {Month} {day}, {year}",   # Tuesday, September 27, 1994
    "{WEEKDAY}, {MONTH} {day}, {year}",   # TUESDAY, SEPTEMBER 27, 1994
    "{m}/{day}/{yy}",                     # 9/27/94
    "{day}.{mm}.{year}",                  # 27.09.1994
)
FIRST_DAY = datetime.date(1950, 1, 1)
LAST_DAY = datetime.date(2049, 12, 31)


def format_date(date, fmt):
    """``date`` written with one of ``DATE_FORMATS``."""
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    return fmt.format(Month=month, month=month.lower(), MONTH=month.upper(), Mon=month[:3],
                      Weekday=weekday, WEEKDAY=weekday.upper(), day=date.day, m=date.month,
                      mm=f"{date.month:02d}", year=date.year, yy=f"{date.year % 100:02d}")


def date_pairs(n, seed=0, formats=DATE_FORMATS):
    """``n`` pairs ``(written date, ISO date)``; the date and its format drawn with ``seed``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise TinyLMError(f"date_pairs: n must be a positive integer, got {n!r}")
    formats = tuple(formats)
    if not formats:
        raise TinyLMError("date_pairs: need at least one format")
    rng = np.random.default_rng(seed)
    days = rng.integers(FIRST_DAY.toordinal(), LAST_DAY.toordinal() + 1, size=n)
    which = rng.integers(len(formats), size=n)
    pairs = []
    for day, k in zip(days.tolist(), which.tolist()):
        date = datetime.date.fromordinal(day)
        pairs.append((format_date(date, formats[k]), date.isoformat()))
    return pairs


def _package_docstrings(root, package):
    """Every module, class and function docstring of ``package`` (sorted files), white space
    collapsed."""
    folder = root / package
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else [root / f"{package}.py"]
    out = []
    for path in files:
        if "test" in path.relative_to(root).parts[:-1] or not path.is_file():
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue        # an unparsable file gives no docstrings, the rest still count
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    out.append(" ".join(doc.split()))
    return out


def stdlib_docstrings(packages=STDLIB_PACKAGES, split="train", seed=0, min_words=4,
                      fractions=(0.8, 0.1, 0.1)):
    """``(texts, labels)`` with ``labels[i]`` the index in ``packages`` of the package whose
    source holds docstring ``texts[i]``. Docstrings shorter than ``min_words`` words and those
    found in more than one package are dropped. ``split``: train/val/test of a seeded
    stratified split in ``fractions``, or all (package order, file order)."""
    who = "stdlib_docstrings"
    pick_split(dict.fromkeys(("train", "val", "test", "all")), split, who)
    packages = tuple(packages)
    if len(packages) < 2 or len(set(packages)) != len(packages):
        raise TinyLMError(f"{who}: need at least two distinct packages, got {packages}")
    texts, labels = _labelled_docstrings(packages, min_words)
    if split == "all":
        return list(texts), list(labels)
    parts = train_val_test_split(list(range(len(texts))), fractions, seed=seed,
                                 stratify=labels)
    rows = dict(zip(("train", "val", "test"), parts))[split]
    return [texts[i] for i in rows], [labels[i] for i in rows]


@functools.lru_cache(maxsize=8)
def _labelled_docstrings(packages, min_words):
    """(texts, labels) as tuples, cached: parsing the sources takes about a second and every
    split asks for the same list."""
    who = "stdlib_docstrings"
    root = Path(sysconfig.get_paths()["stdlib"])
    found = {}
    for label, package in enumerate(packages):
        docs = _package_docstrings(root, package)
        if not docs:
            raise TinyLMError(f"{who}: no docstrings found for package {package!r} under "
                              f"{root} (is it a standard-library package?)")
        for doc in docs:
            if len(doc.split()) >= min_words:
                found.setdefault(doc, set()).add(label)
    texts, labels = [], []
    for doc, owners in found.items():
        if len(owners) == 1:
            texts.append(doc)
            labels.append(next(iter(owners)))
    return tuple(texts), tuple(labels)
