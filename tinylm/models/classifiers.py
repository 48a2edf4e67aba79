"""Text classifiers (A12, A14, A15, C14): an LSTM classifier and a BERT-style encoder.

Both read a padded batch of token ids (B, T) with ``lengths`` (B,) and return class logits:
(B,) for one output (binary: ``binary_cross_entropy_with_logits``) or (B, C) for C classes
(``cross_entropy``). C14's ERRATUM is why both forms exist: a binary task wants one logit and
BCE, a multi-class task softmax cross-entropy; BCE on a multi-class output read by argmax
(the document's code) mixes the two.

A14 as written: Embedding(10000, 128) -> LSTM(128) over all time steps -> Dense(128, relu) ->
Dense(1, sigmoid). Applied to every step's output the head gives one prediction PER TOKEN
(``pooling="none"`` reproduces that: (B, T) logits); a sentence needs one vector first:
the last real step's state (``"last"``), or the mean or max over the real steps.
"""
import math

import numpy as np

from .. import functional as F
from ..errors import ShapeError, TinyLMError
from ..nn import (LSTM, Dropout, Embedding, LayerNorm, Linear, Module, Parameter,
                  TransformerEncoder, TransformerEncoderLayer, make_rng)
from ..tensor import Tensor
from ._ids import check_token_ids

__all__ = ["LSTMClassifier", "TransformerClassifier", "padding_mask"]

POOLINGS = ("last", "mean", "max", "none")


def padding_mask(lengths, T):
    """(B, T) bool, True at the real tokens (position < length)."""
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _check_batch(ids, lengths, vocab_size, name):
    ids = check_token_ids(ids, vocab_size, f"{name}: ids")
    B, T = ids.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    if lengths.shape != (B,) or lengths.min(initial=1) < 1 or lengths.max(initial=0) > T:
        raise ShapeError(f"{name}: lengths must be (B,) = ({B},) values in 1..{T}, got "
                         f"{lengths.tolist() if lengths.size < 10 else lengths.shape}")
    return ids, lengths


class LSTMClassifier(Module):
    """Embedding -> LSTM (``num_layers``, ``dropout``) -> pooling -> [Dense(dense_size, relu)]
    -> Linear(num_outputs).

    ``bidirectional=True`` adds a second LSTM stack (``lstm_reverse``) that reads each
    sentence reversed within its own length, so padding never reaches a real position in
    either direction (what PyTorch gets from packed sequences); unlike PyTorch's
    bidirectional LSTM the two directions meet only at the top (as in ELMo).

    A14: ``LSTMClassifier(10000, 128, 128, dense_size=128, num_outputs=1)``;
    C14: ``LSTMClassifier(25000, 100, 128, num_layers=2, dropout=0.5, num_outputs=1)``
    (load pretrained 100-d vectors into ``embedding.weight``).
    """

    def __init__(self, vocab_size, embed_dim=128, hidden_size=128, num_layers=1, num_outputs=1,
                 dropout=0.0, bidirectional=False, pooling="last", dense_size=None,
                 padding_idx=0, seed=None):
        super().__init__()
        if pooling not in POOLINGS:
            raise TinyLMError(f"LSTMClassifier: pooling must be one of {POOLINGS}, got "
                              f"{pooling!r}")
        rng = make_rng(seed)
        self.vocab_size, self.pooling, self.num_outputs = vocab_size, pooling, num_outputs
        self.bidirectional = bidirectional
        self.embedding = Embedding(vocab_size, embed_dim, padding_idx=padding_idx, seed=rng)
        self.lstm = LSTM(embed_dim, hidden_size, num_layers, dropout=dropout, batch_first=True,
                         seed=rng)
        if bidirectional:       # the backward stack reads each sentence reversed in place
            self.lstm_reverse = LSTM(embed_dim, hidden_size, num_layers, dropout=dropout,
                                     batch_first=True, seed=rng)
        self.drop = Dropout(dropout, seed=rng)
        width = hidden_size * (2 if bidirectional else 1)
        self.dense = Linear(width, dense_size, seed=rng) if dense_size else None
        self.out = Linear(dense_size or width, num_outputs, seed=rng)

    def forward(self, ids, lengths=None):
        ids, lengths = _check_batch(ids, lengths, self.vocab_size, "LSTMClassifier")
        B, T = ids.shape
        steps, _ = self.lstm(self.embedding(ids))                    # (B, T, width)
        if self.bidirectional:
            rows, flip = np.arange(B)[:, None], _reverse_within_length(lengths, T)
            back, _ = self.lstm_reverse(self.embedding(ids[rows, flip]))
            steps = F.concatenate([steps, back[rows, flip]], axis=-1)   # realigned in time
        if self.pooling == "none":
            features = steps                                         # A14 as written
        elif self.pooling == "last":
            features = self._last_state(steps, lengths)
        else:
            real = padding_mask(lengths, T)[:, :, None]
            if self.pooling == "mean":
                features = (steps * real).sum(axis=1) / lengths[:, None].astype(steps.dtype)
            else:
                features = F.where(real, steps, -1e9).max(axis=1)
        features = self.drop(features)
        if self.dense is not None:
            features = F.relu(self.dense(features))
        logits = self.out(features)
        return logits[..., 0] if self.num_outputs == 1 else logits

    def _last_state(self, steps, lengths):
        """The state after the last REAL token (padding comes after it: the state at
        position T-1 would have read the pads). The backward stack read the sentence
        reversed, so its summary of the whole sentence sits at position 0 once realigned."""
        last = steps[np.arange(steps.shape[0]), lengths - 1]
        if not self.bidirectional:
            return last
        H = steps.shape[2] // 2
        return F.concatenate([last[:, :H], steps[:, 0, H:]], axis=-1)


def _reverse_within_length(lengths, T):
    """(B, T) time indices that reverse each sentence's real tokens and leave its padding in
    place: [2, 1, 0, 3, 4] for length 3 of T = 5. Applying it twice is the identity."""
    t = np.arange(T)[None, :]
    return np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


class TransformerClassifier(Module):
    """A12, a BERT-style classifier: token embedding (x sqrt(d_model)) + learned positions,
    a learned [CLS] vector in front, a pre-LN Transformer encoder that ignores the padding,
    and a linear head on the [CLS] position's output."""

    def __init__(self, vocab_size, d_model=128, nhead=4, num_layers=2, dim_feedforward=256,
                 num_outputs=2, max_len=512, dropout=0.1, padding_idx=0, seed=None):
        super().__init__()
        rng = make_rng(seed)
        self.vocab_size, self.d_model, self.num_outputs = vocab_size, d_model, num_outputs
        self.max_len = max_len
        self.embedding = Embedding(vocab_size, d_model, padding_idx=padding_idx, seed=rng)
        self.embedding.weight.data *= 1 / math.sqrt(d_model)    # unit-variance after scaling
        self.position = Embedding(max_len + 1, d_model, seed=rng)
        self.position.weight.data *= 0.02
        self.cls = Parameter(rng.normal(0.0, 0.02, (1, 1, d_model)).astype(np.float32))
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                        activation="gelu", batch_first=True, norm_first=True,
                                        seed=rng)
        self.encoder = TransformerEncoder(layer, num_layers, norm=LayerNorm(d_model))
        self.drop = Dropout(dropout, seed=rng)
        self.out = Linear(d_model, num_outputs, seed=rng)

    def forward(self, ids, lengths=None):
        ids, lengths = _check_batch(ids, lengths, self.vocab_size, "TransformerClassifier")
        B, T = ids.shape
        if T + 1 > self.max_len + 1:
            raise ShapeError(f"TransformerClassifier: sequences of {T} tokens are longer than "
                             f"max_len={self.max_len}")
        tokens = self.embedding(ids) * math.sqrt(self.d_model)
        cls = self.cls * Tensor(np.ones((B, 1, 1), dtype=self.cls.dtype))
        x = F.concatenate([cls, tokens], axis=1) + self.position(np.arange(T + 1))
        pad = ~padding_mask(lengths + 1, T + 1)               # True = padding (PyTorch)
        h = self.encoder(self.drop(x), src_key_padding_mask=pad)
        logits = self.out(self.drop(h[:, 0]))
        return logits[..., 0] if self.num_outputs == 1 else logits
