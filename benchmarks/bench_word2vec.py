"""word2vec: tinylm against gensim 4 on the same corpus, parameters and threads.

    python benchmarks/bench_word2vec.py [--corpus PATH] [--epochs 5] [--workers 2]
                                        [--modes sg cbow] [--seeds 1 2 3]
                                        [--device cpu|cuda]

For each mode (skip-gram, CBOW) both libraries build the vocabulary, then the training alone is
timed (tinylm's Numba kernel is compiled on a small warm-up corpus first). Words per second =
raw corpus words x epochs / training seconds, as gensim reports it. Quality: Spearman on
gensim's bundled wordsim353.tsv and accuracy on its questions-words.txt. Prints one JSON
object; asserts nothing about time (the machine may be shared). ``--device cuda`` trains
tinylm's model on the GPU (``Word2Vec(device="cuda")``; gensim stays on the CPU); without
CuPy or a GPU it prints "skipped: <reason>" and exits 0.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _torch_peers  # noqa: E402

from tinylm.embeddings import Word2Vec  # noqa: E402

PTB = ROOT.parent / "shared" / "data" / "lm" / "ptb" / "ptb.train.txt"


def quality(wv, datapath):
    (_, _), (spearman, _), oov = wv.evaluate_word_pairs(datapath("wordsim353.tsv"))
    analogy, _ = wv.evaluate_word_analogies(datapath("questions-words.txt"))
    return {"wordsim353_spearman": round(float(spearman), 4), "wordsim353_oov_pct": round(oov, 1),
            "analogy_accuracy": round(float(analogy), 4)}


def run_tinylm(sentences, params, datapath, device="cpu"):
    model = Word2Vec(**params, device=device)
    model.build_vocab(sentences)
    model.train(sentences)
    return {"train_seconds": round(model.train_seconds, 3),
            "words_per_second": round(model.words_per_second), "vocab": len(model.wv),
            **quality(model.wv, datapath)}


def run_gensim(sentences, params, raw_words):
    from gensim.models import Word2Vec as GensimWord2Vec
    from gensim.test.utils import datapath
    model = GensimWord2Vec(**params)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    seconds = time.perf_counter() - start
    return {"train_seconds": round(seconds, 3),
            "words_per_second": round(raw_words * model.epochs / seconds),
            "vocab": len(model.wv), **quality(model.wv, datapath)}


def summarise(runs):
    """One seed: that run. Several: median speed, mean quality, and every run's numbers."""
    if len(runs) == 1:
        return runs[0]
    out = {"words_per_second": round(statistics.median(r["words_per_second"] for r in runs)),
           "vocab": runs[0]["vocab"]}
    for key in ("wordsim353_spearman", "analogy_accuracy"):
        values = [r[key] for r in runs]
        out[key] = round(statistics.mean(values), 4)
        out[key + "_stdev"] = round(statistics.stdev(values), 4)
    out["runs"] = runs
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(PTB))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["sg", "cbow"], choices=["sg", "cbow"])
    parser.add_argument("--no-gensim", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1],
                        help="one run per seed; quality is reported as the mean (and the "
                             "spread), speed as the median")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where tinylm trains (gensim: always the CPU)")
    args = parser.parse_args()
    if not _torch_peers.device_or_skip(args.device, "word2vec"):
        return
    corpus = Path(args.corpus)
    if not corpus.is_file():
        print(json.dumps({"skipped": f"corpus {corpus} not found"}))
        return
    try:
        from gensim.test.utils import datapath
    except ImportError:
        print(json.dumps({"skipped": "gensim is not installed (pip install gensim): its "
                                     "evaluation files and the comparison need it"}))
        return
    with open(corpus, encoding="utf8") as f:
        sentences = [line.split() for line in f if line.strip()]
    raw_words = sum(map(len, sentences))
    # compile the Numba kernels (both modes) before any timing
    for sg in (0, 1):
        Word2Vec(sentences[:500], vector_size=8, min_count=1, epochs=1, sg=sg, workers=1)
    result = {"corpus": str(corpus), "sentences": len(sentences), "raw_words": raw_words,
              "epochs": args.epochs, "workers": args.workers, "cpu_count": os.cpu_count(),
              "python": platform.python_version(), "device": args.device, "modes": {}}
    for mode in args.modes:
        runs = {"tinylm": [], "gensim": []}
        for seed in args.seeds:
            params = dict(vector_size=100, window=5, negative=5, min_count=5, sample=1e-3,
                          epochs=args.epochs, workers=args.workers, seed=seed,
                          sg=int(mode == "sg"))
            runs["tinylm"].append(run_tinylm(sentences, params, datapath, args.device))
            if not args.no_gensim:
                runs["gensim"].append(run_gensim(sentences, params, raw_words))
        row = {lib: summarise(r) for lib, r in runs.items() if r}
        if not args.no_gensim:
            ours, theirs = row["tinylm"], row["gensim"]
            row["speed_ratio_tinylm_over_gensim"] = round(
                ours["words_per_second"] / theirs["words_per_second"], 3)
            row["spearman_difference"] = round(ours["wordsim353_spearman"]
                                               - theirs["wordsim353_spearman"], 4)
            row["analogy_difference"] = round(ours["analogy_accuracy"]
                                              - theirs["analogy_accuracy"], 4)
        result["modes"][mode] = row
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
