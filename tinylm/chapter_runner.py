"""Find, list and run the numbered chapter scripts (``python -m tinylm chapters``).

    python -m tinylm chapters                 the list: number, title, file
    python -m tinylm chapters 9               run chapter 09 (options after it go to it:
    python -m tinylm chapters 9 --step --quick --device cpu --out /tmp/figures)
    python -m tinylm chapters --all [--quick] every chapter in order, then a summary table:
                                              chapter, checks passed, figures written, seconds

The chapters live in ``chapters/`` of a source checkout, beside the package. Each runs in
its own Python process (a chapter is a script: its module state must not leak into the
next) and reports its counts through the file named by ``TINYLM_CHAPTER_SUMMARY``
(``Chapter.finish`` writes it). ``--all`` goes on after a failing chapter, so the table
shows every one, and exits 1 if any failed.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import TinyLMError

CHAPTERS_DIR = Path(__file__).resolve().parent.parent / "chapters"
_TITLE = re.compile(r"Chapter\(\s*(\d+)\s*,\s*((?:\"[^\"]*\"\s*)+)", re.MULTILINE)


def chapter_files(directory=CHAPTERS_DIR):
    """The chapter scripts ``NN_name.py`` in order; a clear error without a checkout."""
    directory = Path(directory)
    files = sorted(directory.glob("[0-9][0-9]_*.py"))
    if not files:
        raise TinyLMError(f"chapters: no chapter scripts (NN_name.py) in {directory}; the "
                          f"chapters come with a source checkout of tinylm, not with the "
                          f"installed package")
    return files


def chapter_title(path):
    """The title given to ``Chapter(N, "...")`` in the script (string pieces joined)."""
    match = _TITLE.search(Path(path).read_text(encoding="utf-8"))
    if not match:
        return Path(path).stem
    return "".join(re.findall(r"\"([^\"]*)\"", match.group(2)))


def find_chapter(number, directory=CHAPTERS_DIR):
    """The script of chapter ``number`` (an int or a string like "9" or "09")."""
    try:
        n = int(number)
    except (TypeError, ValueError):
        raise TinyLMError(f"chapters: expected a chapter number, got {number!r}") from None
    for path in chapter_files(directory):
        if int(path.name[:2]) == n:
            return path
    numbers = ", ".join(p.name[:2] for p in chapter_files(directory))
    raise TinyLMError(f"chapters: there is no chapter {n}; the chapters are {numbers}")


def run_chapter(path, options=()):
    """Run one chapter script in a fresh process; returns (exit status, summary dict or None,
    seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary_file = Path(tmp) / "summary.json"
        env = dict(os.environ, TINYLM_CHAPTER_SUMMARY=str(summary_file))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(path), *options], env=env)
        seconds = time.perf_counter() - start
        summary = json.loads(summary_file.read_text(encoding="utf-8")) \
            if summary_file.exists() else None
    return done.returncode, summary, seconds


def summary_table(rows):
    """The table ``--all`` ends with: one row per chapter and a total."""
    lines = [f"{'chapter':<34} {'checks passed':>14} {'figures':>8} {'seconds':>8}  status"]
    for path, status, summary, seconds in rows:
        name = path.stem[:34]
        if summary is None:
            lines.append(f"{name:<34} {'-':>14} {'-':>8} {seconds:8.1f}  error (exit {status})")
            continue
        total = summary["passed"] + summary["failed"]
        lines.append(f"{name:<34} {summary['passed']:>6} / {total:<5} {summary['figures']:>8} "
                     f"{seconds:8.1f}  {'ok' if status == 0 else 'FAILED'}")
    done = [s for _, _, s, _ in rows if s]
    lines.append(f"{'all ' + str(len(rows)) + ' chapters':<34} "
                 f"{sum(s['passed'] for s in done):>6} / "
                 f"{sum(s['passed'] + s['failed'] for s in done):<5} "
                 f"{sum(s['figures'] for s in done):>8} {sum(r[3] for r in rows):8.1f}")
    return "\n".join(lines)


def main(args, directory=CHAPTERS_DIR):
    """``python -m tinylm chapters [N | --all] [chapter options]``; returns the exit status."""
    if args.all:
        rows = []
        for path in chapter_files(directory):
            print(f"=== {path.name}", flush=True)
            status, summary, seconds = run_chapter(path, args.options)
            rows.append((path, status, summary, seconds))
        print("\n" + summary_table(rows))
        return 0 if all(status == 0 for _, status, _, _ in rows) else 1
    if args.number is None:
        for path in chapter_files(directory):
            print(f"{path.name[:2]}  {chapter_title(path):<70}  chapters/{path.name}")
        return 0
    status, _, _ = run_chapter(find_chapter(args.number, directory), args.options)
    return status
