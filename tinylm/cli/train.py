"""``train gpt|rnnlm|classifier|translator``: each model kind's subcommand and its run."""
import argparse
from dataclasses import asdict

import numpy as np

from .. import functional as F
from ..datasets import DATA_DIR
from ..datasets.synthetic import STDLIB_PACKAGES
from ..errors import TinyLMError
from ..metrics import perplexity
from ..models import GPT, RNNLM, GPTConfig, Seq2SeqTransformer
from ..parallel import abort_on_error
from ..text import CharTokenizer, WordTokenizer, random_windows
from ..train import lm_window_loss
from .checkpoints import _build_model
from .common import _INT, UsageError, _add_training_knobs
from .data import (_classification_data, _encode_pairs, _encode_texts, _gpt_data, _rnnlm_data,
                   _sequence_batches, _translation_data)
from .fit import _fit
from .scores import _classifier_scores, _translation_scores


def add_parser(commands):
    """``train`` and its subcommands, one per model kind."""
    train = commands.add_parser("train", help="train a model", description=(
        "Train a model; see 'python -m tinylm train MODEL --help'."))
    models = train.add_subparsers(dest="model_kind", required=True, metavar="MODEL")
    for add in (_gpt_parser, _rnnlm_parser, _classifier_parser, _translator_parser):
        add(models)


def _gpt_parser(models):
    """``train gpt``."""
    p = models.add_parser("gpt", help="a GPT (nanoGPT) language model", description=(
        "A nanoGPT GPT language model. Default: a character-level model on the embedded corpus "
        "(Python's own documentation), nanoGPT's 90/10 split and its CPU settings (4 layers, 4 "
        "heads, 128 wide, block 64, batch 12) for 400 iterations instead of 2000: about a "
        "minute on one core."))
    p.add_argument("--corpus", help="a UTF-8 text file or URL (default: the embedded corpus)")
    p.add_argument("--tokenizer", choices=("char", "bpe", "word"), default="char",
                   help="tokenizer (default char)")
    p.add_argument("--vocab-size", type=_INT, default=512,
                   help="BPE vocabulary size (default %(default)s)")
    p.add_argument("--min-count", type=_INT, default=1, help="word tokenizer: minimum count")
    p.add_argument("--max-vocab", type=_INT, default=None, help="word tokenizer: maximum size")
    p.add_argument("--block-size", type=_INT, default=64,
                   help="context length in tokens (default %(default)s)")
    p.add_argument("--bias", action=argparse.BooleanOptionalAction, default=True,
                   help="biases in Linear and LayerNorm layers (default on)")
    p.add_argument("--score-batches", type=int, default=20,
                   help="batches of consecutive validation windows scored for metrics.json "
                        "(0: all; default %(default)s)")
    # nanoGPT's CPU settings (shakespeare_char README) with max_iters 2000 -> 400: ~1 min here
    _add_training_knobs(p, "out/gpt", 400, 1e-3, 1e-4, 40, 100, 20, 12, 4, 128, 0.0)
    p.set_defaults(handler=_train_gpt)


@abort_on_error        # under mpiexec: an error on one rank ends every rank, none hangs
def _train_gpt(args):
    spec = {"corpus": args.corpus, "tokenizer": args.tokenizer, "vocab_size": args.vocab_size,
            "min_count": args.min_count, "max_vocab": args.max_vocab}
    ids, tok = _gpt_data(spec)
    config = GPTConfig(block_size=args.block_size, vocab_size=tok.vocab_size,
                       n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                       dropout=args.dropout, bias=args.bias)
    model = GPT(config, seed=args.seed)

    def score(model):
        loss, tokens = lm_window_loss(model, ids["val"], args.block_size, args.batch_size,
                                args.score_batches)
        return {"val_loss_windows": loss, "val_perplexity": perplexity(loss),
                "val_tokens_scored": tokens, "vocab_size": tok.vocab_size}
    return _fit(args, "gpt", model, random_windows(ids, args.block_size, args.batch_size),
                {"model_config": asdict(config), "tokenizer": tok.to_dict(), "data": spec},
                score=score)


def _rnnlm_parser(models):
    """``train rnnlm``."""
    p = models.add_parser("rnnlm", help="a recurrent word-level language model", description=(
        "A word-level RNN/LSTM/GRU language model (PyTorch's word_language_model). Default: "
        "the embedded corpus's cleaned sentences, split 90/10. --corpus: a pre-tokenized text "
        "file (one sentence per line) or a folder of train/valid/test files such as "
        f"{DATA_DIR / 'lm' / 'ptb'}."))
    p.add_argument("--corpus", help="file, URL or train/valid/test folder (default: embedded)")
    p.add_argument("--cell", choices=("lstm", "gru", "rnn_tanh", "rnn_relu"), default="lstm",
                   help="recurrent cell (default lstm)")
    p.add_argument("--bptt", type=_INT, default=35,
                   help="tokens per training window (default %(default)s)")
    p.add_argument("--n-hidden", type=_INT, default=128, help="hidden size (default 128)")
    p.add_argument("--tied", action="store_true", help="tie decoder and embedding weights")
    p.add_argument("--min-count", type=_INT, default=1, help="minimum word count (default 1)")
    p.add_argument("--max-vocab", type=_INT, default=10000,
                   help="vocabulary size cap, specials included (default %(default)s)")
    p.add_argument("--score-batches", type=int, default=20,
                   help="batches of consecutive windows scored for metrics.json (0: all)")
    _add_training_knobs(p, "out/rnnlm", 200, 3e-3, 3e-4, 20, 50, 10, 20, 2, 128, 0.2)
    p.set_defaults(handler=_train_rnnlm)


@abort_on_error
def _train_rnnlm(args):
    spec = {"corpus": args.corpus, "min_count": args.min_count, "max_vocab": args.max_vocab}
    ids, tok = _rnnlm_data(spec)
    config = {"vocab_size": tok.vocab_size, "embed_size": args.n_embd,
              "hidden_size": args.n_hidden, "num_layers": args.n_layer, "cell": args.cell,
              "dropout": args.dropout, "tie_weights": args.tied}
    model = RNNLM(**config, seed=args.seed)

    def score(model):
        out = {"vocab_size": tok.vocab_size}
        for split in ("val", "test"):
            if split in ids:
                loss, tokens = lm_window_loss(model, ids[split], args.bptt, args.batch_size,
                                        args.score_batches)
                out.update({f"{split}_loss_windows": loss, f"{split}_perplexity":
                            perplexity(loss), f"{split}_tokens_scored": tokens})
        return out
    return _fit(args, "rnnlm", model, random_windows(ids, args.bptt, args.batch_size),
                {"model_config": config, "tokenizer": tok.to_dict(), "data": spec,
                 "block_size": args.bptt}, score=score)


def _classifier_parser(models):
    """``train classifier``."""
    p = models.add_parser("classifier", help="a sentence classifier", description=(
        "A sentence classifier (LSTM or Transformer encoder); reports dev accuracy. --data: "
        "stdlib (no files: docstrings labelled by package), sst2, rt-polarity (from "
        f"{DATA_DIR / 'sentiment'}), or PATH: a text<TAB>label file (seeded 90/10 split), a "
        "folder with train.tsv and dev.tsv, or a folder with rt-polarity.pos/.neg."))
    p.add_argument("--data", default="stdlib", help="stdlib|sst2|rt-polarity|PATH "
                                                    "(default stdlib)")
    p.add_argument("--model", choices=("lstm", "transformer"), default="lstm",
                   help="classifier (default lstm)")
    p.add_argument("--packages", nargs="+", default=list(STDLIB_PACKAGES),
                   help="--data stdlib: the packages (classes)")
    p.add_argument("--n-hidden", type=_INT, default=64, help="LSTM hidden size (default 64)")
    p.add_argument("--max-len", type=_INT, default=64, help="tokens kept per text (default 64)")
    p.add_argument("--min-count", type=_INT, default=2, help="minimum word count (default 2)")
    p.add_argument("--max-vocab", type=_INT, default=10000, help="vocabulary cap (10000)")
    _add_training_knobs(p, "out/classifier", 150, 3e-3, 3e-4, 10, 50, 5, 32, 1, 64, 0.1)
    p.set_defaults(handler=_train_classifier)


def _classifier_loss(model, x, y):
    # the batch is right-padded with <pad> = 0 and no text encodes to 0, so the lengths are
    # the counts of non-zero ids (x stays one array: the Trainer counts its tokens)
    return F.cross_entropy(model(x, (x != 0).sum(axis=1)), y)


@abort_on_error
def _train_classifier(args):
    spec = {"data": args.data, "seed": args.seed, "packages": list(args.packages)}
    parts, names = _classification_data(spec)
    for split, (_, labels) in parts.items():
        if max(labels) >= len(names):
            raise TinyLMError(f"train classifier: the {split} split has label {max(labels)}, "
                              f"but the train split has only {len(names)} classes")
    tok = WordTokenizer.train(parts["train"][0], min_count=args.min_count,
                              max_size=args.max_vocab, lower=True)
    # the Trainer asks for "train" and "val" batches; dev is this task's validation split
    encoded = {"val" if s == "dev" else s: (_encode_texts(tok, texts, args.max_len),
                                            np.array(labels, dtype=np.int64))
               for s, (texts, labels) in parts.items()}
    if args.model == "lstm":
        config = {"model": "lstm", "vocab_size": tok.vocab_size, "embed_dim": args.n_embd,
                  "hidden_size": args.n_hidden, "num_layers": args.n_layer,
                  "num_outputs": len(names), "dropout": args.dropout, "pooling": "mean"}
    else:
        config = {"model": "transformer", "vocab_size": tok.vocab_size, "d_model": args.n_embd,
                  "nhead": args.n_head, "num_layers": args.n_layer,
                  "dim_feedforward": 4 * args.n_embd, "num_outputs": len(names),
                  "max_len": args.max_len, "dropout": args.dropout}
    model = _build_model("classifier", config, args.seed)

    def score(model):
        s = _classifier_scores(model, tok, *parts["dev"], args.max_len, len(names))
        return {f"dev_{k}": v for k, v in s.items()} | {"vocab_size": tok.vocab_size}
    spec |= {"max_len": args.max_len}
    return _fit(args, "classifier", model, _sequence_batches(encoded, args.batch_size),
                {"model_config": config, "tokenizer": tok.to_dict(), "data": spec,
                 "class_names": names}, loss_fn=_classifier_loss, score=score)


def _translator_parser(models):
    """``train translator``."""
    p = models.add_parser("translator", help="an encoder-decoder Transformer", description=(
        "An encoder-decoder Transformer; reports BLEU of greedy decoding on the test split. "
        "--data dates (no files: written dates -> ISO dates, character level), tatoeba "
        "(English-French) or multi30k (en/de/fr), from "
        f"{DATA_DIR / 'translation'}."))
    p.add_argument("--data", default="dates", help="dates|tatoeba|multi30k (default dates)")
    p.add_argument("--src", help="source language (tatoeba: en or fr; multi30k: en, de, fr)")
    p.add_argument("--tgt", help="target language")
    p.add_argument("--num-pairs", type=_INT, default=5000,
                   help="--data dates: pairs generated (default %(default)s)")
    p.add_argument("--max-len", type=_INT, default=40, help="tokens kept per sentence (40)")
    p.add_argument("--min-count", type=_INT, default=2, help="minimum word count (default 2)")
    p.add_argument("--max-vocab", type=_INT, default=8000, help="vocabulary cap (8000)")
    p.add_argument("--bleu-sentences", type=int, default=200,
                   help="test sentences translated for the BLEU in metrics.json (0: all)")
    _add_training_knobs(p, "out/translator", 300, 2e-3, 2e-4, 30, 100, 5, 32, 2, 64, 0.1)
    p.set_defaults(handler=_train_translator)


def _translator_loss(model, x, y):
    return model(x, y[:, :-1], y[:, 1:])[1]       # teacher forcing: predict y_1.. from y_<t


def _translation_spec(args):
    defaults = {"dates": (None, None), "tatoeba": ("en", "fr"), "multi30k": ("en", "de")}
    if args.data not in defaults:
        raise UsageError(f"train translator: --data must be one of {sorted(defaults)}, got "
                         f"{args.data!r}")
    src, tgt = args.src or defaults[args.data][0], args.tgt or defaults[args.data][1]
    if args.data == "dates" and (args.src or args.tgt):
        raise UsageError("train translator: --src/--tgt do not apply to --data dates "
                         "(written dates -> ISO dates)")
    return {"data": args.data, "seed": args.seed, "src": src, "tgt": tgt,
            "num_pairs": args.num_pairs, "max_len": args.max_len,
            "unit": "char" if args.data == "dates" else "word"}


@abort_on_error
def _train_translator(args):
    spec = _translation_spec(args)
    parts = _translation_data(spec)
    train = parts["train"]
    if spec["unit"] == "char":      # dates: a character vocabulary each side (as DLFS2)
        src_tok = CharTokenizer.train([s for s, _ in train])
        tgt_tok = CharTokenizer.train([t for _, t in train])
    else:
        src_tok = WordTokenizer.train([s for s, _ in train], min_count=args.min_count,
                                      max_size=args.max_vocab, lower=True)
        tgt_tok = WordTokenizer.train([t for _, t in train], min_count=args.min_count,
                                      max_size=args.max_vocab, lower=True)
    encoded = {s: _encode_pairs(src_tok, tgt_tok, pairs, args.max_len)
               for s, pairs in parts.items()}
    config = {"src_vocab_size": src_tok.vocab_size, "tgt_vocab_size": tgt_tok.vocab_size,
              "d_model": args.n_embd, "nhead": args.n_head, "num_encoder_layers": args.n_layer,
              "num_decoder_layers": args.n_layer, "dim_feedforward": 4 * args.n_embd,
              "dropout": args.dropout, "max_len": args.max_len + 1}
    model = Seq2SeqTransformer(**config, seed=args.seed)

    def score(model):
        test = parts["test"][:args.bleu_sentences] if args.bleu_sentences else parts["test"]
        s = _translation_scores(model, src_tok, tgt_tok, test, args.max_len, spec["unit"])
        return {f"test_{k}": v for k, v in s.items()}
    return _fit(args, "translator", model, _sequence_batches(encoded, args.batch_size),
                {"model_config": config, "src_tokenizer": src_tok.to_dict(),
                 "tgt_tokenizer": tgt_tok.to_dict(), "data": spec},
                loss_fn=_translator_loss, score=score)
