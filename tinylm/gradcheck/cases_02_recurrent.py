"""Gradient-check cases of the recurrent layers: the fused RNN, LSTM and GRU (hand-written
BPTT, A11) and the documents' LSTM cells (A7, C11, composed from Tensor ops).

Each case checks the gradient of ALL outputs (the output sequence and the final states,
joined into one vector) with respect to the input, the initial states (when given) and every
parameter. Shapes are tiny (T <= 4, batch 2, sizes 3) so the whole file runs in a second or
two. The fused layers have no differentiable backward, hence ``second_order=False``.
"""
import numpy as np

from .. import functional as F
from ..nn.doc_lstm import DocLSTM
from ..nn.recurrent import GRU, LSTM, RNN
from . import GradCase
from .builders import leaf

T, B, I, H = 3, 2, 3, 3


def recurrent_case(make, batch_first=False, initial_state=False, unbatched=False, steps=T):
    """``make()`` builds the layer; the leaves are its input, its initial state(s) (with
    ``initial_state``) and all its parameters."""
    def build(rng):
        module = make().to(np.float64)
        n_states = 2 if isinstance(module, (LSTM, DocLSTM)) else 1
        n = getattr(module, "num_layers", 1) * getattr(module, "num_directions", 1)
        if unbatched:
            x, state_shape = leaf(rng, steps, I), (n, H)
        else:
            x = leaf(rng, B, steps, I) if batch_first else leaf(rng, steps, B, I)
            state_shape = (n, B, H)
        leaves, hx = [x], None
        if initial_state:
            states = [leaf(rng, *state_shape) for _ in range(n_states)]
            leaves += states
            hx = tuple(states) if n_states == 2 else states[0]
        leaves += list(module.parameters())

        def fn():
            out, final = module(x, hx)
            final = final if isinstance(final, tuple) else (final,)
            return F.concatenate([out.reshape(-1)] + [s.reshape(-1) for s in final])
        return fn, leaves
    return build


def _cases():
    fused = [
        ("nn.RNN[tanh]", lambda: RNN(I, H, seed=0), {}),
        ("nn.RNN[sigmoid (A6 as written), h0, batch_first]",
         lambda: RNN(I, H, nonlinearity="sigmoid", batch_first=True, seed=1),
         dict(batch_first=True, initial_state=True)),
        ("nn.RNN[tanh, 2 layers, bidirectional, h0]",
         lambda: RNN(I, H, num_layers=2, bidirectional=True, seed=2), dict(initial_state=True)),
        ("nn.RNN[sigmoid, no bias, unbatched]",
         lambda: RNN(I, H, nonlinearity="sigmoid", bias=False, seed=3),
         dict(unbatched=True, steps=4)),
        ("nn.LSTM", lambda: LSTM(I, H, seed=4), {}),
        ("nn.LSTM[h0 c0, batch_first]", lambda: LSTM(I, H, batch_first=True, seed=5),
         dict(batch_first=True, initial_state=True, steps=4)),
        ("nn.LSTM[2 layers, bidirectional, h0 c0]",
         lambda: LSTM(I, H, num_layers=2, bidirectional=True, seed=6),
         dict(initial_state=True)),
        ("nn.LSTM[no bias, unbatched, h0 c0]", lambda: LSTM(I, H, bias=False, seed=7),
         dict(unbatched=True, initial_state=True)),
        ("nn.GRU", lambda: GRU(I, H, seed=8), {}),
        ("nn.GRU[h0, batch_first]", lambda: GRU(I, H, batch_first=True, seed=9),
         dict(batch_first=True, initial_state=True, steps=4)),
        ("nn.GRU[2 layers, bidirectional, h0]",
         lambda: GRU(I, H, num_layers=2, bidirectional=True, seed=10), dict(initial_state=True)),
        ("nn.GRU[no bias, 2 layers]", lambda: GRU(I, H, num_layers=2, bias=False, seed=11), {}),
    ]
    doc = [
        ("DocLSTM[standard, h0 c0]", lambda: DocLSTM(I, H, "standard", seed=12),
         dict(initial_state=True)),
        ("DocLSTM[A7, h0 c0]", lambda: DocLSTM(I, H, "A7", seed=13), dict(initial_state=True)),
        ("DocLSTM[C11 as written, h0 c0]", lambda: DocLSTM(I, H, "C11", seed=14),
         dict(initial_state=True)),
        ("DocLSTM[C11 h_rule=standard, batch_first]",
         lambda: DocLSTM(I, H, "C11", h_rule="standard", batch_first=True, seed=15),
         dict(batch_first=True, initial_state=True)),
    ]
    cases = [GradCase(name, recurrent_case(make, **kw), second_order=False)
             for name, make, kw in fused]
    # the documents' cells are plain Tensor ops: the two as-written ones also get the
    # second-derivative check (the other two use the same ops; left out to keep this fast)
    cases += [GradCase(name, recurrent_case(make, **kw), second_order="A7" in name or
                       "as written" in name) for name, make, kw in doc]
    return cases


CASES = _cases()
