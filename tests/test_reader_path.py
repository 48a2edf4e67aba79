"""The reader's path: --step, `python -m tinylm chapters`, the run summary, notebooks, and
the HTML book (checked in headless Chromium where Debian's `chromium` is installed)."""
import argparse
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tinylm import book, chapter_runner

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_01 = ROOT / "chapters" / "01_neuron.py"

FAKE_CHAPTER = '''\
# %% [markdown]
# # A fake chapter
#
# Some **prose** with `code`.

# %%
import sys
sys.path.insert(0, {root!r})
from tinylm.chapter import Chapter, plt
ch = Chapter({number}, "Fake {number}")

# %%
ch.section("1. first step")
ch.check("one is one", 1 == 1)

# %%
ch.section("2. second step")
fig, ax = plt.subplots()
ax.plot([0, 1], [0, {number}])
ch.savefig(fig, "fake_{number}.png")
ch.check("the last check", {ok})
ch.finish()
'''


def _fake_chapters(tmp_path, failing=()):
    folder = tmp_path / "chapters"
    folder.mkdir()
    for n in (1, 2):
        (folder / f"{n:02d}_fake.py").write_text(FAKE_CHAPTER.format(
            root=str(ROOT), number=n, ok=n not in failing), encoding="utf-8")
    return folder


def _run(*args, stdin="", cwd=None):
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_step_pauses_after_each_step_and_q_quits(tmp_path):
    folder = _fake_chapters(tmp_path)
    done = _run(str(folder / "01_fake.py"), "--step", "--out", str(tmp_path / "f"), stdin="q\n")
    assert done.returncode == 0, done.stderr
    assert "end of step 1: [Enter] next step, q quit" in done.stdout
    assert "stopped after step 1 of chapter 01 (--step)" in done.stdout
    assert "2. second step" not in done.stdout
    done = _run(str(folder / "01_fake.py"), "--step", "--out", str(tmp_path / "f"), stdin="\n")
    assert done.returncode == 0 and "2/2 checks passed" in done.stdout
    assert (tmp_path / "f" / "fake_1.png").exists()          # --out is the figures folder


def test_chapters_command_lists_and_rejects_unknown_numbers():
    done = _run("-m", "tinylm", "chapters")
    assert done.returncode == 0
    listed = re.findall(r"^(\d\d)  ", done.stdout, re.MULTILINE)
    assert listed == [p.name[:2] for p in chapter_runner.chapter_files()]
    assert "01  A neuron and the forward pass" in done.stdout
    done = _run("-m", "tinylm", "chapters", "99")
    assert done.returncode == 2 and "there is no chapter 99" in done.stderr
    done = _run("-m", "tinylm", "gradcheck", "--no-such-option")
    assert done.returncode == 2                    # only `chapters` passes options through


def test_run_all_ends_with_the_summary_table(tmp_path, capsys):
    folder = _fake_chapters(tmp_path, failing=(2,))
    args = argparse.Namespace(all=True, number=None, options=["--out", str(tmp_path / "f")])
    status = chapter_runner.main(args, directory=folder)
    out = capsys.readouterr().out
    assert status == 1                             # chapter 02 failed a check
    table = out[out.index("checks passed"):]
    assert re.search(r"01_fake\s+2 / 2\s+1\s+[\d.]+\s+ok", table)
    assert re.search(r"02_fake\s+1 / 2\s+1\s+[\d.]+\s+FAILED", table)
    assert re.search(r"all 2 chapters\s+3 / 4\s+2", table)
    args = argparse.Namespace(all=False, number="1", options=["--out", str(tmp_path / "f")])
    assert chapter_runner.main(args, directory=folder) == 0


def test_split_cells_follows_the_percent_format_and_its_line_numbers():
    source = CHAPTER_01.read_text(encoding="utf-8")
    cells = book.split_cells(source)
    assert cells[0][0] == "markdown" and cells[0][1].startswith("# Chapter 01")
    lines = source.splitlines()
    for kind, text, first in cells:
        if kind == "code":
            assert lines[first - 1] == text.splitlines()[0]
    assert sum(k == "code" for k, _, _ in cells) == sum(
        1 for line in lines if line.strip() == "# %%")


def test_a_chapter_converts_to_a_notebook_with_the_same_cells(tmp_path):
    jupytext = pytest.importorskip("jupytext")
    target = tmp_path / "01.ipynb"
    done = _run("-m", "jupytext", "--to", "notebook", "-o", str(target), str(CHAPTER_01))
    assert done.returncode == 0, done.stderr
    notebook = jupytext.read(target)
    ours = book.split_cells(CHAPTER_01.read_text(encoding="utf-8"))
    theirs = [(c.cell_type, c.source.strip()) for c in notebook.cells if c.source.strip()]
    assert [k for k, _ in theirs] == [k for k, _, _ in ours]
    for (kind, source), (_, text, _) in zip(theirs, ours):
        if kind == "code":
            assert source == text.strip()


def test_markdown_subset():
    html = book.markdown_to_html(textwrap.dedent("""\
        ## A *title*

        A paragraph with `x < y`, **bold** and [a link](page.html).

        - one
        - two

            indented code <here>

        | a | b |
        |---|---|
        | 1 | `2` |
        | `x \\| y` | 3 |
        """))
    assert "<h2>A <em>title</em></h2>" in html
    assert "<code>x &lt; y</code>" in html and "<strong>bold</strong>" in html
    assert '<a href="page.html">a link</a>' in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert "<pre>indented code &lt;here&gt;</pre>" in html
    assert "<th>a</th>" in html and "<td><code>2</code></td>" in html
    assert "<td><code>x | y</code></td><td>3</td>" in html        # an escaped pipe


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    summaries = book.build(out, quick=True, numbers=[1])
    return out, summaries


def test_the_book_renders_a_chapter_with_its_figures_and_the_index(rendered):
    out, summaries = rendered
    (summary,) = summaries
    assert summary["error"] is None and summary["failed"] == 0 and summary["passed"] > 10
    page = (out / "01_neuron.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all((out / src).exists() for src in images)
    assert "def forward_propagation" in page                # code cells, by inspect too
    assert "[PASS]" in page and "<h1>Chapter 01" in page
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="01_neuron.html"' in index
    ids = re.findall(r"^\| ([A-E]\d+) \|", (ROOT / "chapters" / "README.md").read_text(
        encoding="utf-8"), re.MULTILINE)
    for formula_id in ids:
        assert f"<td>{formula_id}</td>" in index


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (Debian: apt install "
                                            "chromium)")
def test_every_page_loads_and_shows_its_figures_in_headless_chromium(rendered):
    out, _ = rendered
    for page in sorted(out.glob("*.html")):
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
             page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
        loaded = re.search(r'data-figures-loaded="([^"]+)"', done.stdout)
        assert loaded, f"{page.name} did not finish loading: {done.stderr[-300:]}"
        expected = len(re.findall(r"<img ", page.read_text(encoding="utf-8")))
        assert loaded.group(1) == str(expected), f"{page.name}: {loaded.group(1)}"
