"""A checkpoint written by ``train`` -> the model and its tokenizer(s), ready to use."""
from pathlib import Path

from .. import checkpoint
from ..datasets import WhitespaceTokenizer
from ..errors import TinyLMError
from ..models import (GPT, RNNLM, GPTConfig, LSTMClassifier, Seq2SeqTransformer,
                      TransformerClassifier)
from ..text import BPETokenizer, CharTokenizer, WordTokenizer
from ..train import CHECKPOINT_NAME


_TOKENIZERS = {cls.FORMAT: cls for cls in (CharTokenizer, WordTokenizer, BPETokenizer,
                                           WhitespaceTokenizer)}


def _tokenizer_from_dict(d):
    kind = d.get("format") if isinstance(d, dict) else None
    if kind not in _TOKENIZERS:
        raise TinyLMError(f"checkpoint: unknown tokenizer format {kind!r}")
    return _TOKENIZERS[kind].from_dict(d)


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
