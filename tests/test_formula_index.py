"""The formula index of chapters/README.md points at real code: every `file.py::test_name` it
cites is a test function in tests/, and every chapter file it lists as available exists.

A rename that leaves the index stale fails here instead of misleading a reader.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEX = ROOT / "chapters" / "README.md"


def _cited_tests():
    """(file, test) pairs; a bare `::name` cites the file named last before it in the row."""
    cited = []
    for row in INDEX.read_text(encoding="utf-8").splitlines():
        if not re.match(r"\| [A-E]\d+ \|", row):
            continue
        current = None
        for file, name in re.findall(r"`(?:(test_\w+\.py))?::(test_\w+)", row):
            current = file or current
            assert current, f"{row[:20]}: `::{name}` cites no file"
            cited.append((current, name))
    return cited


def test_the_index_cites_tests_at_all():
    assert len(_cited_tests()) > 50


def test_every_cited_test_exists():
    missing = []
    for file, name in _cited_tests():
        path = ROOT / "tests" / file
        if not path.exists() or not re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"),
                                              re.MULTILINE):
            missing.append(f"{file}::{name}")
    assert not missing, f"chapters/README.md cites tests that do not exist: {missing}"


def test_every_available_chapter_exists():
    rows = re.findall(r"^\| `(\d\d_\w+\.py)` \|.*\| available", INDEX.read_text(encoding="utf-8"),
                      re.MULTILINE)
    assert len(rows) >= 7
    for chapter in rows:
        assert (ROOT / "chapters" / chapter).exists(), chapter
