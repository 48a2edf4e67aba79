"""Recurrent layers RNN, LSTM and GRU (A6, B3), with PyTorch's signatures, parameter names,
shapes, gate orders and initialisation, so a PyTorch state dict loads and gives the same
numbers.

Each layer-direction runs as ONE fused Function over the whole sequence
(``tinylm/recurrence.py``: the input projection of all steps in one BLAS call, a loop on raw
arrays, backpropagation through time written by hand). The module only stacks layers,
joins the two directions and applies dropout between layers.

Shapes (``batch_first=False``): input (T, B, input_size) -> output (T, B, D * hidden_size),
h_n (num_layers * D, B, hidden_size) with D = 2 if bidirectional else 1; with
``batch_first=True`` input and output are (B, T, ...) (the states are not). An unbatched
input (T, input_size) gives output (T, D * hidden) and h_n (num_layers * D, hidden).
"""
import math

from .. import functional as F
from ..backend import DEFAULT_DTYPE, get_array_module
from ..errors import DTypeError, ShapeError, TinyLMError
from ..recurrence import GRUSequence, LSTMSequence, RNNSequence
from ..tensor import Tensor, as_tensor
from .doc_lstm import DocLSTM, DocLSTMCell   # re-exported: nn's recurrent layers in one place
from .layers import _check_positive
from .module import Module, make_rng, uniform

__all__ = ["RNN", "LSTM", "GRU", "DocLSTM", "DocLSTMCell"]


class _RNNBase(Module):
    """Parameters, checks and the layer/direction loop shared by RNN, LSTM and GRU."""

    n_gates = 1
    n_states = 1     # LSTM: 2 (h and c)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, seed=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        _check_positive(type(self).__name__, input_size=input_size, hidden_size=hidden_size,
                        num_layers=num_layers)
        if not (isinstance(dropout, (int, float)) and 0 <= dropout <= 1):
            raise TinyLMError(f"{type(self).__name__}: dropout must be a number in [0, 1], "
                              f"got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        rng = make_rng(seed)
        self.rng = rng        # the dropout masks between layers are drawn from it too
        bound = 1 / math.sqrt(hidden_size)
        G, H = self.n_gates * hidden_size, hidden_size
        # PyTorch's order: per layer, per direction: weight_ih, weight_hh, bias_ih, bias_hh
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes(layer):
                setattr(self, f"weight_ih{suffix}", uniform(rng, (G, layer_input), bound, dtype))
                setattr(self, f"weight_hh{suffix}", uniform(rng, (G, H), bound, dtype))
                if bias:
                    setattr(self, f"bias_ih{suffix}", uniform(rng, (G,), bound, dtype))
                    setattr(self, f"bias_hh{suffix}", uniform(rng, (G,), bound, dtype))

    def _suffixes(self, layer):
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    def _weights(self, suffix):
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        return [getattr(self, name + suffix) for name in names]

    def _run(self, x, states, suffix, reverse):
        """One layer-direction: the fused Function; returns (output (T, B, H), final states)."""
        raise NotImplementedError   # abstract: each subclass defines it

    # --- checks at the public boundary ----------------------------------------------
    def _check_input(self, input):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            input = as_tensor(input)
        if input.dtype.kind != "f":
            raise DTypeError(f"{name}: input must be floating point, got dtype {input.dtype} "
                             f"(token ids go through an Embedding first)")
        if input.ndim not in (2, 3):
            layout = "(batch, seq, features)" if self.batch_first else "(seq, batch, features)"
            raise ShapeError(f"{name}: input must be 3-D {layout} or 2-D unbatched "
                             f"(seq, features), got shape {input.shape}")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input_size {self.input_size} (the last axis), "
                             f"got {input.shape[-1]} (input shape {input.shape})")
        if input.shape[-2 if input.ndim == 2 else (1 if self.batch_first else 0)] == 0:
            raise ShapeError(f"{name}: the sequence is empty (input shape {input.shape})")
        return input

    def _check_state(self, h, batch, unbatched, what):
        expected = (self.num_layers * self.num_directions,) + \
            (() if unbatched else (batch,)) + (self.hidden_size,)
        h = as_tensor(h)
        if h.shape != expected:
            raise ShapeError(f"{type(self).__name__}: {what} must have shape {expected} "
                             f"(num_layers * num_directions, {'' if unbatched else 'batch, '}"
                             f"hidden_size), got {h.shape}")
        return h if not unbatched else h.reshape(expected[0], 1, self.hidden_size)

    def _initial_states(self, hx, x, batch, unbatched):
        """A list of n_states tensors of shape (L * D, B, H): given, or zeros."""
        if hx is None:
            xp = get_array_module(x.data)
            zeros = xp.zeros((self.num_layers * self.num_directions, batch, self.hidden_size),
                             dtype=self.weight_hh_l0.dtype)
            return [Tensor(zeros)] * self.n_states
        if self.n_states == 1:
            return [self._check_state(hx, batch, unbatched, "hx")]
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ShapeError(f"{type(self).__name__}: hx must be a tuple (h_0, c_0), got "
                             f"{type(hx).__name__}")
        return [self._check_state(h, batch, unbatched, name) for h, name in zip(hx, ("h_0", "c_0"))]

    # --- the forward pass ---------------------------------------------------------
    def forward(self, input, hx=None):
        x = self._check_input(input)
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(x.shape[0], 1, x.shape[1])
        elif self.batch_first:
            x = x.permute(1, 0, 2)
        batch = x.shape[1]
        states = self._initial_states(hx, x, batch, unbatched)
        finals = [[] for _ in range(self.n_states)]
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                k = layer * self.num_directions + direction
                out, last = self._run(x, [s[k] for s in states], suffix, reverse=direction == 1)
                outputs.append(out)
                for store, state in zip(finals, last):
                    store.append(state)
            x = outputs[0] if len(outputs) == 1 else F.concatenate(outputs, axis=-1)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True, generator=self.rng)
        finals = [F.stack(f, axis=0) for f in finals]
        if unbatched:
            x = x.reshape(x.shape[0], x.shape[2])
            finals = [f.reshape(f.shape[0], f.shape[2]) for f in finals]
        elif self.batch_first:
            x = x.permute(1, 0, 2)
        return x, (finals[0] if self.n_states == 1 else tuple(finals))

    def extra_repr(self):
        extra = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            extra += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                extra += f", {name}={getattr(self, name)}"
        return extra


class RNN(_RNNBase):
    """A6, the Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    The documents write ``h_t = sigma(W_x x_t + W_h h_{t-1} + b_h)``: ``nonlinearity=
    "sigmoid"`` is that formula as written (PyTorch offers only ``"tanh"``, its default, and
    ``"relu"``, both supported here). All weights start U(-1/sqrt(hidden), 1/sqrt(hidden)).

    ``forward(input, hx=None) -> (output, h_n)``; output holds the top layer's h_t at every
    step (both directions concatenated), h_n the last state of every layer and direction.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, seed=None,
                 dtype=DEFAULT_DTYPE):
        if nonlinearity not in ("tanh", "relu", "sigmoid"):
            raise TinyLMError(f"RNN: nonlinearity must be 'tanh', 'relu' or 'sigmoid', got "
                              f"{nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, seed, dtype)
        self.nonlinearity = nonlinearity

    def _run(self, x, states, suffix, reverse):
        out = RNNSequence.apply(x, states[0], *self._weights(suffix), reverse=reverse,
                                bias=self.bias, nonlinearity=self.nonlinearity)
        return out, [out[0] if reverse else out[-1]]

    def extra_repr(self):
        extra = super().extra_repr()
        return extra + (f", nonlinearity={self.nonlinearity!r}"
                        if self.nonlinearity != "tanh" else "")


class LSTM(_RNNBase):
    """B3, the standard LSTM (Gers et al. 2000), exactly PyTorch's ``nn.LSTM``:

        i = s(W_ii x + b_ii + W_hi h + b_hi)     f = s(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)  o = s(W_io x + b_io + W_ho h + b_ho)
        c_t = f * c_{t-1} + i * g                h_t = o * tanh(c_t)

    ``weight_ih_l{k}`` stacks [W_ii; W_if; W_ig; W_io] (4 H, input), likewise the others.
    ``forward(input, hx=None) -> (output, (h_n, c_n))``; ``hx`` is ``(h_0, c_0)``. The
    documents' own LSTMs (A7, C11) are in ``nn.doc_lstm``. ``proj_size`` is not supported.
    """

    n_gates = 4
    n_states = 2

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, seed=None, dtype=DEFAULT_DTYPE):
        if proj_size:
            raise TinyLMError(f"LSTM: proj_size is not supported by tinylm, got {proj_size}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, seed, dtype)

    def _run(self, x, states, suffix, reverse):
        out = LSTMSequence.apply(x, states[0], states[1], *self._weights(suffix),
                                 reverse=reverse, bias=self.bias)
        T = x.shape[0]
        return out[:T], [out[0] if reverse else out[T - 1], out[T]]


class GRU(_RNNBase):
    """B3, the gated recurrent unit as PyTorch computes it (gate order r, z, n):

        r = s(W_ir x + b_ir + W_hr h + b_hr)     z = s(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    ``forward(input, hx=None) -> (output, h_n)``.
    """

    n_gates = 3

    def _run(self, x, states, suffix, reverse):
        out = GRUSequence.apply(x, states[0], *self._weights(suffix), reverse=reverse,
                                bias=self.bias)
        return out, [out[0] if reverse else out[-1]]

