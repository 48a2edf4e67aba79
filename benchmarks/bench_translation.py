"""Multi30k English -> German (or Tatoeba English -> French): BLEU after a wall-clock budget.

    python benchmarks/bench_translation.py [--dataset multi30k|tatoeba] [--budget-minutes 30]
                                           [--d-model 128] [--layers 3] [--data PATH]
                                           [--beam 0] [--test-sentences 0]

Multi30k: train on its train split, score on test_2016_flickr (1,000 sentences). Tatoeba
English-French: ``load_tatoeba``'s seeded 80/10/10 split (seed 0), score on its test part.

A ``Seq2SeqTransformer`` (D7) on lower-cased word tokens (``WordTokenizer``, words seen at
least twice in train, at most 8000 per language), AdamW with warm-up and a cosine decay
driven by the elapsed share of the budget (so the run ends at the budget, whatever the
speed of the machine), batches of sentences of similar length. Then greedy decoding (or
beam search) of the test set and corpus BLEU over the same lower-cased tokens (not
sacreBLEU's detokenized score: comparable with the usual "tokenized BLEU" of Multi30k
tutorials). One BLAS thread unless --blas-threads. Prints one JSON object; without the data
folder or file it prints ``{"skipped": ...}`` and exits 0.
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

from tinylm import optim  # noqa: E402
from tinylm.datasets import DATA_DIR, load_multi30k, load_tatoeba  # noqa: E402
from tinylm.metrics import corpus_bleu  # noqa: E402
from tinylm.models.seq2seq import Seq2SeqTransformer  # noqa: E402
from tinylm.tensor import no_grad  # noqa: E402
from tinylm.text import WordTokenizer, pad_sequences  # noqa: E402

DEFAULT_DATA = {"multi30k": DATA_DIR / "translation" / "multi30k",
                "tatoeba": DATA_DIR / "translation" / "tatoeba-eng-fra"}
PAD, UNK, BOS, EOS = 0, 1, 2, 3


def encode(tok, texts, max_len):
    return [tok.encode(t)[:max_len] or [UNK] for t in texts]


def length_batches(src, tgt, batch_size, rng):
    """Batches of sentences of similar source length (less padding), in random order."""
    order = np.argsort([len(s) + rng.random() for s in src], kind="stable")
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for k in rng.permutation(len(chunks)):
        rows = chunks[k]
        x, _ = pad_sequences([src[i] for i in rows], pad_id=PAD)
        y, _ = pad_sequences([tgt[i] for i in rows], pad_id=PAD)
        yield x, y


def train(model, src, tgt, args):
    opt = optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    budget = 60 * args.budget_minutes
    start, step, epoch, losses = time.perf_counter(), 0, 0, []
    model.train()
    while True:
        for x, y in length_batches(src, tgt, args.batch_size, rng):
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                model.eval()
                return {"steps": step, "epochs": round(epoch + 0.0, 2),
                        "train_seconds": round(elapsed, 1),
                        "final_loss": round(float(np.mean(losses[-100:])), 4)}
            warm = min(1.0, (step + 1) / args.warmup)
            decay = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
            opt.param_groups[0]["lr"] = args.lr * warm * decay
            loss = model(x, y[:, :-1], y[:, 1:])[1]
            opt.zero_grad()
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            step += 1
            if args.log_every and step % args.log_every == 0:
                print(f"step {step} epoch {epoch} loss {np.mean(losses[-args.log_every:]):.3f}"
                      f" {elapsed / 60:.1f} min", file=sys.stderr, flush=True)
        epoch += 1


@no_grad()
def translate(model, src, args):
    out = []
    for start in range(0, len(src), 100):
        x, _ = pad_sequences(src[start:start + 100], pad_id=PAD)
        if args.beam > 1:
            rows = model.beam_search(x, BOS, EOS, beam_size=args.beam,
                                     max_new_tokens=args.max_len)
        else:
            rows = model.greedy(x, BOS, EOS, max_new_tokens=args.max_len).tolist()
        for row in rows:
            ids = [t for t in row if t not in (PAD, BOS)]
            out.append(ids[:ids.index(EOS)] if EOS in ids else ids)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=sorted(DEFAULT_DATA), default="multi30k")
    p.add_argument("--data", default=None, help="the dataset's folder or file (default: "
                   "DATA_DIR/translation/multi30k or tatoeba-eng-fra)")
    p.add_argument("--budget-minutes", type=float, default=30.0)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--ff", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=400)
    p.add_argument("--max-len", type=int, default=40)
    p.add_argument("--min-count", type=int, default=2)
    p.add_argument("--max-vocab", type=int, default=8000)
    p.add_argument("--beam", type=int, default=0, help="beam size (0: greedy)")
    p.add_argument("--test-sentences", type=int, default=0, help="0: all 1000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blas-threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=100)
    args = p.parse_args(argv)
    args.data = args.data or str(DEFAULT_DATA[args.dataset])
    if not Path(args.data).exists():
        print(json.dumps({"skipped": f"no {args.dataset} data at {args.data}"}))
        return 0
    from threadpoolctl import threadpool_limits
    threadpool_limits(args.blas_threads, "blas")

    if args.dataset == "multi30k":
        train_pairs, test_pairs = (load_multi30k(args.data, split, "en", "de")
                                   for split in ("train", "test"))
        name = "multi30k en->de, test_2016_flickr"
    else:
        train_pairs, test_pairs = (load_tatoeba(args.data, split) for split in ("train", "test"))
        name = "tatoeba en->fr, seeded 10% test split"
    if args.test_sentences:
        test_pairs = test_pairs[:args.test_sentences]
    src_tok = WordTokenizer.train([s for s, _ in train_pairs], min_count=args.min_count,
                                 max_size=args.max_vocab, lower=True)
    tgt_tok = WordTokenizer.train([t for _, t in train_pairs], min_count=args.min_count,
                                 max_size=args.max_vocab, lower=True)
    src = encode(src_tok, [s for s, _ in train_pairs], args.max_len)
    tgt = [[BOS] + ids[:args.max_len - 1] + [EOS]
           for ids in encode(tgt_tok, [t for _, t in train_pairs], args.max_len)]
    model = Seq2SeqTransformer(src_tok.vocab_size, tgt_tok.vocab_size, d_model=args.d_model,
                               nhead=args.heads, num_encoder_layers=args.layers,
                               num_decoder_layers=args.layers, dim_feedforward=args.ff,
                               dropout=args.dropout, max_len=args.max_len + 1, seed=args.seed)
    result = {"benchmark": name, "command": " ".join(sys.argv),
              "machine": platform.processor() or platform.machine(),
              "parameters": model.num_parameters(), "train_pairs": len(train_pairs),
              "vocab": {"source": src_tok.vocab_size, "target": tgt_tok.vocab_size}}
    result |= train(model, src, tgt, args)
    t0 = time.perf_counter()
    hyps = translate(model, encode(src_tok, [s for s, _ in test_pairs], args.max_len), args)
    hyp_tokens = [tgt_tok.tokenize(tgt_tok.decode(h)) for h in hyps]
    ref_tokens = [tgt_tok.tokenize(t) for _, t in test_pairs]
    result |= {"test_sentences": len(test_pairs),
               "search": f"beam {args.beam}" if args.beam > 1 else "greedy",
               "bleu": round(100 * corpus_bleu(hyp_tokens, ref_tokens), 2),
               "translate_seconds": round(time.perf_counter() - t0, 1),
               "examples": [{"source": s, "reference": t, "hypothesis": " ".join(h)}
                            for (s, t), h in list(zip(test_pairs, hyp_tokens))[:3]]}
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
