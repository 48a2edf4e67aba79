"""The chapters as a static HTML book (``make book``): executed cell by cell, like a notebook.

    python -m tinylm.book --out book [--quick] [--chapters 1 2 10]

Each chapter is a Jupytext "percent" script: ``# %% [markdown]`` cells of prose and ``# %%``
cells of code. The book runs every chapter in its own process, the code cells one after
the other in one namespace (what a notebook kernel does), and records for each cell what it
printed and the figures it wrote. Then it writes, with no server and no JavaScript library:

    book/index.html        the chapter list (title, checks passed, figures) and the formula
                           index of chapters/README.md
    book/NN_name.html      one page per chapter: prose, code, printed output, figures
    book/figures/          the figures, shared by the pages

Markdown is rendered by the small converter below (headings, paragraphs, lists, emphasis,
inline code, code blocks, links, pipe tables): enough for our chapters, no dependency. Each
page sets ``data-figures-loaded`` on its body once every image has loaded, so a headless
browser can check that the figures really show (tests/test_reader_path.py).
"""
import argparse
import contextlib
import html
import io
import json
import re
import subprocess
import sys
import time
import types
from pathlib import Path

from .chapter import Chapter
from .chapter_runner import CHAPTERS_DIR, chapter_files, chapter_title, find_chapter

STYLE = """
body { font-family: Georgia, serif; max-width: 52em; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
pre { background: #f6f6f4; padding: .6em .8em; overflow-x: auto; font-size: 85%; }
pre.output { background: #fff; border-left: 3px solid #9ab; }
pre.error { border-left: 3px solid #c33; }
code { font-size: 90%; }
img { max-width: 100%; display: block; margin: .8em auto; }
table { border-collapse: collapse; font-size: 80%; }
td, th { border: 1px solid #ccc; padding: .25em .45em; vertical-align: top; }
td code { overflow-wrap: anywhere; }
nav { margin: 1em 0; }
"""
ON_LOAD = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-figures-loaded", ok ? imgs.length : "broken");
});
</script>"""


# --- reading a percent script ------------------------------------------------------------
def split_cells(source):
    """[(kind, text, line)] with kind "markdown" or "code" and ``line`` the file's line number
    of the cell's first line, in order (Jupytext's percent format)."""
    cells, kind, lines, first = [], None, [], 0
    for number, line in enumerate(source.splitlines(), start=1):
        if line.startswith("# %%"):
            if kind is not None:
                cells.append((kind, lines, first))
            kind, lines, first = ("markdown" if "[markdown]" in line else "code"), [], number + 1
        elif kind == "markdown":
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        elif kind == "code":
            lines.append(line)
    if kind is not None:
        cells.append((kind, lines, first))
    out = []
    for kind, lines, first in cells:
        while lines and not lines[0].strip():      # leading blank lines: move the start
            lines, first = lines[1:], first + 1
        text = "\n".join(lines).rstrip()
        if text:
            out.append((kind, text, first))
    return out


# --- executing it, cell by cell ----------------------------------------------------------
def execute(path, options):
    """Run the chapter's code cells in one namespace; returns the cells as
    [(kind, text, output, figures, error)] and the chapter's ``Chapter`` (None if it never
    made one), which counts its own checks and figures.

    The namespace is a real module installed as ``__main__`` with the chapter's ``__file__``
    and each cell is compiled at its own line numbers, so ``inspect.getsource`` (which
    ``Chapter.code`` prints) finds the functions and classes a cell defines. Stops at the
    first cell that raises (other than the SystemExit(0) of a finished chapter) and records
    the error there."""
    path = Path(path).resolve()
    sys.argv = [str(path), *options]
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    saved_main, sys.modules["__main__"] = sys.modules.get("__main__"), module
    results, stopped = [], False
    try:
        for kind, text, line in split_cells(path.read_text(encoding="utf-8")):
            if kind == "markdown" or stopped:
                results.append((kind, text, "", [], None))
                continue
            out, error = io.StringIO(), None
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                try:
                    exec(compile("\n" * (line - 1) + text, str(path), "exec"), module.__dict__)
                except SystemExit as exc:
                    if exc.code not in (0, None):
                        error = f"the chapter exited with status {exc.code} (a check failed)"
                    stopped = True
                except Exception as exc:        # shown on the page, where the reader sees it
                    error = f"{type(exc).__name__}: {exc}"
                    stopped = True
            printed = out.getvalue()
            figures = re.findall(r"^figure written: (.+)$", printed, re.MULTILINE)
            results.append((kind, text, printed, figures, error))
    finally:
        sys.modules["__main__"] = saved_main
    chapter = next((v for v in module.__dict__.values() if isinstance(v, Chapter)), None)
    return results, chapter


# --- markdown, the small subset the chapters use -----------------------------------------
def _inline(text):
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?!\w)", r"<em>\1</em>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', text)


def _table(rows):
    # cells split at unescaped pipes; "\|" is a literal pipe inside a cell (GitHub's rule)
    cells = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|",
                                                               row.strip().strip("|"))]
             for row in rows]
    head, body = cells[0], [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join(out + ["</table>"])


def markdown_to_html(text):
    """Headings, paragraphs, bullet lists, pipe tables, fenced and indented code, inline
    code, bold, italics and links; everything else is escaped text."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            blocks.append("<pre>" + html.escape("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
        elif line.startswith("    "):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            code = "\n".join(x[4:] for x in lines[i:j]).rstrip()
            blocks.append("<pre>" + html.escape(code) + "</pre>")
            i = j
        elif re.match(r"#{1,6} ", line):
            level = len(line) - len(line.lstrip("#"))
            blocks.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            blocks.append(_table(lines[i:j]))
            i = j
        elif re.match(r"\s*[-*] ", line):
            items = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith("#"):
                if re.match(r"\s*[-*] ", lines[i]):
                    items.append(re.sub(r"^\s*[-*] ", "", lines[i]))
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            blocks.append("<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + "</ul>")
        else:
            j = i
            while j < len(lines) and lines[j].strip() and not re.match(
                    r"(#{1,6} |\s*[-*] |\s*\||```|    )", lines[j]):
                j += 1
            blocks.append("<p>" + _inline(" ".join(x.strip() for x in lines[i:j])) + "</p>")
            i = max(j, i + 1)
    return "\n".join(blocks)


# --- pages ---------------------------------------------------------------------------------
def _page(title, body, nav=""):
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"{nav}\n{body}\n{nav}\n{ON_LOAD}\n</body></html>\n")


def chapter_page(results, out_dir):
    """The HTML of one executed chapter; figure paths are made relative to ``out_dir``."""
    parts = []
    for kind, text, printed, figures, error in results:
        if kind == "markdown":
            parts.append(markdown_to_html(text))
            continue
        parts.append(f"<pre class=\"code\"><code>{html.escape(text)}</code></pre>")
        shown = re.sub(r"^figure written: .+\n?", "", printed, flags=re.MULTILINE)
        if shown.strip():
            parts.append(f"<pre class=\"output\">{html.escape(shown.rstrip())}</pre>")
        for figure in figures:
            rel = Path(figure).resolve().relative_to(Path(out_dir).resolve())
            parts.append(f"<img src=\"{rel.as_posix()}\" alt=\"{html.escape(rel.name)}\">")
        if error:
            parts.append(f"<pre class=\"output error\">{html.escape(error)}</pre>")
    return "\n".join(parts)


def render_chapter(path, out_dir, quick=False):
    """Execute one chapter and write ``out_dir/NN_name.html``; returns its summary."""
    out_dir = Path(out_dir)
    figures = out_dir / "figures"
    start = time.perf_counter()
    results, chapter = execute(path, ["--out", str(figures)] + (["--quick"] if quick else []))
    seconds = time.perf_counter() - start
    title = chapter_title(path)
    nav = "<nav><a href=\"index.html\">&larr; all chapters</a></nav>"
    page = _page(f"Chapter {path.name[:2]}: {title}", chapter_page(results, out_dir), nav)
    (out_dir / f"{path.stem}.html").write_text(page, encoding="utf-8")
    errors = [r[4] for r in results if r[4]]
    counts = (len(chapter.passed), len(chapter.failed), len(set(chapter.saved))) \
        if chapter is not None else (0, 0, 0)         # the same counts as `make run`'s table
    return {"file": path.name, "title": title, "passed": counts[0], "failed": counts[1],
            "figures": counts[2], "seconds": round(seconds, 1),
            "error": errors[0] if errors else None}


def index_page(summaries, readme=CHAPTERS_DIR / "README.md"):
    """The chapter list (linked, with their counts) and the formula index of the README."""
    rows = "\n".join(
        f"<tr><td><a href=\"{Path(s['file']).stem}.html\">{s['file'][:2]}</a></td>"
        f"<td>{html.escape(s['title'])}</td><td>{s['passed']} / {s['passed'] + s['failed']}"
        f"</td><td>{s['figures']}</td><td>{'error: ' + html.escape(s['error']) if s['error'] else 'ok'}"
        f"</td></tr>" for s in summaries)
    body = ["<h1>tinylm: the chapters</h1>",
            "<table><tr><th>chapter</th><th>title</th><th>checks passed</th><th>figures</th>"
            f"<th>status</th></tr>\n{rows}</table>"]
    text = Path(readme).read_text(encoding="utf-8") if Path(readme).exists() else ""
    if "## Formula index" in text:
        index = text.split("## Formula index", 1)[1]
        body += ["<h2>Formula index</h2>", markdown_to_html(index)]
    return _page("tinylm: the chapters", "\n".join(body))


def build(out_dir, quick=False, numbers=None):
    """Render the chosen chapters (all by default), each in its own process, and the index.
    Returns the list of chapter summaries."""
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    paths = [find_chapter(n) for n in numbers] if numbers else chapter_files()
    summaries = []
    for path in paths:
        print(f"=== {path.name}", flush=True)
        command = [sys.executable, "-m", "tinylm.book", "--one", str(path), "--out",
                   str(out_dir)] + (["--quick"] if quick else [])
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            summaries.append({"file": path.name, "title": chapter_title(path), "passed": 0,
                              "failed": 0, "figures": 0, "seconds": 0.0,
                              "error": (done.stderr.strip().splitlines() or ["failed"])[-1]})
            continue
        summaries.append(json.loads(done.stdout.strip().splitlines()[-1]))
    (out_dir / "index.html").write_text(index_page(summaries), encoding="utf-8")
    return summaries


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tinylm.book", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="book", help="the book's folder (default book/)")
    p.add_argument("--quick", action="store_true", help="run the chapters with --quick")
    p.add_argument("--chapters", nargs="*", default=None, help="only these chapter numbers")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)   # the per-chapter process
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(render_chapter(Path(args.one), args.out, args.quick)))
        return 0
    summaries = build(args.out, args.quick, args.chapters)
    bad = [s["file"] for s in summaries if s["error"] or s["failed"]]
    print(f"book written: {Path(args.out) / 'index.html'} ({len(summaries)} chapters"
          + (f"; with errors: {', '.join(bad)})" if bad else ")"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
