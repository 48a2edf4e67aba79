"""What every command shares: the one-line errors, the argument types, and the model and
training knobs of ``train MODEL``."""
import argparse
import math
import os

from ..errors import TinyLMError


class UsageError(TinyLMError):
    """A bad command line (reported like any other error: one line, exit status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument raises instead of printing usage and exiting, so that
    ``main`` reports it as the one line every other error gets."""

    def error(self, message):
        raise UsageError(f"{self.prog.replace('python -m tinylm ', '')}: {message} "
                         f"(see {self.prog} --help)")


def _check_device(device):
    """Make ``--device`` the default device (models built from here on live there), or a
    one-line error saying what is missing: CuPy (``pip install tinylm[gpu]``) or a GPU."""
    from ..backend import DeviceError, set_default_device
    try:
        set_default_device(device)
    except DeviceError as exc:
        raise UsageError(f"--device {device}: {exc}") from None


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
    add_runtime_flags(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar or evaluation lines")


def add_runtime_flags(parser):
    """``--device`` and ``--blas-threads``, which every command that runs a model takes."""
    parser.add_argument("--device", default=os.environ.get("TINYLM_DEVICE", "cpu"),
                        choices=("cpu", "cuda"),
                        help="cpu, or cuda (an NVIDIA GPU through CuPy: pip install "
                             "tinylm[gpu]); default $TINYLM_DEVICE or cpu")
    parser.add_argument("--blas-threads", type=_INT, default=1,
                        help="threads for matrix products (default 1: fastest for small models)")
