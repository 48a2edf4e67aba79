"""Causal attention at growing lengths: tinylm's streaming kernel, the naive NumPy formula, and
PyTorch's ``scaled_dot_product_attention``, in the same run.

    python benchmarks/bench_attention.py [--lengths 256 512 1024 2048] [--repeats 5]
                                         [--threads 2]

B*H = 8 heads of d = 64, float32, causal. "fused" is ``tinylm.kernels.cpu.attention_forward``
/ ``attention_backward`` (online softmax over tiles of 256 queries x 256 keys, BLAS products
per tile, O(T d) memory per head plus one tile);
"naive" is ``kernels.reference`` (the three-line formula A8/D4/E4, which materialises the
(T, T) scores). Times are medians over ``--repeats``, the contenders alternating; "extra MiB"
is the peak of NumPy allocations during the call (``tracemalloc``), beyond the inputs.
PyTorch allocates outside tracemalloc's view, so its memory is not reported. Prints a table
and one JSON line.
"""
import argparse
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import _torch_peers  # noqa: E402
from tinylm.kernels import cpu, reference  # noqa: E402

HEADS, DIM = 8, 64


def numpy_contender(module, q, k, v, g, scale):
    def forward():
        return module.attention_forward(q, k, v, scale, 0)

    def forward_backward():
        out, lse = module.attention_forward(q, k, v, scale, 0)
        return module.attention_backward(q, k, v, out, lse, g, scale, 0)
    return forward, forward_backward


def torch_contender(q, k, v, g):
    import torch
    from torch.nn.functional import scaled_dot_product_attention as sdpa
    tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
    tg = torch.from_numpy(g)

    def forward():
        with torch.no_grad():
            return sdpa(tq, tk, tv, is_causal=True)

    def forward_backward():
        out = sdpa(tq, tk, tv, is_causal=True)
        return torch.autograd.grad(out, (tq, tk, tv), tg)
    return forward, forward_backward


def peak_mib(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    _torch_peers.set_threads(args.threads)
    torch = _torch_peers.torch_or_none()
    rng = np.random.default_rng(0)
    rows = []
    for T in args.lengths:
        q, k, v, g = (rng.standard_normal((HEADS, T, DIM)).astype(np.float32)
                      for _ in range(4))
        scale = DIM ** -0.5
        contenders = {"fused": numpy_contender(cpu, q, k, v, g, scale),
                      "naive": numpy_contender(reference, q, k, v, g, scale)}
        if torch is not None:
            contenders["pytorch sdpa"] = torch_contender(q, k, v, g)
        for fwd, both in contenders.values():
            fwd(), both()                               # warm-up (and compile)
        times = {(name, part): [] for name in contenders for part in ("fwd", "fwd+bwd")}
        for _ in range(args.repeats):
            for name, (fwd, both) in contenders.items():
                for part, fn in (("fwd", fwd), ("fwd+bwd", both)):
                    start = time.perf_counter()
                    fn()
                    times[name, part].append(time.perf_counter() - start)
        row = {"T": T}
        for (name, part), t in times.items():
            row[f"{name} {part} ms"] = round(1e3 * statistics.median(t), 2)
        for name in ("fused", "naive"):
            fwd, both = contenders[name]
            row[f"{name} fwd MiB"] = round(peak_mib(fwd), 1)
            row[f"{name} fwd+bwd MiB"] = round(peak_mib(both), 1)
        rows.append(row)

    names = list(contenders)
    print(f"causal attention, {HEADS} heads x d {DIM}, float32, {args.threads} threads, "
          f"median of {args.repeats}")
    header = f"{'T':>5} " + " ".join(f"{n + ' ' + part:>22}" for n in names
                                       for part in ("fwd ms", "fwd+bwd ms"))
    print(header + f" {'fused MiB':>10} {'naive MiB':>10}")
    for row in rows:
        cells = " ".join(f"{row[f'{n} {part} ms']:22.1f}" for n in names
                         for part in ("fwd", "fwd+bwd"))
        print(f"{row['T']:5d} {cells} {row['fused fwd+bwd MiB']:10.1f} "
              f"{row['naive fwd+bwd MiB']:10.1f}")
    if torch is None:
        print("PyTorch is not installed: no SDPA column (pip install torch)")
    print(json.dumps({"benchmark": "attention", "machine": platform.processor()
                      or platform.machine(), "threads": args.threads, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
