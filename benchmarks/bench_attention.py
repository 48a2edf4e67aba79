"""Causal attention at growing lengths: tinylm's streaming kernel, the naive NumPy formula, and
PyTorch's ``scaled_dot_product_attention``, in the same run.

    python benchmarks/bench_attention.py [--lengths 256 512 1024 2048] [--repeats 5]
                                         [--threads 2] [--device cpu|cuda]

B*H = 8 heads of d = 64, float32, causal. "fused" is ``tinylm.kernels.cpu.attention_forward``
/ ``attention_backward`` (online softmax over tiles of 256 queries x 256 keys, BLAS products
per tile, O(T d) memory per head plus one tile);
"naive" is ``kernels.reference`` (the three-line formula A8/D4/E4, which materialises the
(T, T) scores). Times are medians over ``--repeats``, the contenders alternating; "extra MiB"
is the peak of NumPy allocations during the call (``tracemalloc``), beyond the inputs.
PyTorch allocates outside tracemalloc's view, so its memory is not reported. Prints a table
and one JSON line.

``--device cuda``: the same on the GPU: "fused" is ``kernels.gpu`` (one CUDA block per head
and tile of queries, keys and values staged through shared memory, the online softmax;
the backward one block per tile of keys), "naive" the reference formula in CuPy (cuBLAS for
the products), against PyTorch CUDA's ``scaled_dot_product_attention``; each timed call sits
between two synchronisations, and "extra MiB" is CuPy's pool growth during the call. Without
CuPy or a GPU it prints "skipped: <reason>" and exits 0.
"""
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import _torch_peers  # noqa: E402
from tinylm import scaling  # noqa: E402
from tinylm.kernels import cpu, reference  # noqa: E402

HEADS, DIM = 8, 64


def numpy_contender(module, q, k, v, g, scale):
    def forward():
        return module.attention_forward(q, k, v, scale, 0)

    def forward_backward():
        out, lse = module.attention_forward(q, k, v, scale, 0)
        return module.attention_backward(q, k, v, out, lse, g, scale, 0)
    return forward, forward_backward


def torch_contender(q, k, v, g, device="cpu"):
    import torch
    from torch.nn.functional import scaled_dot_product_attention as sdpa
    tq, tk, tv = (torch.from_numpy(a).to(device).requires_grad_() for a in (q, k, v))
    tg = torch.from_numpy(g).to(device)

    def forward():
        with torch.no_grad():
            return sdpa(tq, tk, tv, is_causal=True)

    def forward_backward():
        out = sdpa(tq, tk, tv, is_causal=True)
        return torch.autograd.grad(out, (tq, tk, tv), tg)
    return forward, forward_backward


def peak_mib(fn):
    return scaling.traced_memory(fn)[1] / 2 ** 20


def gpu_peak_mib(fn):
    """Growth of CuPy's memory pool while ``fn`` runs (its allocations beyond the inputs)."""
    import cupy
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    before = pool.total_bytes()
    fn()
    _torch_peers.gpu_sync()
    return (pool.total_bytes() - before) / 2 ** 20


def main_cuda(args):
    if not _torch_peers.device_or_skip("cuda", "attention"):
        return 0
    import cupy
    from tinylm.kernels import gpu
    torch = _torch_peers.torch_or_none()
    with_torch = torch is not None and torch.cuda.is_available()
    rng = np.random.default_rng(0)
    rows = []
    for T in args.lengths:
        host = [rng.standard_normal((HEADS, T, DIM)).astype(np.float32) for _ in range(4)]
        q, k, v, g = (cupy.asarray(a) for a in host)
        scale = DIM ** -0.5
        contenders = {"fused": numpy_contender(gpu, q, k, v, g, scale),
                      "naive": numpy_contender(reference, q, k, v, g, scale)}
        if with_torch:
            contenders["pytorch sdpa"] = torch_contender(*host, device="cuda")
        steps = {(name, part): fn for name, fns in contenders.items()
                 for part, fn in zip(("fwd", "fwd+bwd"), fns)}
        ms = _torch_peers.median_ms_alternating(steps, args.repeats, sync=_torch_peers.gpu_sync)
        row = {"T": T, **{f"{name} {part} ms": round(t, 3) for (name, part), t in ms.items()}}
        for name in ("fused", "naive"):
            row[f"{name} fwd+bwd MiB"] = round(gpu_peak_mib(contenders[name][1]), 1)
        rows.append(row)
    names = list(contenders)
    gpu_label = _torch_peers.gpu_name()
    print(f"causal attention on {gpu_label}, {HEADS} heads x d {DIM}, float32, median of "
          f"{args.repeats}")
    print(f"{'T':>5} " + " ".join(f"{n + ' ' + part:>22}" for n in names
                                  for part in ("fwd ms", "fwd+bwd ms"))
          + f" {'fused MiB':>10} {'naive MiB':>10}")
    for row in rows:
        cells = " ".join(f"{row[f'{n} {part} ms']:22.3f}" for n in names
                         for part in ("fwd", "fwd+bwd"))
        print(f"{row['T']:5d} {cells} {row['fused fwd+bwd MiB']:10.1f} "
              f"{row['naive fwd+bwd MiB']:10.1f}")
    if not with_torch:
        print("PyTorch with CUDA is not installed: no SDPA column")
    print(json.dumps({"benchmark": "attention", "device": "cuda", "gpu": gpu_label,
                      "rows": rows}))
    return 0


def main(argv=None):
    p = _torch_peers.benchmark_parser(__doc__, repeats=5)
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    args = _torch_peers.parse_and_pin(p, argv)
    if args.device == "cuda":
        return main_cuda(args)
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
        steps = {f"{name} {part} ms": fn for name, (fwd, both) in contenders.items()
                 for part, fn in (("fwd", fwd), ("fwd+bwd", both))}
        row = {"T": T}
        row.update({key: round(ms, 2) for key, ms in
                    _torch_peers.median_ms_alternating(steps, args.repeats).items()})
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
