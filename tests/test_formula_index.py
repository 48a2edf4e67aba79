"""The formula index of chapters/README.md points at real code: every `file.py::test_name` it
cites is a test function in tests/, and every chapter file it lists as available exists.

A rename that leaves the index stale fails here instead of misleading a reader.
"""
import importlib
import re
from pathlib import Path

import pytest

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


# --- every formula of the catalogue is indexed, and what the index names exists -----------
# The catalogue (FORMULAS.md, beside the repository in ../shared) numbers its formulas per
# source document: A1-A16, B1-B8, C1-C17, D1-D8, E1-E6.
CATALOGUE = {"A": 16, "B": 8, "C": 17, "D": 8, "E": 6}
SHARED_FORMULAS = ROOT.parent / "shared" / "FORMULAS.md"


def _rows():
    """{ID: [formula, chapter section, implemented by, tested by]} of the formula index."""
    rows = {}
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| ([A-E]\d+) \|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = [c.strip() for c in re.split(r"(?<!\\)\|", match.group(2))]
    return rows


def test_every_formula_id_of_the_catalogue_has_a_row():
    expected = {f"{letter}{i}" for letter, n in CATALOGUE.items() for i in range(1, n + 1)}
    rows = _rows()
    assert not expected - set(rows), f"missing from the index: {sorted(expected - set(rows))}"
    assert not set(rows) - expected, f"not in the catalogue: {sorted(set(rows) - expected)}"
    for formula_id, cells in rows.items():
        assert len(cells) == 4 and all(cells), f"{formula_id}: a cell is empty: {cells}"


@pytest.mark.skipif(not SHARED_FORMULAS.exists(), reason="../shared/FORMULAS.md not present")
def test_the_index_matches_the_catalogue_ids_and_errata():
    text = SHARED_FORMULAS.read_text(encoding="utf-8")
    catalogue = dict(re.findall(r"^\| ([A-E]\d+) \|(.*)$", text, re.MULTILINE))
    rows = _rows()
    assert set(catalogue) == set(rows)
    for formula_id, line in catalogue.items():
        if "ERRATUM" in line:
            assert "ERRATUM" in " ".join(rows[formula_id]), f"{formula_id} is an erratum"


def _resolve(dotted):
    """Import the longest module prefix of ``tinylm.a.b.c`` and getattr the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_every_library_name_and_file_the_index_cites_exists():
    missing = []
    for formula_id, (_, _, implemented, tested) in _rows().items():
        for token in re.findall(r"`([^`]+)`", implemented + " " + tested):
            if re.fullmatch(r"tinylm(\.\w+)+", token):
                try:
                    _resolve(token)
                except (ImportError, AttributeError):
                    missing.append(f"{formula_id}: {token}")
            elif re.fullmatch(r"(tinylm|chapters|benchmarks|tests)/[\w/]+\.py", token):
                if not (ROOT / token).exists():
                    missing.append(f"{formula_id}: {token}")
    assert not missing, f"chapters/README.md names what does not exist: {missing}"


def test_every_chapter_function_the_index_cites_is_defined_there():
    missing = []
    for formula_id, (_, _, implemented, _) in _rows().items():
        # "`a`, `b` in `chapters/NN_name.py`": the names before each chapter file
        for names, chapter in re.findall(r"((?:`\w+`(?:, | and )?)+) in `(chapters/\w+\.py)`",
                                         implemented):
            source = (ROOT / chapter).read_text(encoding="utf-8")
            for name in re.findall(r"`(\w+)`", names):
                if not re.search(rf"^(def|class) {name}\b|^{name} = ", source, re.MULTILINE):
                    missing.append(f"{formula_id}: {name} in {chapter}")
    assert not missing, f"chapter functions cited but not defined: {missing}"
