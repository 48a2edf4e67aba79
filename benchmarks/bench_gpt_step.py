"""One GPT training step (nanoGPT's CPU configuration): tinylm's kernels, its NumPy reference,
and PyTorch, in the same run, alternating.

    python benchmarks/bench_gpt_step.py [--repeats 20] [--threads 2] [--device cpu|cuda]

n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab 65, dropout 0, no bias,
tied head, pre-LN, GELU, AdamW, gradient clipping 1.0: forward, backward, clip, step. Each
contender runs one step per round, the rounds repeat ``--repeats`` times and the median is
reported, so a busy moment of the machine hits them all alike. PyTorch runs twice: with the
attention written out (as tinylm computes it) and with ``scaled_dot_product_attention``.
GFLOP/s counts 6 N per token plus the attention products (nanoGPT's estimate) and is set
beside the float32 ``np.matmul`` peak of this machine. Prints a table and one JSON line.

``--device cuda``: the same step on the GPU, tinylm with its CUDA kernels and with the CuPy
reference formulas, against PyTorch CUDA on the same GPU in the same run (each timed call
between two synchronisations); the peak is then CuPy's float32 matmul (cuBLAS). Without CuPy
or a GPU it prints "skipped: <reason>" and exits 0.
"""
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import _torch_peers  # noqa: E402
from tinylm import kernels  # noqa: E402
from tinylm.models import GPT, GPTConfig  # noqa: E402
from tinylm.optim import clip_grad_norm_  # noqa: E402

CONFIG = GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                   bias=False)
BATCH = 12


def flops_per_step(model):
    """nanoGPT's estimate: 6 N per token, plus 12 L T d for the attention products."""
    n, c = model.get_num_params(), CONFIG
    per_token = 6 * n + 12 * c.n_layer * c.block_size * c.n_embd
    return per_token * BATCH * c.block_size


def matmul_peak(threads):
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    best = min(_timed(lambda: a @ a) for _ in range(10))
    return 2 * 1024 ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tinylm_step(mode, x, y, device="cpu"):
    model = GPT(CONFIG, seed=0).to(device)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))

    def step():
        with kernels.use(mode):
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return step, model


def cupy_matmul_peak():
    import cupy
    a = cupy.asarray(np.random.default_rng(0).standard_normal((4096, 4096)), cupy.float32)
    a @ a
    best = math.inf
    for _ in range(10):
        _torch_peers.gpu_sync()
        start = time.perf_counter()
        a @ a
        _torch_peers.gpu_sync()
        best = min(best, time.perf_counter() - start)
    return 2 * 4096 ** 3 / best / 1e9


def main_cuda(args):
    """The step on the GPU: tinylm (CUDA kernels, CuPy reference) and PyTorch CUDA."""
    if not _torch_peers.device_or_skip("cuda", "gpt_step"):
        return 0
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, CONFIG.vocab_size, (2, BATCH, CONFIG.block_size))
    steps = {}
    steps["tinylm (CUDA kernels)"], model = tinylm_step("numba", x, y, "cuda")
    steps["tinylm (CuPy reference)"], _ = tinylm_step("reference", x, y, "cuda")
    torch = _torch_peers.torch_or_none()
    if torch is not None and torch.cuda.is_available():
        state = GPT(CONFIG, seed=0).state_dict()
        for label, sdpa in (("attention written out", False),
                            ("scaled_dot_product_attention", True)):
            steps[f"PyTorch CUDA ({label})"] = _torch_peers.torch_training_step(
                _torch_peers.torch_gpt(state, CONFIG, sdpa=sdpa), x, y, device="cuda")
    ms = _torch_peers.median_ms_alternating(steps, args.repeats, sync=_torch_peers.gpu_sync)
    flops, peak = flops_per_step(model), cupy_matmul_peak()
    base = ms.get("PyTorch CUDA (scaled_dot_product_attention)")
    gpu = _torch_peers.gpu_name()
    print(f"GPT training step on {gpu}, nanoGPT CPU config ({BATCH}x{CONFIG.block_size} "
          f"tokens), median of {args.repeats}; cuBLAS float32 peak {peak:.0f} GFLOP/s")
    print(f"{'':46} {'ms/step':>8} {'GFLOP/s':>8} {'x PyTorch':>10}")
    for name, value in ms.items():
        ratio = f"{value / base:10.2f}" if base else f"{'-':>10}"
        print(f"{name:46} {value:8.2f} {flops / value / 1e6:8.1f} {ratio}")
    if base is None:
        print("PyTorch with CUDA is not installed: no comparison")
    print(json.dumps({"benchmark": "gpt_step", "device": "cuda", "gpu": gpu,
                      "repeats": args.repeats,
                      "ms_per_step": {k: round(v, 3) for k, v in ms.items()},
                      "gflop_per_step": round(flops / 1e9, 3),
                      "matmul_peak_gflops": round(peak, 1),
                      "torch": torch.__version__ if torch else None}))
    return 0


def main(argv=None):
    args = _torch_peers.parse_and_pin(_torch_peers.benchmark_parser(__doc__, repeats=20), argv)
    if args.device == "cuda":
        return main_cuda(args)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, CONFIG.vocab_size, (2, BATCH, CONFIG.block_size))

    start = time.perf_counter()
    steps = {}
    steps["tinylm (Numba kernels)"], model = tinylm_step("numba", x, y)
    steps["tinylm (Numba kernels)"]()                 # compiles, or loads the disk cache
    first_step = time.perf_counter() - start
    steps["tinylm (NumPy reference)"], _ = tinylm_step("reference", x, y)
    torch = _torch_peers.torch_or_none()
    if torch is not None:
        state = GPT(CONFIG, seed=0).state_dict()
        for label, sdpa in (("attention written out", False),
                            ("scaled_dot_product_attention", True)):
            steps[f"PyTorch ({label})"] = _torch_peers.torch_training_step(
                _torch_peers.torch_gpt(state, CONFIG, sdpa=sdpa), x, y)
    ms = _torch_peers.median_ms_alternating(steps, args.repeats)
    flops, peak = flops_per_step(model), matmul_peak(args.threads)
    base = ms.get("PyTorch (scaled_dot_product_attention)")

    print(f"GPT training step, nanoGPT CPU config ({model.get_num_params() / 1e6:.2f}M "
          f"parameters, {BATCH}x{CONFIG.block_size} tokens), {args.threads} threads, median "
          f"of {args.repeats}; np.matmul float32 peak {peak:.0f} GFLOP/s")
    print(f"{'':42} {'ms/step':>8} {'GFLOP/s':>8} {'% peak':>7} {'x PyTorch':>10}")
    for name, value in ms.items():
        gflops = flops / value / 1e6
        ratio = f"{value / base:10.2f}" if base else f"{'-':>10}"
        print(f"{name:42} {value:8.1f} {gflops:8.1f} {100 * gflops / peak:7.1f} {ratio}")
    if torch is None:
        print("PyTorch is not installed: no comparison (pip install torch)")
    print(json.dumps({"benchmark": "gpt_step", "machine": platform.processor()
                      or platform.machine(), "threads": args.threads, "repeats": args.repeats,
                      "ms_per_step": {k: round(v, 2) for k, v in ms.items()},
                      "gflop_per_step": round(flops / 1e9, 3),
                      "matmul_peak_gflops": round(peak, 1),
                      "first_step_seconds_incl_compile_or_cache_load": round(first_step, 2),
                      "torch": torch.__version__ if torch else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
