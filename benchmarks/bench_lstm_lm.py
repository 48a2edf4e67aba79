"""A word-level LSTM language model on PTB, in tinylm and in PyTorch from the same weights.

    python benchmarks/bench_lstm_lm.py [--corpus DIR] [--max-iters 1000] [--threads 2]
                                       [--embed 200] [--hidden 200] [--layers 2] [--seed 0]

PyTorch's ``word_language_model`` architecture (embedding -> 2-layer LSTM -> linear decoder,
its parameter names and U(-0.1, 0.1) init), on the Penn Treebank (Mikolov's files, 10,000 words
with ``<unk>`` and ``<eos>``), windows of 35 words at random offsets, 20 per batch, AdamW lr
3e-3 with a cosine decay to 3e-4, gradient clipping 1.0, no dropout (so the two runs differ
only by arithmetic, not by random masks). This is what
``python -m tinylm train rnnlm --corpus DIR --cell lstm --bptt 35 --batch-size 20 --n-embd 200
--n-hidden 200 --n-layer 2 --dropout 0 --max-iters 1000`` trains.

PyTorch trains ``torch.nn.LSTM`` from tinylm's initial weights on the same batches
(``_torch_peers.train_like_tinylm``). The target: validation perplexity (every window of
``ptb.valid.txt``) of tinylm / PyTorch close to 1.0. Prints a table and one JSON line; without
the corpus it says so and exits 0.
"""
import argparse
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import _torch_peers  # noqa: E402
from tinylm.datasets import DATA_DIR, WhitespaceTokenizer, load_word_lm  # noqa: E402
from tinylm.models import RNNLM  # noqa: E402
from tinylm.text import random_windows  # noqa: E402
from tinylm.train import TrainConfig  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default=str(DATA_DIR / "lm" / "ptb"),
                   help="a folder with train/valid files (PTB, WikiText-2)")
    p.add_argument("--max-iters", type=int, default=1000)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--embed", type=int, default=200)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="tinylm only")
    args = p.parse_args(argv)
    if not Path(args.corpus).is_dir():
        print(json.dumps({"skipped": f"no corpus folder at {args.corpus}"}))
        return 0
    _torch_peers.set_threads(args.threads)

    parts = load_word_lm(args.corpus)
    tok = WhitespaceTokenizer.from_tokens(parts["train"])
    ids = {s: np.array(tok.encode_tokens(parts[s]), dtype=np.int64) for s in ("train", "val")}
    config = {"vocab_size": tok.vocab_size, "embed_size": args.embed,
              "hidden_size": args.hidden, "num_layers": args.layers, "cell": "lstm",
              "dropout": 0.0, "tie_weights": False}
    train_config = TrainConfig(max_iters=args.max_iters, lr=3e-3, min_lr=3e-4,
                               warmup_iters=min(20, args.max_iters),
                               lr_decay_iters=args.max_iters, grad_clip=1.0,
                               eval_interval=args.eval_interval, eval_iters=args.eval_iters,
                               seed=args.seed, progress=False)
    model = RNNLM(**config, seed=args.seed)
    results = _torch_peers.run_side_by_side(
        model, lambda state: _torch_peers.torch_rnnlm(state, config),
        random_windows(ids, args.bptt, args.batch_size), train_config, (3e-3, (0.9, 0.99), 0.1),
        ids["val"], args.bptt, use_torch=not args.no_torch)
    for r in results.values():
        if "val_loss_all_windows" in r:
            r["val_perplexity"] = round(math.exp(r["val_loss_all_windows"]), 2)
    ratio = None
    if "val_perplexity" in results["pytorch"]:
        ratio = round(results["tinylm"]["val_perplexity"] / results["pytorch"]["val_perplexity"],
                      4)

    print(f"LSTM LM on {Path(args.corpus).name}: vocab {tok.vocab_size}, "
          f"{model.num_parameters() / 1e6:.2f}M parameters, {args.max_iters} iterations of "
          f"{args.batch_size}x{args.bptt} words, {args.threads} threads")
    _torch_peers.print_table(results, "val_perplexity", "val ppl")
    if ratio is not None:
        print(f"validation perplexity, tinylm / PyTorch: {ratio}")
    print(json.dumps({"benchmark": f"word-level LSTM LM, {Path(args.corpus).name}",
                      "machine": platform.processor() or platform.machine(),
                      "threads": args.threads, "iters": args.max_iters, "seed": args.seed,
                      "config": config, **results, "val_perplexity_ratio": ratio}))
    return 0



if __name__ == "__main__":
    sys.exit(main())
