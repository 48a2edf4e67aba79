"""Fused recurrent layers: one layer-direction of an RNN, LSTM or GRU over a WHOLE sequence
as ONE ``Function`` (B3: RNN, LSTM and GRU).

Why fused? Built from Tensor ops, a sequence of T steps records a graph of about 10 T nodes,
each a Python object and a temporary array, and slicing ``x[t]`` with ``GetItem`` scatters
its gradient into a zero array of the whole input at every step: O(T^2) work. Here instead

* forward multiplies the input at ALL time steps by ``W_ih`` in one BLAS call
  (``X W_ih^T + b``, shape (T, B, G H)), then loops over time on raw arrays, doing only the
  part that really is sequential (``h_{t-1} W_hh^T`` and the gates), and keeps what
  backward needs (the hidden states and the gate activations);
* backward is backpropagation through time (A11, BPTT) written by hand: one loop from the
  last step to the first that carries dL/dh (and dL/dc) backwards, stores the gradient of
  every step's pre-activations, and then gets all the weight gradients from three BLAS
  calls over the stacked steps:

      dL/dW_ih = sum_t dA_t^T x_t     = dA^T X           (A: pre-activations, (T B, G H))
      dL/dW_hh = sum_t dA_t^T h_{t-1} = dA^T H_prev
      dL/db    = sum_t sum_batch dA_t
      dL/dX    = dA W_ih

Shapes (time-major, as PyTorch's ``batch_first=False``): ``x`` (T, B, I), states (B, H),
``w_ih`` (G H, I), ``w_hh`` (G H, H), biases (G H,), with G = 1 (RNN), 4 (LSTM: gates i, f,
g, o), 3 (GRU: r, z, n), PyTorch's layouts and gate orders, so its weights load unchanged.
With ``reverse=True`` the sequence is read from the last step to the first (the backward
direction of a bidirectional layer); the output stays aligned with the input's time axis.

The inputs are ``(x, h0, [c0,] w_ih, w_hh, [b_ih, b_hh])``; biases are left out when
``bias=False``. These Functions have no differentiable backward (``create_graph=True``
raises ``GradError``); compose the cell from Tensor ops for second derivatives (see
``nn/doc_lstm.py``).
"""
from .backend import get_array_module
from .errors import TinyLMError
from .kernels import kernel
from .tensor import Function

__all__ = ["RNNSequence", "LSTMSequence", "GRUSequence", "sigmoid_array"]


def sigmoid_array(z):
    """s(z) = 1 / (1 + e^-z), computed as (1 + tanh(z / 2)) / 2: the same function, one
    transcendental instead of an exp and a division, and it never overflows."""
    out = get_array_module(z).tanh(0.5 * z)
    out *= 0.5
    out += 0.5
    return out


class _Sequence(Function):
    """What the three recurrences share: unpacking the inputs, reading the sequence in
    processing order, the input projection of all steps at once, and the weight gradients
    from the stacked per-step pre-activation gradients."""

    n_states = 1      # LSTM carries two states, h and c

    def _setup(self, arrays, bias, reverse):
        k = 1 + self.n_states
        if len(arrays) != k + (4 if bias else 2):
            raise TinyLMError(f"{type(self).__name__}: expected x, {self.n_states} state(s), "
                              f"w_ih, w_hh{' and two biases' if bias else ''}; got "
                              f"{len(arrays)} arrays")
        x, states = arrays[0], arrays[1:k]
        self.w_ih, self.w_hh = arrays[k], arrays[k + 1]
        b_ih, b_hh = (arrays[k + 2], arrays[k + 3]) if bias else (None, None)
        self.bias, self.reverse = bias, reverse
        self.xp = xp = get_array_module(x, self.w_hh)
        # processing order: time runs backwards in the reverse direction
        self.xs = xs = x[::-1] if reverse else x
        T, B, I = x.shape
        self.H = self.w_hh.shape[1]
        self.dtype = xp.result_type(x.dtype, self.w_ih.dtype, self.w_hh.dtype,
                                    *(s.dtype for s in states))
        # the input part of every step's pre-activations: one (T B, I) @ (I, G H) product
        xw = (xs.reshape(T * B, I) @ self.w_ih.T).reshape(T, B, -1).astype(self.dtype,
                                                                           copy=False)
        if bias:
            xw += b_ih
        return xw, states, b_hh

    def _in_time_order(self, seq):
        """A (T, ...) array in processing order back in the input's time order."""
        return seq[::-1] if self.reverse else seq

    def _gradients(self, d_xw, d_hw, h_prev, d_states):
        """All input gradients, in input order, from the per-step pre-activation gradients.

        ``d_xw``: dL/d(x_t W_ih^T + b_ih), ``d_hw``: dL/d(h_{t-1} W_hh^T + b_hh), both
        (T, B, G H) in processing order (the same array for RNN and LSTM, where the two
        parts are simply added); ``h_prev``: (T, B, H) the state each step read.
        """
        T, B, G = d_xw.shape
        d_xw2, d_hw2 = d_xw.reshape(T * B, G), d_hw.reshape(T * B, G)
        k = 1 + self.n_states
        need = self.needs_grad
        dx = None
        if need[0]:
            dx = self._in_time_order((d_xw2 @ self.w_ih).reshape(T, B, -1))
        grads = [dx, *(d if n else None for d, n in zip(d_states, need[1:k]))]
        grads.append(d_xw2.T @ self.xs.reshape(T * B, -1) if need[k] else None)
        grads.append(d_hw2.T @ h_prev.reshape(T * B, self.H) if need[k + 1] else None)
        if self.bias:
            grads.append(d_xw2.sum(axis=0) if need[k + 2] else None)
            grads.append(d_hw2.sum(axis=0) if need[k + 3] else None)
        return tuple(grads)


class RNNSequence(_Sequence):
    """A6, the Elman RNN over a sequence: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    The documents write it ``h_t = sigma(W_x x_t + W_h h_{t-1} + b_h)`` with a sigmoid;
    ``nonlinearity`` is ``"tanh"`` (PyTorch's default), ``"relu"`` or ``"sigmoid"``. Two
    biases are PyTorch's layout; only their sum b_h matters.

    BPTT (A11), with a_t the pre-activation and dh_t = dL/dh_t from the output plus what
    flows back from step t+1:

        dh_t     = g_t + W_hh^T da_{t+1}     (carried backwards, starting at 0 after step T)
        da_t     = dh_t * act'(a_t)          tanh: 1 - h_t^2, sigmoid: h_t (1 - h_t),
                                             relu: [h_t > 0]
        dh_0     = W_hh^T da_1               (the gradient of the initial state)

    and the weight gradients as in the module docstring. Output: (T, B, H), every h_t.
    """

    def forward(self, *arrays, nonlinearity="tanh", reverse=False, bias=True):
        xw, (h0,), b_hh = self._setup(arrays, bias, reverse)
        if b_hh is not None:
            xw += b_hh
        xp, T, B, H = self.xp, xw.shape[0], xw.shape[1], self.H
        act = {"tanh": xp.tanh, "sigmoid": sigmoid_array,
               "relu": lambda a: xp.maximum(a, 0)}.get(nonlinearity)
        if act is None:
            raise TinyLMError(f"RNNSequence: nonlinearity must be 'tanh', 'relu' or "
                              f"'sigmoid', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        hs = xp.empty((T + 1, B, H), dtype=self.dtype)   # hs[s] is the state before step s
        hs[0] = h0
        w_hh_t = self.w_hh.T
        for s in range(T):
            hs[s + 1] = act(xw[s] + hs[s] @ w_hh_t)
        self.hs = hs
        return self._in_time_order(hs[1:])

    def backward(self, g):
        g = self._in_time_order(g)
        xp, hs = self.xp, self.hs
        T = g.shape[0]
        da = xp.empty((T,) + g.shape[1:], dtype=self.dtype)
        dh = xp.zeros(g.shape[1:], dtype=self.dtype)
        for s in range(T - 1, -1, -1):
            h = hs[s + 1]
            dh = dh + g[s]
            if self.nonlinearity == "tanh":
                da[s] = dh * (1 - h * h)
            elif self.nonlinearity == "sigmoid":
                da[s] = dh * h * (1 - h)
            else:
                da[s] = dh * (h > 0)
            dh = da[s] @ self.w_hh
        return self._gradients(da, da, hs[:-1], (dh,))


class LSTMSequence(_Sequence):
    """B3, the standard LSTM (Gers et al. 2000; PyTorch's ``nn.LSTM``) over a sequence.

        [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh      (4 H pre-activations)
        i, f, o = s(.)   g = tanh(.)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    (The documents' variants A7 and C11 differ; see ``nn/doc_lstm.py``.)

    BPTT (A11): carrying dh and dc backwards, with g_t = dL/dh_t from the output and
    dc = dL/dc_T at the start (the gradient of the final cell state):

        dh   = g_t + W_hh^T dA_{t+1}
        do   = dh * tanh(c_t)
        dc   = dc_{t+1} * f_{t+1} + dh * o * (1 - tanh(c_t)^2)
        di   = dc * g,   df = dc * c_{t-1},   dg = dc * i
        dA_t = [di i (1-i), df f (1-f), dg (1 - g^2), do o (1-o)]

    The output is (T + 1, B, H): rows 0..T-1 are h_t (in input time order), row T is the
    final cell state c_T (a Function has one output; the module slices it).
    """

    n_states = 2

    def forward(self, *arrays, reverse=False, bias=True):
        xw, (h0, c0), b_hh = self._setup(arrays, bias, reverse)
        if b_hh is not None:
            xw += b_hh
        xp, T, B, H = self.xp, xw.shape[0], xw.shape[1], self.H
        hs = xp.empty((T + 1, B, H), dtype=self.dtype)
        cs = xp.empty((T + 1, B, H), dtype=self.dtype)
        tanh_cs = xp.empty((T, B, H), dtype=self.dtype)     # tanh(c_t), kept for backward
        gates = xp.empty((T, B, 4 * H), dtype=self.dtype)   # activated i, f, g, o
        hs[0], cs[0] = h0, c0
        w_hh_t = self.w_hh.T
        for s in range(T):
            gate = gates[s]
            xp.matmul(hs[s], w_hh_t, out=gate)               # the pre-activations A_t, in place
            gate += xw[s]
            gate[:, :2 * H] = sigmoid_array(gate[:, :2 * H])
            xp.tanh(gate[:, 2 * H:3 * H], out=gate[:, 2 * H:3 * H])
            gate[:, 3 * H:] = sigmoid_array(gate[:, 3 * H:])
            i, f, g, o = gate[:, :H], gate[:, H:2 * H], gate[:, 2 * H:3 * H], gate[:, 3 * H:]
            xp.multiply(f, cs[s], out=cs[s + 1])
            cs[s + 1] += i * g
            xp.tanh(cs[s + 1], out=tanh_cs[s])
            xp.multiply(o, tanh_cs[s], out=hs[s + 1])
        self.hs, self.cs, self.tanh_cs, self.gates = hs, cs, tanh_cs, gates
        out = xp.empty((T + 1, B, H), dtype=self.dtype)
        out[:T] = self._in_time_order(hs[1:])
        out[T] = cs[T]
        return out

    def backward(self, grad):
        xp, H = self.xp, self.H
        T = grad.shape[0] - 1
        g_h = self._in_time_order(grad[:T])
        dc = grad[T].astype(self.dtype, copy=True)     # dL/dc_T from the c_n output
        dh = xp.zeros_like(dc)
        dA = xp.empty((T,) + dc.shape[:1] + (4 * H,), dtype=self.dtype)
        cell_backward = kernel("lstm_cell_backward", self.gates, dc)      # once, not per step
        for s in range(T - 1, -1, -1):
            dh += g_h[s]
            cell_backward(self.gates[s], self.tanh_cs[s], self.cs[s], dh, dc, dA[s])
            xp.matmul(dA[s], self.w_hh, out=dh)              # W_hh^T dA_t, to step t-1
        return self._gradients(dA, dA, self.hs[:-1], (dh, dc))


class GRUSequence(_Sequence):
    """B3, the GRU (Cho et al. 2014) as PyTorch writes it, over a sequence:

        r = s(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z = s(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    The reset gate multiplies (W_hn h + b_hn), so the x part and the h part of the
    pre-activations have different gradients here (unlike RNN and LSTM).

    BPTT (A11), with u = W_hn h_{t-1} + b_hn and dh = g_t + (what step t+1 sends back):

        dn  = dh (1 - z),   dz = dh (h_{t-1} - n)
        dan = dn (1 - n^2)                       (pre-activation of n)
        dar = dan * u * r (1 - r),   daz = dz * z (1 - z)
        d(x part) = [dar, daz, dan],   d(h part) = [dar, daz, dan * r]
        dh_{t-1} = dh * z + W_hh^T d(h part)
    """

    def forward(self, *arrays, reverse=False, bias=True):
        xw, (h0,), b_hh = self._setup(arrays, bias, reverse)
        xp, T, B, H = self.xp, xw.shape[0], xw.shape[1], self.H
        hs = xp.empty((T + 1, B, H), dtype=self.dtype)
        rzn = xp.empty((T, B, 3 * H), dtype=self.dtype)     # activated r, z, n
        u = xp.empty((T, B, H), dtype=self.dtype)           # W_hn h_{t-1} + b_hn
        hs[0] = h0
        w_hh_t = self.w_hh.T
        for s in range(T):
            hw = hs[s] @ w_hh_t
            if b_hh is not None:
                hw += b_hh
            gate = rzn[s]
            gate[:, :2 * H] = sigmoid_array(xw[s, :, :2 * H] + hw[:, :2 * H])
            r, z = gate[:, :H], gate[:, H:2 * H]
            u[s] = hw[:, 2 * H:]
            gate[:, 2 * H:] = n = xp.tanh(xw[s, :, 2 * H:] + r * u[s])
            hs[s + 1] = (1 - z) * n + z * hs[s]
        self.hs, self.rzn, self.u = hs, rzn, u
        return self._in_time_order(hs[1:])

    def backward(self, g):
        g = self._in_time_order(g)
        xp, H, T = self.xp, self.H, g.shape[0]
        d_xw = xp.empty((T,) + g.shape[1:2] + (3 * H,), dtype=self.dtype)
        d_hw = xp.empty_like(d_xw)
        dh = xp.zeros(g.shape[1:], dtype=self.dtype)
        cell_backward = kernel("gru_cell_backward", self.rzn, dh)         # once, not per step
        for s in range(T - 1, -1, -1):
            dh += g[s]
            cell_backward(self.rzn[s], self.u[s], self.hs[s], dh, d_xw[s], d_hw[s])
            dh += d_hw[s] @ self.w_hh                       # dh z + W_hh^T d(h part)
        return self._gradients(d_xw, d_hw, self.hs[:-1], (dh,))
