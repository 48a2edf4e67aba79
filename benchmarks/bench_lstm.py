"""One training step of a word-level LSTM language model: tinylm against PyTorch ``nn.LSTM``,
from the same weights on the same batch, in the same run, alternating.

    python benchmarks/bench_lstm.py [--repeats 20] [--threads 2] [--device cpu|cuda]

Vocabulary 10,000, embedding 256, one LSTM layer of 256, 35 steps x batch 20 (the classic PTB
setting), AdamW, gradient clipping 1.0: forward, backward, clip, step. Median ms per step, and
the ratio to PyTorch. Prints a table and one JSON line. ``--device cuda``: both on the GPU
(tinylm through CuPy and its CUDA kernels, PyTorch's cuDNN LSTM), each timed call between
two synchronisations; without CuPy or a GPU it prints "skipped: <reason>" and exits 0.
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
from tinylm.models import RNNLM  # noqa: E402
from tinylm.optim import clip_grad_norm_  # noqa: E402

CONFIG = {"vocab_size": 10000, "embed_size": 256, "hidden_size": 256, "num_layers": 1,
          "cell": "lstm", "dropout": 0.0, "tie_weights": False}
BATCH, BPTT = 20, 35


def main(argv=None):
    args = _torch_peers.parse_and_pin(_torch_peers.benchmark_parser(__doc__, repeats=20), argv)
    if not _torch_peers.device_or_skip(args.device, "lstm_lm_step"):
        return 0
    on_gpu = args.device == "cuda"
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, CONFIG["vocab_size"], (2, BATCH, BPTT))
    model = RNNLM(**CONFIG, seed=0)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    model.to(args.device)
    opt = _torch_peers.tinylm_adamw(model, 1e-3, (0.9, 0.99), 0.1)

    def tinylm_step():
        _, loss, _ = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    steps = {"tinylm": tinylm_step}
    torch = _torch_peers.torch_or_none()
    if torch is not None and (not on_gpu or torch.cuda.is_available()):
        steps["PyTorch nn.LSTM"] = _torch_peers.torch_training_step(
            _torch_peers.torch_rnnlm(state, CONFIG), x, y, device=args.device)
    ms = _torch_peers.median_ms_alternating(steps, args.repeats,
                                            sync=_torch_peers.gpu_sync if on_gpu else None)
    base = ms.get("PyTorch nn.LSTM")
    where = f"on {_torch_peers.gpu_name()}" if on_gpu else f"{args.threads} threads"
    print(f"LSTM LM training step (vocab {CONFIG['vocab_size']}, embedding/hidden "
          f"{CONFIG['hidden_size']}, {BPTT} x {BATCH}), {where}, median of "
          f"{args.repeats}")
    for name, value in ms.items():
        ratio = f"  {value / base:.2f}x PyTorch" if base else ""
        print(f"{name:18} {value:8.1f} ms{ratio}")
    if torch is None:
        print("PyTorch is not installed: no comparison (pip install torch)")
    print(json.dumps({"benchmark": "lstm_lm_step", "machine": platform.processor()
                      or platform.machine(), "threads": args.threads, "device": args.device,
                      "ms_per_step": {k: round(v, 2) for k, v in ms.items()},
                      "ratio_to_pytorch": round(ms["tinylm"] / base, 3) if base else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
