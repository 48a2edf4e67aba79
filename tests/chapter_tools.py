"""Running chapters from tests, and importing their tools without running their narrative.

Chapter files start with digits and run their narrative at top level (they are Jupytext
notebooks), so they cannot simply be imported. ``load_definitions`` executes only a chapter's
top-level imports, ``def``/``class`` statements and UPPER_CASE constants (two letters or
more: single capitals like ``X`` are the narrative's data): the reusable tools, without the
narrative.
"""
import ast
import os
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"


def load_definitions(filename):
    """A module holding a chapter's functions, classes and constants (its narrative not run)."""
    path = CHAPTERS / filename
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def wanted(node):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            return True
        return isinstance(node, ast.Assign) and all(   # CONSTANTS (not data like X or A)
            isinstance(t, ast.Name) and t.id.isupper() and len(t.id) > 1 for t in node.targets)

    body = [node for node in tree.body if wanted(node)]
    module = types.ModuleType(f"chapter_{path.stem}")
    module.__file__ = str(path)
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), module.__dict__)
    return module


def run_chapter(filename, figures_dir):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    # one BLAS thread: the chapters' matrices are small, and on a busy 2-core machine waking
    # idle BLAS threads costs more than the products (chapter 12 ran 10x slower without this)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return subprocess.run(
        [sys.executable, str(CHAPTERS / filename), "--quick", "--figures", str(figures_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def assert_chapter_passes(filename, figures_dir, expected_figures):
    result = run_chapter(filename, figures_dir)
    assert result.returncode == 0, f"{filename} failed:\n{result.stdout[-4000:]}\n{result.stderr}"
    assert "[FAIL]" not in result.stdout
    for name in expected_figures:
        path = figures_dir / name
        assert path.is_file() and path.stat().st_size > 0, f"{filename} did not write {name}"
    return result.stdout
