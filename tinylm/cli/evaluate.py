"""``evaluate``: score a checkpoint on its data (or on other data) and print JSON."""
import json

import numpy as np

from ..datasets import word_tokens
from ..errors import TinyLMError
from ..io import save_json
from ..metrics import perplexity
from ..text import load_text
from ..train import lm_window_loss
from .checkpoints import _checkpoint_path, load_model
from .common import _INT, add_runtime_flags
from .data import _classification_data, _gpt_data, _rnnlm_data, _translation_data
from .scores import _classifier_scores, _translation_scores


def add_parser(commands):
    """The ``evaluate`` command."""
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
    add_runtime_flags(p)
    p.set_defaults(handler=_evaluate)


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
