"""Sentence classification with tinylm from scratch: SST-2 dev and rt-polarity accuracy.

    python benchmarks/bench_classification.py [--data sst2 rt-polarity] [--epochs 4]
        [--model lstm|transformer] [--pooling max] [--bidirectional] [--embed 64]
        [--hidden 64] [--dropout 0.5] [--batch-size 64] [--lr 3e-3] [--max-len 64]
        [--min-count 2] [--weight-decay 0.1] [--seed 0]

For each data set: a lower-cased word vocabulary of the training texts (words seen at least
``--min-count`` times, capped at 25,000, C14), a classifier with random initial embeddings
(no pretrained vectors), one logit + BCE-with-logits, AdamW (weight decay on the matrices)
with a cosine-decayed learning rate, length-bucketed batches, a fixed
number of epochs; then the accuracy (and F1) on the held-out split: SST-2's GLUE dev set, and
for rt-polarity a seeded stratified 90/10 split (``load_rt_polarity(split="dev", seed)``).
Wall time covers tokenizing, training and scoring. One BLAS thread (the models are small and
the machine may be shared). Prints one JSON object; asserts nothing. Without the data
(``../shared/data/sentiment`` or ``$TINYLM_DATA``) it says so and exits 0.
"""
import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinylm as tl  # noqa: E402
from tinylm import functional as F  # noqa: E402
from tinylm import optim  # noqa: E402
from tinylm.datasets import DATA_DIR, load_rt_polarity, load_sst2  # noqa: E402
from tinylm.metrics import accuracy, precision_recall_f1  # noqa: E402
from tinylm.models import LSTMClassifier, TransformerClassifier  # noqa: E402
from tinylm.text import WordTokenizer, bucket_batches, pad_sequences  # noqa: E402

SENTIMENT = DATA_DIR / "sentiment"
MAX_VOCAB = 25_000


def load(name, seed):
    if name == "sst2":
        return load_sst2(SENTIMENT / "sst2", "train"), load_sst2(SENTIMENT / "sst2", "dev")
    folder = SENTIMENT / "rt-polarity"
    return (load_rt_polarity(folder, "train", seed=seed),
            load_rt_polarity(folder, "dev", seed=seed))


def encode(tok, texts, max_len):
    unk = tok.vocab.stoi["<unk>"]
    return [tok.encode(t)[:max_len] or [unk] for t in texts]


@tl.no_grad()
def predict(model, seqs, batch_size=512):
    model.eval()
    out = []
    for start in range(0, len(seqs), batch_size):
        ids, lengths = pad_sequences(seqs[start:start + batch_size])
        out.append(model(ids, lengths).numpy() > 0)
    return np.concatenate(out).astype(np.int64)


def build(args, vocab_size):
    if args.model == "transformer":
        return TransformerClassifier(vocab_size, d_model=args.embed, nhead=4, num_layers=2,
                                     dim_feedforward=2 * args.embed, num_outputs=1,
                                     max_len=args.max_len, dropout=args.dropout,
                                     seed=args.seed)
    return LSTMClassifier(vocab_size, args.embed, args.hidden, num_outputs=1,
                          pooling=args.pooling, bidirectional=args.bidirectional,
                          dropout=args.dropout, seed=args.seed)


def run(name, args):
    start = time.perf_counter()
    (train_texts, train_labels), (dev_texts, dev_labels) = load(name, args.seed)
    tok = WordTokenizer.train(train_texts, min_count=args.min_count, max_size=MAX_VOCAB,
                              lower=True)
    train = encode(tok, train_texts, args.max_len)
    dev = encode(tok, dev_texts, args.max_len)
    y = np.array(train_labels, dtype=np.float32)
    model = build(args, tok.vocab_size)
    params = list(model.parameters())        # weight decay on matrices only (nanoGPT's groups)
    opt = optim.AdamW([{"params": [q for q in params if q.ndim >= 2],
                        "weight_decay": args.weight_decay},
                       {"params": [q for q in params if q.ndim < 2], "weight_decay": 0.0}],
                      lr=args.lr)
    steps = args.epochs * math.ceil(len(train) / args.batch_size)
    step, epochs = 0, []
    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        for ids, lengths, labels in bucket_batches(train, y, args.batch_size,
                                                   seed=args.seed + epoch):
            for group in opt.param_groups:     # cosine decay to lr / 10
                group["lr"] = args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
            loss = F.binary_cross_entropy_with_logits(model(ids, lengths), labels)
            opt.zero_grad()
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += loss.item() * len(labels)
            step += 1
        pred = predict(model, dev)
        epochs.append({"epoch": epoch + 1, "train_loss": round(total / len(train), 4),
                       "dev_accuracy": round(accuracy(dev_labels, pred), 4)})
        print(json.dumps({name: epochs[-1]}), file=sys.stderr, flush=True)
    pred = predict(model, dev)
    return {"train_examples": len(train), "dev_examples": len(dev),
            "vocab_size": tok.vocab_size, "parameters": int(model.num_parameters()),
            "dev_accuracy": round(accuracy(dev_labels, pred), 4),
            "dev_f1": round(precision_recall_f1(dev_labels, pred)[2], 4),
            "epochs": epochs, "wall_seconds": round(time.perf_counter() - start, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", choices=("sst2", "rt-polarity"),
                   default=["sst2", "rt-polarity"])
    p.add_argument("--model", choices=("lstm", "transformer"), default="lstm")
    p.add_argument("--pooling", choices=("last", "mean", "max"), default="max")
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--min-count", type=int, default=2)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    missing = [d for d in args.data
               if not (SENTIMENT / ("sst2" if d == "sst2" else "rt-polarity")).is_dir()]
    if missing:
        print(json.dumps({"skipped": f"no data for {missing} under {SENTIMENT} "
                                     f"(set $TINYLM_DATA)"}))
        return 0
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        results = {name: run(name, args) for name in args.data}
    print(json.dumps({"benchmark": "classification", "config": vars(args),
                      "python": platform.python_version(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
