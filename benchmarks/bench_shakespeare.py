"""nanoGPT's CPU run on tiny Shakespeare, in tinylm and in PyTorch from the same weights.

    python benchmarks/bench_shakespeare.py [--max-iters 2000] [--threads 2] [--seeds 1337 ...]
                                           [--corpus PATH] [--no-torch] [--bias]

The configuration of nanoGPT's README ("baby GPT" on a CPU): character tokens, n_layer=4,
n_head=4, n_embd=128, block_size=64, batch_size=12, dropout 0, no biases (nanoGPT's
``bias = False``; ``--bias`` turns them on), AdamW (betas 0.9/0.99,
weight decay 0.1 on matrices), lr 1e-3 with 100 warm-up iterations and a cosine decay to 1e-4
at 2000, gradient clipping 1.0, evaluation every 250 iterations on 20 random batches per
split; nanoGPT's split (first 90% of the characters train). This is exactly what
``python -m tinylm train gpt --corpus tinyshakespeare.txt --no-bias --max-iters 2000 ...`` runs.

tinylm trains with its ``Trainer``; PyTorch trains a transcription of nanoGPT's model that
starts from the same weights, sees the same batches and evaluates on the same batches
(``_torch_peers.train_like_tinylm``). Both are pinned to ``--threads``. With several
``--seeds`` each seed is a full run (its own weights and batches) and the mean best
validation loss is reported too: one seed's figure moves by a few hundredths with the draw of
batches. Prints a table per seed, a sample of tinylm's text (temperature 0.8, as nanoGPT's
``sample.py``) and one JSON line. Without the corpus it says so and exits 0.
"""
import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import _torch_peers  # noqa: E402
from tinylm.datasets import DATA_DIR, nanogpt_split  # noqa: E402
from tinylm.models import GPT, GPTConfig  # noqa: E402
from tinylm.text import CharTokenizer, random_windows  # noqa: E402
from tinylm.train import TrainConfig  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default=str(DATA_DIR / "tinyshakespeare.txt"))
    p.add_argument("--max-iters", type=int, default=2000)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[1337])
    p.add_argument("--bias", action="store_true", help="biases in Linear and LayerNorm")
    p.add_argument("--no-torch", action="store_true", help="tinylm only")
    args = p.parse_args(argv)
    if not Path(args.corpus).is_file():
        print(json.dumps({"skipped": f"no corpus at {args.corpus}"}))
        return 0
    _torch_peers.set_threads(args.threads)

    train_text, val_text = nanogpt_split(Path(args.corpus).read_text(encoding="utf-8"))
    tok = CharTokenizer.train(train_text + val_text)
    ids = {"train": np.array(tok.encode(train_text)), "val": np.array(tok.encode(val_text))}
    config = GPTConfig(block_size=64, vocab_size=tok.vocab_size, n_layer=4, n_head=4,
                       n_embd=128, dropout=0.0, bias=args.bias)
    get_batch = random_windows(ids, config.block_size, 12)
    print(f"char GPT on {Path(args.corpus).name}: {GPT(config).get_num_params() / 1e6:.2f}M "
          f"parameters, {args.max_iters} iterations, {args.threads} threads")
    runs = {}
    for seed in args.seeds:
        train_config = TrainConfig(max_iters=args.max_iters, lr=1e-3, min_lr=1e-4,
                                   warmup_iters=min(100, args.max_iters),
                                   lr_decay_iters=args.max_iters, grad_clip=1.0,
                                   eval_interval=args.eval_interval,
                                   eval_iters=args.eval_iters, seed=seed, progress=False)
        model = GPT(config, seed=seed)
        runs[seed] = _torch_peers.run_side_by_side(
            model, lambda state: _torch_peers.torch_gpt(state, config), get_batch,
            train_config, (1e-3, (0.9, 0.99), 0.1), ids["val"], config.block_size,
            use_torch=not args.no_torch)
        print(f"seed {seed}:")
        _torch_peers.print_table(runs[seed], "val_loss_all_windows", "val (all)")
    means = {name: round(float(np.mean([r[name]["best_val_loss"] for r in runs.values()])), 4)
             for name in ("tinylm", "pytorch") if "skipped" not in runs[args.seeds[0]][name]}
    if len(args.seeds) > 1:
        print(f"mean best val loss over seeds {args.seeds}: {means}")
    sample = tok.decode(model.generate(np.array([tok.encode("\n")]), 300, temperature=0.8,
                                       seed=args.seeds[-1])[0].tolist())
    print(f"--- tinylm sample, seed {args.seeds[-1]} (300 characters, temperature 0.8) ---")
    print(sample)
    print("---")
    print(json.dumps({"benchmark": "shakespeare_char nanoGPT CPU config",
                      "machine": platform.processor() or platform.machine(),
                      "threads": args.threads, "iters": args.max_iters, "bias": args.bias,
                      "runs": runs, "mean_best_val_loss": means, "sample": sample}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
