"""The small toolkit the chapter scripts share: headers, numbers, checks and figures.

A chapter reads as a sequence of steps: a formula, the code that implements it, the numbers
it gives, and a check that the derivation is right. ``Chapter`` prints each of these in the
same way and keeps count of the checks::

    from tinylm.chapter import Chapter, plt

    ch = Chapter(1, "A neuron and the forward pass")   # parses --quick and --figures DIR
    ch.section("C1  A neuron")
    ch.formula("z = sum_i x_i w_i + b,   a = f(z)")
    ch.show("z", z)
    ch.check("the neuron equals nn.Linear", (z_hand, z_layer, 1e-12))
    fig.savefig(ch.figure("01_activations.png"))
    ch.finish()            # prints a summary; SystemExit(1) if any check failed

Matplotlib is switched to the non-interactive Agg backend before pyplot is imported (no
display is needed, e.g. on CI), except inside a Jupyter kernel, where figures show inline.
"""
import argparse
import inspect
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from .backend import DeviceError, default_device, set_default_device, to_numpy  # noqa: E402

__all__ = ["Chapter", "plt"]

WIDTH = 78


def _as_numpy(value):
    """Tensors (anything with ``.numpy()``), arrays, lists and numbers as a NumPy array."""
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    return np.asarray(to_numpy(value) if not isinstance(value, (list, tuple)) else value)


class Chapter:
    """One chapter run: its command-line options, its printed steps and its checks.

    Options (unknown ones are ignored, so a Jupyter kernel's own arguments do no harm):
      --quick        smaller sizes and fewer steps (the test suite runs chapters this way)
      --out DIR      where figures are written (default ``figures/``; created when needed;
                     ``--figures DIR`` is the same option under its older name)
      --step         pause after each step (Enter goes on, q quits), to read it before the
                     next one scrolls by
      --corpus PATH  a UTF-8 text file (or URL) for the chapters that read text, instead of
                     the embedded default corpus (``self.corpus`` is None when not given)
      --device cpu|cuda  where new tensors and layers live (``self.device``; default
                     ``$TINYLM_DEVICE`` or cpu); without CuPy or a GPU, cuda ends the run
                     with one line saying which is missing
    """

    def __init__(self, number, title, argv=None):
        parser = argparse.ArgumentParser(prog=f"chapter {number:02d}", description=title)
        parser.add_argument("--quick", action="store_true",
                            help="smaller sizes and fewer steps (for the test suite)")
        parser.add_argument("--out", "--figures", dest="figures", default="figures",
                            metavar="DIR", help="directory for the figures (default: figures/)")
        parser.add_argument("--step", action="store_true",
                            help="pause after each step: Enter goes on, q quits")
        parser.add_argument("--corpus", default=None, metavar="PATH",
                            help="a UTF-8 text file or URL to use instead of the embedded corpus")
        parser.add_argument("--device", default=None, choices=("cpu", "cuda"),
                            help="where tensors and layers live (default: $TINYLM_DEVICE or "
                                 "cpu); cuda needs CuPy and an NVIDIA GPU")
        args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
        try:            # --device wins over TINYLM_DEVICE; either is checked here, once
            if args.device:
                set_default_device(args.device)
            self.device = default_device()
        except DeviceError as exc:
            asked = f"--device {args.device}" if args.device else "TINYLM_DEVICE=cuda"
            parser.exit(2, f"chapter {number:02d}: {asked}: {exc}\n")
        self.number, self.title = number, title
        self.quick = args.quick
        self.figures_dir = Path(args.figures)
        self.corpus = args.corpus
        self.stepping, self.steps = args.step, 0
        self.passed, self.failed, self.saved = [], [], []
        self._start = time.perf_counter()
        banner = f"Chapter {number:02d}: {title}" + ("  [--quick]" if self.quick else "")
        print("=" * WIDTH + "\n" + banner + "\n" + "=" * WIDTH)

    # --- printing ----------------------------------------------------------------------
    def section(self, title):
        """A header for the next step, e.g. ``section("C1  A neuron")``; with ``--step`` it
        first waits for the reader to finish the step before."""
        if self.stepping and self.steps:
            self._pause()
        self.steps += 1
        print("\n" + title + "\n" + "-" * min(len(title), WIDTH))

    def _pause(self):
        """--step: Enter goes on, q (or end of input) quits with status 0."""
        try:
            answer = input(f"\n-- end of step {self.steps}: [Enter] next step, q quit -- ")
        except EOFError:
            answer = "q"
        if answer.strip().lower().startswith("q"):
            print(f"stopped after step {self.steps} of chapter {self.number:02d} (--step)")
            raise SystemExit(0)

    def note(self, text):
        """A short line of explanation (longer prose lives in the markdown cells)."""
        print(textwrap.fill(textwrap.dedent(text).strip(), WIDTH))

    def formula(self, *lines):
        """The formula being implemented, one line each."""
        for line in lines:
            print("    " + line)

    def code(self, obj):
        """The code that implements a step: the source of a function/class, or a string."""
        source = obj if isinstance(obj, str) else inspect.getsource(obj)
        print(textwrap.indent(textwrap.dedent(source).strip("\n"), "  | ", lambda line: True))

    def show(self, label, value, precision=4):
        """Print ``label = value``: numbers with 6 significant digits, arrays aligned."""
        if isinstance(value, str):
            print(f"{label} = {value}")
            return
        arr = _as_numpy(value)
        if arr.ndim == 0:
            x = arr.item()
            print(f"{label} = {x:.6g}" if isinstance(x, float) else f"{label} = {x}")
            return
        body = np.array2string(arr, precision=precision, suppress_small=True,
                               max_line_width=WIDTH - 4)
        shape = f"  (shape {arr.shape})" if arr.ndim > 1 or arr.size > 8 else ""
        if "\n" in body or len(label) + len(body) > WIDTH - 3:
            print(f"{label}{shape} =\n" + textwrap.indent(body, "    "))
        else:
            print(f"{label} = {body}{shape}")

    # --- checks ------------------------------------------------------------------------
    def check(self, name, condition, detail=""):
        """Record and print one check.

        ``condition`` is a bool, or a tuple ``(a, b)`` / ``(a, b, tol)``: then the check is
        max |a - b| <= tol (default 1e-8), with the shapes of a and b equal.
        """
        if isinstance(condition, tuple):
            a, b = _as_numpy(condition[0]), _as_numpy(condition[1])
            tol = condition[2] if len(condition) > 2 else 1e-8
            if a.shape != b.shape:
                ok, detail = False, f"shapes differ: {a.shape} vs {b.shape}"
            else:
                err = float(np.max(np.abs(a.astype(float) - b.astype(float)), initial=0.0))
                ok = bool(np.isfinite(err) and err <= tol)
                detail = (detail + "; " if detail else "") + f"max |a - b| = {err:.2e}" \
                    f" {'<=' if ok else '>'} {tol:.0e}"
        else:
            ok = bool(condition)
        (self.passed if ok else self.failed).append(name)
        print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f"  ({detail})" if detail else ""))
        return ok

    # --- figures -----------------------------------------------------------------------
    def figure(self, name):
        """The path ``<figures dir>/name`` (the directory is created) to save a figure to."""
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.figures_dir / name
        self.saved.append(path)
        return path

    def savefig(self, fig, name):
        """Save a matplotlib figure under the figures directory, close it, say where."""
        path = self.figure(name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        print(f"figure written: {path}")
        return path

    # --- the end -----------------------------------------------------------------------
    def finish(self):
        """Print the summary; raise SystemExit(1) if any check failed."""
        total = len(self.passed) + len(self.failed)
        seconds = time.perf_counter() - self._start
        print("\n" + "=" * WIDTH)
        print(f"Chapter {self.number:02d}: {len(self.passed)}/{total} checks passed "
              f"in {seconds:.1f} s" + (f"; figures in {self.figures_dir}/" if self.saved else ""))
        summary = os.environ.get("TINYLM_CHAPTER_SUMMARY")
        if summary:     # for `python -m tinylm chapters --all` (and make run): its table
            Path(summary).write_text(json.dumps({
                "chapter": self.number, "title": self.title, "passed": len(self.passed),
                "failed": len(self.failed), "figures": len(set(self.saved)),
                "seconds": round(seconds, 1)}), encoding="utf-8")
        if self.failed:
            print("FAILED: " + "; ".join(self.failed))
            raise SystemExit(1)
