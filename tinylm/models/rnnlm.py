"""RNNLM: a recurrent language model (E1, C6), as PyTorch's ``word_language_model`` example.

    embedding (``encoder``) -> dropout -> RNN/LSTM/GRU (``rnn``) -> dropout -> Linear (``decoder``)

predicting token t+1 from tokens 0..t: p(w_1..w_N) = prod_t p(w_t | w_<t) (E1), each factor
a softmax over the vocabulary of ``decoder(h_t)``. The names and layouts are the example's
(``encoder.weight``, ``rnn.weight_ih_l0``, ..., ``decoder.weight``, ``decoder.bias``), so
its state dicts load here, and the same model trained in PyTorch compares one to one.

``tie_weights=True`` shares the decoder's weight with the embedding (Press & Wolf 2017; needs
``embed_size == hidden_size``). Training on long text uses truncated backpropagation through
time: pass the returned ``state`` back in for the next chunk; it is a plain array (no graph),
so gradients stop at the chunk boundary.
"""
import numpy as np

from .. import functional as F
from ..errors import TinyLMError
from ..generate import check_max_new_tokens, sample_next_token
from ..nn import GRU, LSTM, RNN, Dropout, Embedding, Linear, Module, make_rng
from ..tensor import Tensor, no_grad
from ._ids import check_token_ids

__all__ = ["RNNLM"]

_CELLS = {"rnn_tanh": (RNN, {"nonlinearity": "tanh"}), "rnn_relu": (RNN, {"nonlinearity": "relu"}),
          "lstm": (LSTM, {}), "gru": (GRU, {})}


class RNNLM(Module):
    def __init__(self, vocab_size, embed_size, hidden_size, num_layers=1, cell="lstm",
                 dropout=0.0, tie_weights=False, seed=None):
        super().__init__()
        if cell not in _CELLS:
            raise TinyLMError(f"RNNLM: cell must be one of {sorted(_CELLS)}, got {cell!r}")
        if tie_weights and embed_size != hidden_size:
            raise TinyLMError(f"RNNLM: tie_weights needs embed_size == hidden_size, got "
                              f"{embed_size} and {hidden_size}")
        rng = make_rng(seed)
        self.vocab_size, self.cell = vocab_size, cell
        self.drop = Dropout(dropout, seed=rng)
        self.encoder = Embedding(vocab_size, embed_size, seed=rng)
        layer, kw = _CELLS[cell]
        self.rnn = layer(embed_size, hidden_size, num_layers, dropout=dropout, batch_first=True,
                         seed=rng, **kw)
        self.decoder = Linear(hidden_size, vocab_size, seed=rng)
        # the example's init: U(-0.1, 0.1) for the embedding and the decoder, zero bias
        self.encoder.weight.data = rng.uniform(-0.1, 0.1, self.encoder.weight.shape).astype(
            self.encoder.weight.dtype)
        self.decoder.weight.data = rng.uniform(-0.1, 0.1, self.decoder.weight.shape).astype(
            self.decoder.weight.dtype)
        self.decoder.bias.data[...] = 0.0
        if tie_weights:
            self.decoder.weight = self.encoder.weight

    def forward(self, idx, targets=None, state=None):
        """``idx`` (B, T) ids -> ``(logits (B, T, V), loss or None, state)``. ``state`` is
        the recurrent state to start from (None: zeros) and the one to continue with."""
        idx = check_token_ids(idx, self.vocab_size, "RNNLM: idx")
        x = self.drop(self.encoder(idx))
        out, new_state = self.rnn(x, self._state_in(state))
        logits = self.decoder(self.drop(out))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits, np.asarray(getattr(targets, "data", targets)),
                                   ignore_index=-1)
        return logits, loss, self._state_out(new_state)

    def _state_in(self, state):
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(Tensor(s) for s in state)
        return Tensor(state)

    @staticmethod
    def _state_out(state):
        """The state as arrays: no graph, so the next chunk's backward stops here (TBPTT)."""
        if isinstance(state, tuple):
            return tuple(s.data.copy() for s in state)
        return state.data.copy()

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 seed=None):
        """Feed ``idx`` (B, T), then sample ``max_new_tokens`` tokens one at a time, carrying
        the recurrent state (the RNN's own "cache")."""
        check_max_new_tokens(max_new_tokens, "RNNLM.generate")
        rng = np.random.default_rng(seed)
        idx = np.asarray(idx)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                logits, _, state = self(idx)
                for _ in range(max_new_tokens):
                    nxt = sample_next_token(logits.data[:, -1], rng, temperature, top_k, top_p)
                    idx = np.concatenate([idx, nxt[:, None].astype(idx.dtype)], axis=1)
                    logits, _, state = self(idx[:, -1:], state=state)
        finally:
            self.train(was_training)
        return idx
