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
import sys

from ..errors import TinyLMError
from ..parallel.threads import blas_threads
from . import evaluate, generate, train
from .checkpoints import load_model
from .common import Parser, _check_device

__all__ = ["main", "build_parser", "load_model"]


def build_parser():
    parser = Parser(prog="python -m tinylm", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (train, generate, evaluate):
        command.add_parser(commands)
    return parser


def main(argv=None):
    """Run one command; returns the exit status (0, or 2 after a one-line error)."""
    try:
        args = build_parser().parse_args(argv)
        _check_device(args.device)
        with blas_threads(args.blas_threads):
            return args.handler(args)
    except (TinyLMError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"tinylm: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:   # train saves a checkpoint first and says where
        print(f"tinylm: interrupted: {exc}" if str(exc) else
              "tinylm: interrupted (the last checkpoint, if any, is intact)", file=sys.stderr)
        return 130
