"""Data for each model kind: text -> ids, and random batches of the encoded sequences.

Each loader takes the ``spec`` that ``train`` stores in the checkpoint, so ``evaluate``
rebuilds the same splits from the checkpoint alone."""
from pathlib import Path

import numpy as np

from ..datasets import (WhitespaceTokenizer, date_pairs, load_labelled_tsv, load_multi30k,
                        load_rt_polarity, load_sst2, load_tatoeba, load_word_lm, nanogpt_split,
                        stdlib_docstrings, word_tokens)
from ..errors import TinyLMError
from ..text import (BPETokenizer, CharTokenizer, WordTokenizer, default_sentences,
                    default_text, load_text, pad_sequences, train_val_test_split)


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
