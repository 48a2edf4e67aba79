"""``python -m tinylm train|generate|evaluate``: train the four models, sample, score.

    python -m tinylm train gpt                     char-level GPT on the embedded corpus (~1 min)
    python -m tinylm train gpt --corpus ../shared/data/tinyshakespeare.txt --out out/shakespeare
    python -m tinylm train rnnlm --corpus ../shared/data/lm/ptb --cell lstm --bptt 35
    python -m tinylm train classifier --data stdlib|sst2|rt-polarity|PATH --model lstm
    python -m tinylm train translator --data dates|tatoeba|multi30k --src en --tgt de
    python -m tinylm generate --checkpoint out/gpt --prompt "The " --max-new-tokens 200
    python -m tinylm evaluate --checkpoint out/gpt

``train`` runs ``tinylm.train.Trainer`` (nanoGPT's loop: warmup + cosine learning rate,
gradient clipping, periodic evaluation, checkpoints, exact ``--resume``) and writes into
``--out``: ``ckpt.safetensors`` (weights, optimiser, and in its metadata the model kind, its
config, the tokenizer(s) and where the data came from, so ``generate``/``evaluate`` rebuild
everything from the checkpoint alone), ``config.json`` and ``tokenizer.json`` beside it,
``metrics.json`` (``best_val_loss``, ``final_train_loss``, ``iters``, ``train_seconds``,
``tokens_per_second`` and the task's own score: validation perplexity, dev accuracy, test
BLEU), ``log.json``/``log.csv``/``loss.png``.

Errors in arguments or files end the program with one line ``tinylm: error: ...`` and exit
status 2, never a traceback.
"""
import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import checkpoint
from .. import functional as F
from ..datasets import (DATA_DIR, WhitespaceTokenizer, date_pairs, load_labelled_tsv,
                        load_multi30k, load_rt_polarity, load_sst2, load_tatoeba, load_word_lm,
                        nanogpt_split, stdlib_docstrings, word_tokens)
from ..datasets.synthetic import STDLIB_PACKAGES
from ..errors import TinyLMError
from ..io import save_json
from ..metrics import accuracy, corpus_bleu, perplexity, precision_recall_f1
from ..models import (GPT, RNNLM, GPTConfig, LSTMClassifier, Seq2SeqTransformer,
                      TransformerClassifier)
from ..optim import AdamW
from ..tensor import no_grad
from ..text import (BPETokenizer, CharTokenizer, WordTokenizer, default_sentences,
                    default_text, load_text, pad_sequences, random_windows,
                    train_val_test_split)
from ..train import CHECKPOINT_NAME, Trainer, TrainConfig, lm_window_loss

__all__ = ["main", "build_parser", "load_model"]

CLI_VERSION = 1
_TOKENIZERS = {cls.FORMAT: cls for cls in (CharTokenizer, WordTokenizer, BPETokenizer,
                                           WhitespaceTokenizer)}


class UsageError(TinyLMError):
    """A bad command line (reported like any other error: one line, exit status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument raises instead of printing usage and exiting, so that
    ``main`` reports it as the one line every other error gets."""

    def error(self, message):
        raise UsageError(f"{self.prog.replace('python -m tinylm ', '')}: {message} "
                         f"(see {self.prog} --help)")


# --- data: text -> ids ----------------------------------------------------------------------
def _tokenizer_from_dict(d):
    kind = d.get("format") if isinstance(d, dict) else None
    if kind not in _TOKENIZERS:
        raise TinyLMError(f"checkpoint: unknown tokenizer format {kind!r}")
    return _TOKENIZERS[kind].from_dict(d)


def _lm_text(corpus):
    return default_text() if corpus is None else load_text(corpus)


def _gpt_data(spec, tokenizer=None):
    """GPT data, nanoGPT style: the text split 90/10 by characters, then tokenized.
    Returns ({"train": ids, "val": ids}, tokenizer)."""
    train_text, val_text = nanogpt_split(_lm_text(spec["corpus"]))
    if tokenizer is None:
        kind = spec["tokenizer"]
        if kind == "char":     # nanoGPT's shakespeare_char: the characters of the whole text
            tokenizer = CharTokenizer.train(train_text + val_text)
        elif kind == "word":
            tokenizer = WordTokenizer.train(train_text, min_count=spec["min_count"],
                                            max_size=spec["max_vocab"])
        else:
            tokenizer = BPETokenizer.train(train_text, spec["vocab_size"])
    ids = {name: np.array(tokenizer.encode(text), dtype=np.int64)
           for name, text in (("train", train_text), ("val", val_text))}
    return ids, tokenizer


def _rnnlm_data(spec, tokenizer=None):
    """Word-level data: the embedded corpus's cleaned sentences (or a pre-tokenized file /
    train-valid-test folder), each sentence ending in <eos>."""
    if spec["corpus"] is None:
        tokens = word_tokens([" ".join(s) for s in default_sentences()])
        parts = dict(zip(("train", "val"), nanogpt_split(tokens)))
    else:
        parts = {k: v for k, v in load_word_lm(spec["corpus"]).items() if v is not None}
    if tokenizer is None:
        tokenizer = WhitespaceTokenizer.from_tokens(parts["train"], spec["min_count"],
                                                    spec["max_vocab"])
    ids = {k: np.array(tokenizer.encode_tokens(v), dtype=np.int64) for k, v in parts.items()}
    return ids, tokenizer


def _classification_data(spec):
    """{"train": (texts, labels), "dev": (texts, labels)} and the class names."""
    name, seed = spec["data"], spec["seed"]
    if name == "stdlib":
        packages = spec["packages"]
        return ({s: stdlib_docstrings(packages, split=part, seed=seed)
                 for s, part in (("train", "train"), ("dev", "val"))}, list(packages))
    sentiment = ["negative", "positive"]
    if name == "sst2":
        return {s: load_sst2(None, s) for s in ("train", "dev")}, sentiment
    if name == "rt-polarity":
        return {s: load_rt_polarity(None, s, seed=seed) for s in ("train", "dev")}, sentiment
    path = Path(name)
    if path.is_dir() and (path / "rt-polarity.pos").is_file():
        return {s: load_rt_polarity(path, s, seed=seed) for s in ("train", "dev")}, sentiment
    if path.is_dir():
        parts = {s: load_labelled_tsv(path / f"{s}.tsv") for s in ("train", "dev")}
    else:
        texts, labels = load_labelled_tsv(name)
        train, dev, _ = train_val_test_split(list(range(len(texts))), (0.9, 0.1, 0.0),
                                             seed=seed)
        parts = {s: ([texts[i] for i in rows], [labels[i] for i in rows])
                 for s, rows in (("train", train), ("dev", dev))}
    n_classes = max(parts["train"][1]) + 1        # the classes the model will know
    if n_classes < 2:
        raise TinyLMError(f"train classifier: {name} has a single class (label 0 only); "
                          f"classification needs at least two")
    return parts, [str(c) for c in range(n_classes)]


def _translation_data(spec):
    """{"train"|"val"|"test": [(src, tgt), ...]}."""
    name, seed = spec["data"], spec["seed"]
    if name == "dates":
        pairs = date_pairs(spec["num_pairs"], seed=seed)
        return dict(zip(("train", "val", "test"),
                        train_val_test_split(pairs, (0.8, 0.1, 0.1), seed=seed)))
    if name == "tatoeba":
        if {spec["src"], spec["tgt"]} != {"en", "fr"}:
            raise TinyLMError(f"train translator: tatoeba is English-French; --src/--tgt must "
                              f"be en and fr, got {spec['src']} and {spec['tgt']}")
        return {s: load_tatoeba(None, s, seed=seed, reverse=spec["src"] == "fr")
                for s in ("train", "val", "test")}
    if name == "multi30k":
        return {s: load_multi30k(None, s, spec["src"], spec["tgt"])
                for s in ("train", "val", "test")}
    raise TinyLMError(f"train translator: --data must be dates, tatoeba or multi30k, got "
                      f"{name!r}")


def _encode_texts(tokenizer, texts, max_len):
    """Ids of each text, cut to ``max_len``; an empty encoding becomes one <unk> (a sentence
    needs at least one position)."""
    unk = tokenizer.vocab.stoi["<unk>"]
    return [tokenizer.encode(t)[:max_len] or [unk] for t in texts]


def _encode_pairs(src_tok, tgt_tok, pairs, max_len):
    """Source ids (<= max_len) and target ids <bos> y <eos> (<= max_len + 1)."""
    bos, eos = tgt_tok.vocab.stoi["<bos>"], tgt_tok.vocab.stoi["<eos>"]
    src = _encode_texts(src_tok, [s for s, _ in pairs], max_len)
    tgt = [[bos] + ids[:max_len - 1] + [eos] for ids in
           (tgt_tok.encode(t) for _, t in pairs)]
    return src, tgt


# --- models ---------------------------------------------------------------------------------
def _build_model(kind, config, seed):
    if kind == "gpt":
        return GPT(GPTConfig(**config), seed=seed)
    if kind == "rnnlm":
        return RNNLM(**config, seed=seed)
    if kind == "classifier":
        config = dict(config)
        cls = LSTMClassifier if config.pop("model") == "lstm" else TransformerClassifier
        return cls(**config, seed=seed)
    if kind == "translator":
        return Seq2SeqTransformer(**config, seed=seed)
    raise TinyLMError(f"checkpoint: unknown model kind {kind!r}")


def _checkpoint_path(path):
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise TinyLMError(f"--checkpoint: {path} does not exist (expected a checkpoint file "
                          f"or the --out folder of 'python -m tinylm train')")
    return path


def load_model(path):
    """``(model, metadata)`` rebuilt from a checkpoint written by ``train`` (a file or its
    folder): the model in eval mode, and the metadata with its tokenizer(s) rebuilt."""
    tensors, meta = checkpoint.load(_checkpoint_path(path))
    info = meta.get("model_metadata") if isinstance(meta, dict) else None
    if not isinstance(info, dict) or "kind" not in info:
        raise TinyLMError(f"--checkpoint: {path} was not written by 'python -m tinylm train' "
                          f"(no model kind in its metadata)")
    model = _build_model(info["kind"], info["model_config"], seed=0)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    model.eval()
    info = dict(info)
    for key in ("tokenizer", "src_tokenizer", "tgt_tokenizer"):
        if key in info:
            info[key] = _tokenizer_from_dict(info[key])
    return model, info


# --- losses and batches -----------------------------------------------------------------------
def _classifier_loss(model, x, y):
    # the batch is right-padded with <pad> = 0 and no text encodes to 0, so the lengths are
    # the counts of non-zero ids (x stays one array: the Trainer counts its tokens)
    return F.cross_entropy(model(x, (x != 0).sum(axis=1)), y)


def _translator_loss(model, x, y):
    return model(x, y[:, :-1], y[:, 1:])[1]       # teacher forcing: predict y_1.. from y_<t


def _sequence_batches(parts, batch_size):
    """Random batches ``(ids (B, T), y)`` from {split: (sequences, labels or sequences)}."""
    def get_batch(split, rng):
        xs, ys = parts[split]
        rows = rng.integers(len(xs), size=batch_size)
        x, _ = pad_sequences([xs[i] for i in rows])
        if isinstance(ys, np.ndarray):
            return x, ys[rows]
        return x, pad_sequences([ys[i] for i in rows])[0]
    return get_batch


# --- evaluation -------------------------------------------------------------------------------
@no_grad()
def _predict_classes(model, sequences, batch_size=256):
    out = []
    for start in range(0, len(sequences), batch_size):
        ids, lengths = pad_sequences(sequences[start:start + batch_size])
        out.append(model(ids, lengths).data.argmax(-1))
    return np.concatenate(out)


def _classifier_scores(model, tokenizer, texts, labels, max_len, num_classes):
    pred = _predict_classes(model, _encode_texts(tokenizer, texts, max_len))
    p, r, f1 = precision_recall_f1(labels, pred, average="macro", num_classes=num_classes)
    return {"accuracy": accuracy(labels, pred), "macro_precision": p, "macro_recall": r,
            "macro_f1": f1, "examples": len(labels)}


def _tokens_for_bleu(tokenizer, text_or_ids, unit):
    """The units BLEU counts: characters for a character tokenizer, else words."""
    text = text_or_ids if isinstance(text_or_ids, str) else tokenizer.decode(text_or_ids)
    return list(text) if unit == "char" else tokenizer.tokenize(text)


def _translate(model, src_tok, tgt_tok, sources, max_len, beam=0, batch_size=64):
    """Translations (strings) of ``sources``: greedy, or beam search with ``beam`` > 1."""
    bos, eos = tgt_tok.vocab.stoi["<bos>"], tgt_tok.vocab.stoi["<eos>"]
    src = _encode_texts(src_tok, sources, max_len)
    out = []
    for start in range(0, len(src), batch_size):
        ids, _ = pad_sequences(src[start:start + batch_size])
        if beam > 1:
            rows = model.beam_search(ids, bos, eos, beam_size=beam, max_new_tokens=max_len)
        else:
            rows = [[t for t in row[1:] if t != 0] for row in
                    model.greedy(ids, bos, eos, max_new_tokens=max_len).tolist()]
        for row in rows:
            row = row[:row.index(eos)] if eos in row else row
            out.append(tgt_tok.decode(row))
    return out


def _translation_scores(model, src_tok, tgt_tok, pairs, max_len, unit, beam=0):
    hyps = _translate(model, src_tok, tgt_tok, [s for s, _ in pairs], max_len, beam)
    refs = [t for _, t in pairs]
    bleu = corpus_bleu([_tokens_for_bleu(tgt_tok, h, unit) for h in hyps],
                       [_tokens_for_bleu(tgt_tok, r, unit) for r in refs])
    exact = float(np.mean([h.strip() == r.strip() for h, r in zip(hyps, refs)]))
    examples = [{"source": s, "reference": r, "hypothesis": h}
                for (s, r), h in list(zip(pairs, hyps))[:3]]
    return {"bleu": 100 * bleu, "exact_match": exact, "sentences": len(pairs),
            "search": f"beam {beam}" if beam > 1 else "greedy", "examples": examples}


# --- train ------------------------------------------------------------------------------------
def _check_device(device):
    if device != "cpu":
        raise UsageError(f"--device {device}: not in this version; tinylm trains with NumPy "
                         f"on the CPU (use --device cpu)")


def _trainer(args, model, optimizer, get_batch, metadata, loss_fn=None):
    decay = args.lr_decay_iters or args.max_iters
    if args.warmup_iters is None:      # the default warmup, shortened for short runs
        warmup = min(args.default_warmup, decay)
    else:
        warmup = args.warmup_iters
    config = TrainConfig(max_iters=args.max_iters, lr=args.lr, min_lr=args.min_lr,
                         warmup_iters=warmup, lr_decay_iters=decay,
                         grad_clip=args.grad_clip, eval_interval=args.eval_interval,
                         eval_iters=args.eval_iters, out_dir=args.out, seed=args.seed,
                         progress=not args.quiet)
    return Trainer(model, optimizer, get_batch, config, loss_fn=loss_fn, metadata=metadata)


def _adamw(model, args):
    """nanoGPT's optimiser groups: weight decay on matrices only."""
    params = list(model.parameters())
    return AdamW([{"params": [p for p in params if p.ndim >= 2],
                   "weight_decay": args.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                 lr=args.lr, betas=(args.beta1, args.beta2))


def _fit(args, kind, model, get_batch, metadata, loss_fn=None, score=None):
    """Train (or resume), write metrics.json, config.json and tokenizer.json; print a summary."""
    out = Path(args.out)
    # through JSON once, so it compares equal to what a checkpoint gives back (lists, not
    # tuples) when resuming
    metadata = json.loads(json.dumps({"kind": kind, "cli_version": CLI_VERSION, **metadata}))
    if args.resume:
        _, saved = checkpoint.load(_checkpoint_path(out))
        old = saved.get("model_metadata", {})
        for key in ("kind", "model_config", "data", "tokenizer", "src_tokenizer",
                    "tgt_tokenizer"):
            if old.get(key) != metadata.get(key):
                raise TinyLMError(f"--resume: the checkpoint in {out} was trained with another "
                                  f"{key.replace('_', ' ')}; resume with the same arguments")
    trainer = _trainer(args, model, _adamw(model, args), get_batch, metadata, loss_fn)
    trainer.fit(resume=args.resume)
    metrics = {"model": kind, "parameters": int(model.num_parameters()), **trainer.metrics()}
    model.eval()
    if score is not None:
        metrics.update(score(model))
    save_json(out / "metrics.json", metrics)
    save_json(out / "config.json", {"kind": kind, "model_config": metadata["model_config"],
                                    "data": metadata["data"], "train": vars(args) | {
                                        "handler": None}})
    for key in ("tokenizer", "src_tokenizer", "tgt_tokenizer"):
        if key in metadata:
            save_json(out / f"{key}.json", metadata[key])
    shown = {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}
    print(json.dumps(shown, indent=1))
    print(f"wrote {out / CHECKPOINT_NAME} and {out / 'metrics.json'}")
    return 0


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


# --- generate and evaluate ------------------------------------------------------------------
def _generate(args):
    model, info = load_model(args.checkpoint)
    kind = info["kind"]
    if kind == "translator":
        spec = info["data"]
        for text in _translate(model, info["src_tokenizer"], info["tgt_tokenizer"],
                               [args.prompt], spec["max_len"], beam=args.beam):
            print(text)
        return 0
    tok = info["tokenizer"]
    if kind == "classifier":
        ids = _encode_texts(tok, [args.prompt], info["data"]["max_len"])
        padded, lengths = pad_sequences(ids)
        logits = model(padded, lengths).data[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        for c in np.argsort(-probs, kind="stable"):
            print(f"{info['class_names'][c]}\t{probs[c]:.4f}")
        return 0
    prompt = tok.encode(args.prompt)
    if not prompt:
        raise TinyLMError(f"generate: the prompt {args.prompt!r} encodes to no tokens with this "
                          f"checkpoint's tokenizer; give --prompt some text")
    context = info.get("block_size") or info["model_config"].get("block_size")
    idx = np.array([prompt[-context:]] * args.num_samples, dtype=np.int64)
    out = model.generate(idx, args.max_new_tokens, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    for i, row in enumerate(out):
        if i:
            print("---------------")
        print(tok.decode(row.tolist()))
    return 0


def _evaluate(args):
    model, info = load_model(args.checkpoint)
    kind, spec = info["kind"], dict(info["data"])
    result = {"model": kind, "checkpoint": str(_checkpoint_path(args.checkpoint))}
    if kind in ("gpt", "rnnlm"):
        tok = info["tokenizer"]
        T = info.get("block_size") or info["model_config"]["block_size"]
        if args.corpus is not None:      # a whole other text, scored with this tokenizer
            if kind == "gpt":
                ids = np.array(tok.encode(load_text(args.corpus)), dtype=np.int64)
            else:
                ids = np.array(tok.encode_tokens(word_tokens(load_text(args.corpus).split(
                    "\n"))), dtype=np.int64)
            split = args.corpus
        else:
            split = args.split or "val"
            data = (_gpt_data if kind == "gpt" else _rnnlm_data)(spec, tok)[0]
            if split not in data:
                raise TinyLMError(f"evaluate: this corpus has no {split!r} split (it has "
                                  f"{sorted(data)})")
            ids = data[split]
        loss, tokens = lm_window_loss(model, ids, T, args.batch_size, args.max_batches)
        result |= {"split": split, "loss": loss, "perplexity": perplexity(loss),
                   "tokens_scored": tokens}
    elif kind == "classifier":
        if args.data is not None:
            spec["data"] = args.data
        parts, names = _classification_data(spec)
        split = args.split or "dev"
        if split not in parts:
            raise TinyLMError(f"evaluate: split must be one of {sorted(parts)}, got {split!r}")
        if names != info["class_names"]:
            raise TinyLMError(f"evaluate: the data has classes {names}, the checkpoint "
                              f"{info['class_names']}")
        result |= {"data": spec["data"], "split": split} | _classifier_scores(
            model, info["tokenizer"], *parts[split], spec["max_len"], len(names))
    else:
        split = args.split or "test"
        pairs = _translation_data(spec).get(split)
        if pairs is None:
            raise TinyLMError(f"evaluate: split must be train, val or test, got {split!r}")
        if args.max_sentences:
            pairs = pairs[:args.max_sentences]
        result |= {"data": spec["data"], "split": split} | _translation_scores(
            model, info["src_tokenizer"], info["tgt_tokenizer"], pairs, spec["max_len"],
            spec["unit"], beam=args.beam)
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        save_json(args.out, result)
    return 0


# --- the parser -------------------------------------------------------------------------------
def _positive(kind):
    def parse(value):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got "
                                             f"{value!r}") from None
        if not number > 0 or (kind is float and not math.isfinite(number)):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got "
                                             f"{value!r}")
        return number
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _fraction(value):
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value!r}")
    return number


_INT, _FLOAT = _positive(int), _positive(float)


def _add_training_knobs(p, out, max_iters, lr, min_lr, warmup, eval_interval, eval_iters,
                        batch_size, n_layer, n_embd, dropout, n_head=4):
    g = p.add_argument_group("model and training (nanoGPT's knobs)")
    g.add_argument("--n-layer", type=_INT, default=n_layer, help="layers (default %(default)s)")
    g.add_argument("--n-head", type=_INT, default=n_head,
                   help="attention heads (default %(default)s)")
    g.add_argument("--n-embd", type=_INT, default=n_embd,
                   help="embedding width (default %(default)s)")
    g.add_argument("--dropout", type=_fraction, default=dropout,
                   help="dropout probability (default %(default)s)")
    g.add_argument("--batch-size", type=_INT, default=batch_size,
                   help="sequences per batch (default %(default)s)")
    g.add_argument("--max-iters", type=_INT, default=max_iters,
                   help="training iterations (default %(default)s)")
    g.add_argument("--lr", type=_FLOAT, default=lr, help="peak learning rate (default %(default)s)")
    g.add_argument("--min-lr", type=float, default=min_lr,
                   help="learning rate at the end of the cosine decay (default %(default)s)")
    g.add_argument("--warmup-iters", type=int, default=None,
                   help=f"linear warmup iterations (default {warmup}, at most the decay "
                        f"iterations)")
    p.set_defaults(default_warmup=warmup)
    g.add_argument("--lr-decay-iters", type=_INT, default=None,
                   help="iterations of the cosine decay (default: --max-iters)")
    g.add_argument("--weight-decay", type=float, default=0.1,
                   help="AdamW weight decay on matrices (default %(default)s)")
    g.add_argument("--beta1", type=_fraction, default=0.9, help="AdamW beta1 (default 0.9)")
    g.add_argument("--beta2", type=_fraction, default=0.99, help="AdamW beta2 (default 0.99)")
    g.add_argument("--grad-clip", type=float, default=1.0,
                   help="clip the global gradient norm to this (0: off; default 1.0)")
    g.add_argument("--eval-interval", type=_INT, default=eval_interval,
                   help="evaluate (and checkpoint) every N iterations (default %(default)s)")
    g.add_argument("--eval-iters", type=_INT, default=eval_iters,
                   help="batches per evaluation (default %(default)s)")
    g.add_argument("--seed", type=int, default=1337, help="seed of everything (default 1337)")
    g.add_argument("--out", default=out, help="output folder (default %(default)s)")
    g.add_argument("--resume", action="store_true",
                   help="continue from OUT/ckpt.safetensors (same arguments, larger --max-iters)")
    g.add_argument("--device", default="cpu", help="cpu (the only device in this version)")
    g.add_argument("--blas-threads", type=_INT, default=1,
                   help="threads for matrix products (default 1: fastest for small models)")
    g.add_argument("--quiet", action="store_true", help="no progress bar or evaluation lines")


def build_parser():
    parser = Parser(prog="python -m tinylm", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train a model", description=(
        "Train a model; see 'python -m tinylm train MODEL --help'."))
    models = train.add_subparsers(dest="model_kind", required=True, metavar="MODEL")

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

    p = commands.add_parser("generate", help="sample text (or translate, classify) from a "
                                             "checkpoint", description=(
        "Rebuild the model from a checkpoint written by 'train' and sample from it (a "
        "translator translates the prompt, a classifier prints class probabilities)."))
    p.add_argument("--checkpoint", required=True, help="a ckpt.safetensors or its folder")
    p.add_argument("--prompt", default="\n", help="text to start from (default a newline)")
    p.add_argument("--max-new-tokens", type=_INT, default=200, help="tokens to sample (200)")
    p.add_argument("--num-samples", type=_INT, default=1, help="independent samples (1)")
    p.add_argument("--temperature", type=float, default=0.8, help="0: greedy (default 0.8)")
    p.add_argument("--top-k", type=_INT, default=200, help="keep the k likeliest (200)")
    p.add_argument("--top-p", type=_FLOAT, default=None, help="nucleus sampling mass")
    p.add_argument("--beam", type=int, default=0, help="translator: beam size (0: greedy)")
    p.add_argument("--seed", type=int, default=1337, help="sampling seed (default 1337)")
    p.add_argument("--device", default="cpu", help="cpu (the only device in this version)")
    p.add_argument("--blas-threads", type=_INT, default=1,
                   help="threads for matrix products (default 1)")
    p.set_defaults(handler=_generate)

    p = commands.add_parser("evaluate", help="score a checkpoint on its data", description=(
        "Language models: loss and perplexity on the validation split (or --corpus FILE); "
        "classifiers: accuracy, macro precision/recall/F1 on dev; translators: BLEU and exact "
        "match on test. Prints JSON."))
    p.add_argument("--checkpoint", required=True, help="a ckpt.safetensors or its folder")
    p.add_argument("--split", help="split to score (default val / dev / test)")
    p.add_argument("--corpus", help="language models: score this text file instead")
    p.add_argument("--data", help="classifier: score on this data instead")
    p.add_argument("--batch-size", type=_INT, default=32, help="batch size (32)")
    p.add_argument("--max-batches", type=int, default=0,
                   help="language models: at most this many batches (0: all)")
    p.add_argument("--max-sentences", type=int, default=0,
                   help="translator: at most this many sentences (0: all)")
    p.add_argument("--beam", type=int, default=0, help="translator: beam size (0: greedy)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--device", default="cpu", help="cpu (the only device in this version)")
    p.add_argument("--blas-threads", type=_INT, default=1,
                   help="threads for matrix products (default 1)")
    p.set_defaults(handler=_evaluate)
    return parser


def _blas_threads(n):
    """A context limiting BLAS to ``n`` threads (``threadpoolctl``).

    tinylm's matrices are small: splitting one product over threads gains little, and on a
    busy machine waking the sleeping threads can cost far more than the product (measured
    here: 7.4 s instead of 0.15 s per GPT step with 2 OpenBLAS threads on 2 shared cores)."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


def main(argv=None):
    """Run one command; returns the exit status (0, or 2 after a one-line error)."""
    try:
        args = build_parser().parse_args(argv)
        _check_device(args.device)
        with _blas_threads(args.blas_threads):
            return args.handler(args)
    except (TinyLMError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"tinylm: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinylm: interrupted (the last checkpoint, if any, is intact)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
