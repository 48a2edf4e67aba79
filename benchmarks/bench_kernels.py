"""Each kernel, Numba against its NumPy reference, so a reader sees what compiling buys.

    python benchmarks/bench_kernels.py [--repeats 30] [--dtype float32] [--no-compile-time]

The sizes are those of the models the other benchmarks train: the GPT of
``bench_gpt_step.py`` (12 x 64 tokens, width 128, MLP 512, vocab 65) and the LSTM LM of
``bench_lstm_lm.py`` (20 x 35 words, vocab 10,000, embedding 200). Times are medians, the two
versions alternating. The compile time is measured in a fresh process with an empty Numba
cache (``NUMBA_CACHE_DIR`` pointed at a new folder): what a first ``import`` on a new machine
pays once, before ``cache=True`` stores the machine code on disk. Prints a table and JSON.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _torch_peers  # noqa: E402
from tinylm.kernels import cpu, reference  # noqa: E402


def cases(dtype):
    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    act, rows, logits = arr(12 * 64, 512), arr(48 * 64, 64), arr(700, 10000)
    target = rng.integers(0, 10000, 700)
    valid = np.ones(700, bool)
    _, lse = reference.cross_entropy_forward(logits, target, valid, 0.0)
    x_hat, inv_std = reference.layer_norm_forward(arr(768, 128), 1e-5)
    ids, emb_grad = rng.integers(0, 10000, 700), arr(700, 200)
    n = 4_650_000
    adam = [arr(n), arr(n), arr(n), np.abs(arr(n))]
    B, H = 20, 256                                   # bench_lstm.py's batch and hidden size
    gates, rzn = 1 / (1 + np.exp(-arr(B, 4 * H))), 1 / (1 + np.exp(-arr(B, 3 * H)))
    state, d_pre, d_pre2 = arr(B, H), arr(B, 4 * H), arr(B, 3 * H)
    return {
        "gelu forward (768x512)": (lambda k: k.gelu_forward(act)),
        "gelu backward (768x512)": (lambda k: k.gelu_backward(act, act, act)),
        "softmax forward (attention rows 3072x64)": (lambda k: k.softmax_forward(rows)),
        "softmax backward (3072x64)": (lambda k: k.softmax_backward(rows, rows)),
        "cross-entropy forward (700x10000)": (
            lambda k: k.cross_entropy_forward(logits, target, valid, 0.0)),
        "cross-entropy backward (700x10000)": (
            lambda k: k.cross_entropy_backward(logits, lse, target, valid, 0.0, 1 / 700)),
        "layer norm forward (768x128)": (lambda k: k.layer_norm_forward(x_hat, 1e-5)),
        "layer norm backward (768x128)": (lambda k: k.layer_norm_backward(x_hat, inv_std,
                                                                           x_hat)),
        "embedding backward (700 ids into 10000x200)": (
            lambda k: k.embedding_backward(emb_grad, ids, 10000)),
        "AdamW step (4.65M parameters)": (
            lambda k: k.adam_step(*adam, 1e-3, 0.9, 0.99, 1e-8, 10, 0.1, True)),
        # the state gradients are updated in place: each call gets fresh copies
        "LSTM cell backward, one step (20x256)": (
            lambda k: k.lstm_cell_backward(gates, state, state, state.copy(), state.copy(),
                                           d_pre)),
        "GRU cell backward, one step (20x256)": (
            lambda k: k.gru_cell_backward(rzn, state, state, state.copy(), d_pre2, d_pre2)),
    }


COMPILE_SNIPPET = """
import time, numpy as np
start = time.perf_counter()
import benchmarks.bench_kernels as b
for dtype in (np.float32, np.float64):
    for name, run in b.cases(dtype).items():
        run(b.cpu)
print(time.perf_counter() - start)
"""


def compile_seconds():
    """Seconds to compile every kernel for float32 and float64 in a fresh process."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(root))
        out = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET], env=env, cwd=root,
                             capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--no-compile-time", action="store_true")
    args = p.parse_args(argv)
    table = {}
    for name, run in cases(np.dtype(args.dtype).type).items():
        # alternating (load hits both alike); the warm-up call compiles or loads the cache
        ms = _torch_peers.median_ms_alternating(
            {"numba_ms": lambda: run(cpu), "reference_ms": lambda: run(reference)}, args.repeats)
        table[name] = {key: round(value, 3) for key, value in ms.items()}
    print(f"kernels, {args.dtype}, median of {args.repeats}")
    print(f"{'':46} {'Numba ms':>9} {'NumPy ms':>9} {'speed-up':>9}")
    for name, r in table.items():
        print(f"{name:46} {r['numba_ms']:9.3f} {r['reference_ms']:9.3f} "
              f"{r['reference_ms'] / r['numba_ms']:8.1f}x")
    compile_time = None if args.no_compile_time else round(compile_seconds(), 1)
    if compile_time is not None:
        print(f"first use on a new machine (empty cache), every kernel in float32 and float64, "
              f"with the import: {compile_time} s")
    print(json.dumps({"benchmark": "kernels", "dtype": args.dtype,
                      "machine": platform.processor() or platform.machine(),
                      "kernels": table, "compile_seconds": compile_time}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
