"""``generate``: sample from a language model, translate, or classify the prompt."""
import numpy as np

from ..errors import TinyLMError
from ..text import pad_sequences
from .checkpoints import load_model
from .common import _FLOAT, _INT, add_runtime_flags
from .data import _encode_texts
from .scores import _translate


def add_parser(commands):
    """The ``generate`` command."""
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
    add_runtime_flags(p)
    p.set_defaults(handler=_generate)


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
