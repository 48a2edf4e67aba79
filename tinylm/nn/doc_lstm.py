"""The documents' LSTMs, AS WRITTEN (A7, C11), beside the standard LSTM for comparison.

These cells are composed from ordinary tinylm Tensor ops, one line per formula, so autograd
differentiates them (and ``create_graph=True`` works): they are for reading and for
training against each other in chapter 09, not for speed (``nn.LSTM`` is the fused, fast
standard LSTM; the ``"standard"`` variant here computes the same function).

Notation: s is the logistic sigmoid, * the elementwise product, [a, b] concatenation along
the feature axis. Each weight is stored as PyTorch's Linear does, (out, in), and applied as
``x @ W.T``. All weights start U(-1/sqrt(hidden), 1/sqrt(hidden)).

``variant="standard"`` (Gers et al. 2000; PyTorch's nn.LSTM):
    i_t = s(W_xi x_t + W_hi h_{t-1} + b_i)      f_t = s(W_xf x_t + W_hf h_{t-1} + b_f)
    c^_t = tanh(W_xc x_t + W_hc h_{t-1} + b_c)  o_t = s(W_xo x_t + W_ho h_{t-1} + b_o)
    c_t = f_t * c_{t-1} + i_t * c^_t            h_t = o_t * tanh(c_t)

``variant="A7"`` (document 000, section 4.1.3), quoted:
    i_t = s(W_xi x_t + W_hi h_{t-1} + b_i)
    f_t = s(W_xf x_t + W_hf h_{t-1} + b_f)
    c^_t = tanh(W_xc x_t + W_hc h_{t-1} + b_c)
    c_t = f_t * c^_t + (1 - f_t) * c_{t-1}
    o_t = s(W_xo x_t + W_ho c_t + b_o)
    h_t = o_t * softmax(W_h c_t + b_h)
  Differences from the standard (ERRATUM in FORMULAS.md):
  1. i_t is computed but never used: f_t alone mixes new and old (a coupled input/forget
     gate, as in CIFG or the GRU), and with the roles swapped: f_t weighs the CANDIDATE,
     1 - f_t keeps the old cell. So W_xi, W_hi, b_i always get zero gradient (backward
     never reaches them: their ``.grad`` stays None). The cell keeps the last i_t in
     ``last_i`` so a reader can see it was computed.
  2. o_t reads the new cell c_t (through W_ho, hidden x hidden) instead of h_{t-1}.
  3. h_t uses softmax(W_h c_t + b_h) (an extra hidden x hidden matrix W_h and bias b_h)
     instead of tanh(c_t): the entries of the softmax sum to 1, so each h_t is at most o_t
     times a probability vector, and the hidden state's scale shrinks like 1/hidden.

``variant="C11"`` (document 002, sections 4.4.1-4.4.4), quoted:
    f_t = s(W_f [h_{t-1}, x_t] + b_f)
    i_t = s(W_i [h_{t-1}, x_t] + b_i)
    c_t = f_t * c_{t-1} + i_t * s(W_c [h_{t-1}, x_t] + b_c)
    o_t = s(W_o [h_{t-1}, c_t] + b_o)
  Differences from the standard (ERRATUM): the weights act on the concatenation (that is
  only a layout: W [h, x] = W_h h + W_x x); the candidate uses s instead of tanh (it lies in
  (0, 1), so every update ADDS to the cell and never subtracts: from c_0 >= 0 the cell state
  stays positive, and only the forget gate can shrink it); o_t reads [h_{t-1}, c_t] instead of
  [h_{t-1}, x_t]; and h_t is MISSING, so as written the recurrence cannot run past step 1.
  ``h_rule`` picks how to close it:
    ``"as_written"`` (default): h_t := o_t. The text ends at o_t and never defines h_t,
        yet h_{t-1} appears in every gate; the reading that adds no formula of our own is
        that the output gate's value is what goes on as h_t (no read-out of the cell).
    ``"standard"``: h_t = o_t * tanh(c_t), the standard read-out (the rest of C11 as written).
"""
import math

from .. import functional as F
from ..backend import DEFAULT_DTYPE, get_array_module
from ..errors import ShapeError, TinyLMError
from ..tensor import Tensor, as_tensor
from .layers import _check_positive
from .module import Module, make_rng, uniform

__all__ = ["DocLSTMCell", "DocLSTM", "VARIANTS"]

VARIANTS = ("standard", "A7", "C11")


class DocLSTMCell(Module):
    """One step of an LSTM as the documents write it; see the module docstring for every
    formula and how each variant differs from the standard.

    ``DocLSTMCell(input_size, hidden_size, variant="standard"|"A7"|"C11", h_rule=None,
    bias=True, seed=None, dtype=float32)``; ``h_rule`` ("as_written" or "standard") only
    applies to C11, whose text has no h_t. ``cell(x, state=None) -> (h_t, c_t)`` with x
    (batch, input_size) and state ``(h_{t-1}, c_{t-1})``, each (batch, hidden_size) (zeros
    when None).

    Parameters (names follow the formulas):
      standard, A7: W_x{i,f,c,o} (hidden, input); W_h{i,f,c,o} (hidden, hidden); b_{i,f,c,o};
                    A7 adds W_h (hidden, hidden) and b_h for the softmax read-out (its W_ho
                    reads c_t instead of h_{t-1}).
      C11:          W_f, W_i, W_c (hidden, hidden + input) on [h_{t-1}, x_t];
                    W_o (hidden, 2 hidden) on [h_{t-1}, c_t]; b_f, b_i, b_c, b_o.
    """

    def __init__(self, input_size, hidden_size, variant="standard", h_rule=None, bias=True,
                 seed=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        _check_positive(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        if variant not in VARIANTS:
            raise TinyLMError(f"DocLSTMCell: variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "C11":
            h_rule = "as_written" if h_rule is None else h_rule
            if h_rule not in ("as_written", "standard"):
                raise TinyLMError(f"DocLSTMCell: h_rule must be 'as_written' or 'standard', "
                                  f"got {h_rule!r}")
        elif h_rule is not None:
            raise TinyLMError(f"DocLSTMCell: h_rule applies only to variant 'C11' (whose text "
                              f"has no h_t), got h_rule={h_rule!r} with variant={variant!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.variant, self.h_rule, self.bias = variant, h_rule, bool(bias)
        rng = make_rng(seed)
        H, I = hidden_size, input_size
        bound = 1 / math.sqrt(H)

        def weight(name, shape):
            setattr(self, name, uniform(rng, shape, bound, dtype))

        def bias_(name):
            setattr(self, name, uniform(rng, (H,), bound, dtype) if bias else None)

        if variant == "C11":
            for gate in "fic":
                weight(f"W_{gate}", (H, H + I))
                bias_(f"b_{gate}")
            weight("W_o", (H, 2 * H))
            bias_("b_o")
        else:
            for gate in "ifco":
                weight(f"W_x{gate}", (H, I))
                weight(f"W_h{gate}", (H, H))
                bias_(f"b_{gate}")
            if variant == "A7":
                weight("W_h", (H, H))
                bias_("b_h")

    def _check(self, x, state):
        x = as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ShapeError(f"DocLSTMCell: input must be (batch, {self.input_size}), got "
                             f"shape {x.shape}")
        expected = (x.shape[0], self.hidden_size)
        if state is None:
            zeros = get_array_module(x.data).zeros(expected, dtype=self.W_o.dtype
                                                   if self.variant == "C11" else self.W_xo.dtype)
            return x, Tensor(zeros), Tensor(zeros)
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ShapeError(f"DocLSTMCell: state must be a tuple (h, c), got "
                             f"{type(state).__name__}")
        h, c = (as_tensor(s) for s in state)
        for name, s in (("h", h), ("c", c)):
            if s.shape != expected:
                raise ShapeError(f"DocLSTMCell: state {name} must have shape {expected}, "
                                 f"got {s.shape}")
        return x, h, c

    def forward(self, x, state=None):
        x, h, c = self._check(x, state)
        return getattr(self, f"_{self.variant.lower()}")(x, h, c)

    def _standard(self, x, h, c):
        lin = lambda W, v, b: F.linear(v, W, b)      # v W^T + b
        i = F.sigmoid(lin(self.W_xi, x, self.b_i) + lin(self.W_hi, h, None))
        f = F.sigmoid(lin(self.W_xf, x, self.b_f) + lin(self.W_hf, h, None))
        c_hat = F.tanh(lin(self.W_xc, x, self.b_c) + lin(self.W_hc, h, None))
        o = F.sigmoid(lin(self.W_xo, x, self.b_o) + lin(self.W_ho, h, None))
        c_t = f * c + i * c_hat
        h_t = o * F.tanh(c_t)
        return h_t, c_t

    def _a7(self, x, h, c):
        lin = lambda W, v, b: F.linear(v, W, b)
        # i_t is computed, as the text does, and then never used (ERRATUM 1)
        self.last_i = F.sigmoid(lin(self.W_xi, x, self.b_i) + lin(self.W_hi, h, None))
        f = F.sigmoid(lin(self.W_xf, x, self.b_f) + lin(self.W_hf, h, None))
        c_hat = F.tanh(lin(self.W_xc, x, self.b_c) + lin(self.W_hc, h, None))
        c_t = f * c_hat + (1 - f) * c
        o = F.sigmoid(lin(self.W_xo, x, self.b_o) + lin(self.W_ho, c_t, None))   # reads c_t
        h_t = o * F.softmax(lin(self.W_h, c_t, self.b_h), axis=-1)
        return h_t, c_t

    def _c11(self, x, h, c):
        hx = F.concatenate([h, x], axis=-1)                  # [h_{t-1}, x_t]
        f = F.sigmoid(F.linear(hx, self.W_f, self.b_f))
        i = F.sigmoid(F.linear(hx, self.W_i, self.b_i))
        c_t = f * c + i * F.sigmoid(F.linear(hx, self.W_c, self.b_c))   # sigma candidate
        o = F.sigmoid(F.linear(F.concatenate([h, c_t], axis=-1), self.W_o, self.b_o))
        h_t = o if self.h_rule == "as_written" else o * F.tanh(c_t)
        return h_t, c_t

    def extra_repr(self):
        rule = f", h_rule={self.h_rule!r}" if self.h_rule else ""
        return f"{self.input_size}, {self.hidden_size}, variant={self.variant!r}{rule}"


class DocLSTM(Module):
    """A ``DocLSTMCell`` run over a sequence, with the interface of a one-layer ``nn.LSTM``
    (so chapter 09 can swap one for the other):

    ``forward(input, hx=None) -> (output, (h_n, c_n))``: input (T, B, input_size)
    ((B, T, input_size) with ``batch_first``), output every h_t in the same layout, h_n and
    c_n (1, B, hidden_size); ``hx`` is ``(h_0, c_0)`` of that shape, zeros when None.

    The loop is the readable one (a graph of Tensor ops per step, ``input[t]`` per step), so
    it is slower than ``nn.LSTM`` and meant for small experiments.
    """

    def __init__(self, input_size, hidden_size, variant="standard", h_rule=None, bias=True,
                 batch_first=False, seed=None, dtype=DEFAULT_DTYPE):
        super().__init__()
        self.cell = DocLSTMCell(input_size, hidden_size, variant, h_rule, bias, seed, dtype)
        self.batch_first = bool(batch_first)
        self.input_size, self.hidden_size = input_size, hidden_size

    def forward(self, input, hx=None):
        x = as_tensor(input)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            layout = "(batch, seq" if self.batch_first else "(seq, batch"
            raise ShapeError(f"DocLSTM: input must be 3-D {layout}, {self.input_size}), got "
                             f"shape {x.shape}")
        if self.batch_first:
            x = x.permute(1, 0, 2)
        state = None
        if hx is not None:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise ShapeError(f"DocLSTM: hx must be a tuple (h_0, c_0), got "
                                 f"{type(hx).__name__}")
            expected = (1, x.shape[1], self.hidden_size)
            for name, s in zip(("h_0", "c_0"), hx):
                if as_tensor(s).shape != expected:
                    raise ShapeError(f"DocLSTM: {name} must have shape {expected}, got "
                                     f"{as_tensor(s).shape}")
            state = tuple(as_tensor(s)[0] for s in hx)
        outputs = []
        for t in range(x.shape[0]):
            state = self.cell(x[t], state)
            outputs.append(state[0])
        out = F.stack(outputs, axis=0)
        if self.batch_first:
            out = out.permute(1, 0, 2)
        h, c = state
        return out, (h.reshape(1, *h.shape), c.reshape(1, *c.shape))

    def extra_repr(self):
        return f"batch_first={self.batch_first}" if self.batch_first else ""
