"""Positional encoding (B4, E2 step 5, E5): attention alone does not know word order.

Self-attention treats its input as a set: permuting the tokens permutes the outputs the
same way. E5 adds a position vector to each embedding so order matters:

    P = E + p                                                            (E5)

``kind="sinusoidal"`` (Vaswani et al. 2017), a fixed table:

    p[pos, 2i]   = sin(pos / 10000^(2i / d_model))
    p[pos, 2i+1] = cos(pos / 10000^(2i / d_model))

``kind="learned"`` (BERT, GPT-2): p is a trained (max_len, d_model) table, N(0, 0.02^2).
PyTorch has no PositionalEncoding module; this follows its tutorial's layout (a buffer
``pe``) with tinylm's (max_len, d_model) shape.
"""

import numpy as np

from .. import functional as F
from ..backend import DEFAULT_DTYPE
from ..errors import ShapeError, TinyLMError
from ..tensor import Tensor, as_tensor
from .module import Module, Parameter, make_rng


def sinusoidal_table(max_len, d_model, dtype=DEFAULT_DTYPE):
    """The (max_len, d_model) sine/cosine table above (an odd d_model drops the last cos)."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    two_i = np.arange(0, d_model, 2, dtype=np.float64)
    angle = pos / 10000.0 ** (two_i / d_model)          # (max_len, ceil(d/2))
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, :d_model // 2])
    return table.astype(dtype)


class PositionalEncoding(Module):
    """x + p[:T], then dropout (E5: P = E + p).

    Input (T, N, d_model), or (N, T, d_model) with ``batch_first=True``, or (T, d_model).
    A sequence longer than ``max_len`` is an error (there is no position vector for it).
    Dropout draws from its own generator (``seed=``).
    """

    def __init__(self, d_model, max_len=5000, dropout=0.0, kind="sinusoidal", batch_first=False,
                 seed=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        for name, n in (("d_model", d_model), ("max_len", max_len)):
            if not isinstance(n, (int, np.integer)) or n <= 0:
                raise TinyLMError(f"PositionalEncoding: {name} must be a positive integer, "
                                  f"got {n!r}")
        if kind not in ("sinusoidal", "learned"):
            raise TinyLMError(f"PositionalEncoding: kind must be 'sinusoidal' or 'learned', "
                              f"got {kind!r}")
        if not 0 <= dropout <= 1:
            raise TinyLMError(f"PositionalEncoding: dropout must be in [0, 1], got {dropout}")
        self.d_model, self.max_len, self.kind = d_model, max_len, kind
        self.p, self.batch_first = dropout, batch_first
        rng = make_rng(seed)
        if kind == "sinusoidal":
            self.register_buffer("pe", sinusoidal_table(max_len, d_model, dtype))
        else:
            self.pe = Parameter((0.02 * rng.standard_normal((max_len, d_model))).astype(dtype))
        self.rng = make_rng(int(rng.integers(2 ** 63)))

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}, kind={self.kind!r}, " \
               f"dropout={self.p}"

    def forward(self, x):
        x = as_tensor(x)
        if x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            layout = "(N, T, d_model)" if self.batch_first else "(T, N, d_model)"
            raise ShapeError(f"PositionalEncoding: expected input {layout} or (T, d_model) with "
                             f"d_model={self.d_model}, got shape {x.shape}")
        time_axis = 1 if (self.batch_first and x.ndim == 3) else 0
        T = x.shape[time_axis]
        if T > self.max_len:
            raise ShapeError(f"PositionalEncoding: sequence length {T} is longer than "
                             f"max_len={self.max_len}; build it with a larger max_len")
        pe = self.pe[:T] if isinstance(self.pe, Tensor) else Tensor(self.pe[:T])
        if x.ndim == 3 and time_axis == 0:
            pe = pe.reshape(T, 1, self.d_model)          # broadcast over the batch
        return F.dropout(x + pe, self.p, self.training, self.rng)
