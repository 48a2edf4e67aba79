"""Seq2SeqTransformer: the encoder-decoder translator of D7 (and D2), with greedy and beam search.

    source ids -> Embedding x sqrt(d_model) + sinusoidal positions -> dropout -> encoder
    target ids (shifted right: <bos> y_1 .. y_{n-1}) -> the same -> decoder (causal
    self-attention, cross-attention on the encoder output) -> Linear to the target vocabulary

trained with teacher forcing: the loss is the cross-entropy of predicting y_1 .. y_n, padding
ignored. At inference the decoder runs one token at a time on its own output: ``greedy``
takes the most likely token; ``beam_search`` keeps the ``beam_size`` best partial
translations by total log-probability, divided by length^alpha so longer sentences are not
penalised for having more factors (Wu et al. 2016, alpha = 0.6 by default).
"""
import math

import numpy as np

from .. import functional as F
from ..errors import ShapeError, TinyLMError
from ..nn import Dropout, Embedding, Linear, Module, PositionalEncoding, Transformer, make_rng
from ..tensor import no_grad
from ._ids import check_token_ids

__all__ = ["Seq2SeqTransformer"]


class Seq2SeqTransformer(Module):
    def __init__(self, src_vocab_size, tgt_vocab_size, d_model=256, nhead=8,
                 num_encoder_layers=3, num_decoder_layers=3, dim_feedforward=1024, dropout=0.1,
                 max_len=256, pad_id=0, norm_first=True, seed=None):
        super().__init__()
        rng = make_rng(seed)
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.d_model, self.pad_id, self.max_len = d_model, pad_id, max_len
        self.src_embedding = Embedding(src_vocab_size, d_model, padding_idx=pad_id, seed=rng)
        self.tgt_embedding = Embedding(tgt_vocab_size, d_model, padding_idx=pad_id, seed=rng)
        for emb in (self.src_embedding, self.tgt_embedding):     # unit variance after x sqrt(d)
            emb.weight.data *= 1 / math.sqrt(d_model)
        self.position = PositionalEncoding(d_model, max_len, batch_first=True)
        self.drop = Dropout(dropout, seed=rng)
        self.transformer = Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                                       dim_feedforward, dropout, activation="gelu",
                                       batch_first=True, norm_first=norm_first, seed=rng)
        self.generator = Linear(d_model, tgt_vocab_size, seed=rng)

    # --- the pieces ------------------------------------------------------------------
    def _ids(self, ids, vocab_size, name):
        ids = check_token_ids(ids, vocab_size, f"Seq2SeqTransformer: {name}")
        if ids.shape[1] > self.max_len:
            raise ShapeError(f"Seq2SeqTransformer: {name} has {ids.shape[1]} tokens, more "
                             f"than max_len={self.max_len}")
        return ids

    def _embed(self, embedding, ids):
        return self.drop(self.position(embedding(ids) * math.sqrt(self.d_model)))

    def encode(self, src):
        """The encoder output (memory) and the source padding mask (True = padding)."""
        src = self._ids(src, self.src_vocab_size, "src")
        pad = src == self.pad_id
        memory = self.transformer.encoder(self._embed(self.src_embedding, src),
                                          src_key_padding_mask=pad)
        return memory, pad

    def decode(self, tgt_in, memory, src_pad):
        """Logits (B, T, V) for each next target token, given the shifted-right target."""
        tgt_in = self._ids(tgt_in, self.tgt_vocab_size, "tgt")
        h = self.transformer.decoder(self._embed(self.tgt_embedding, tgt_in), memory,
                                     tgt_key_padding_mask=tgt_in == self.pad_id,
                                     memory_key_padding_mask=src_pad, tgt_is_causal=True)
        return self.generator(h)

    def forward(self, src, tgt_in, tgt_out=None):
        """Teacher forcing: ``(logits, loss)``; the loss (when ``tgt_out`` is given) ignores
        padding positions."""
        memory, src_pad = self.encode(src)
        logits = self.decode(tgt_in, memory, src_pad)
        if tgt_out is None:
            return logits, None
        tgt_out = np.asarray(tgt_out)
        if tgt_out.shape != logits.shape[:2]:
            raise ShapeError(f"Seq2SeqTransformer: tgt_out {tgt_out.shape} must match tgt_in "
                             f"{logits.shape[:2]}")
        return logits, F.cross_entropy(logits, np.where(tgt_out == self.pad_id, -1, tgt_out),
                                       ignore_index=-1)

    # --- inference --------------------------------------------------------------------
    def greedy(self, src, bos_id, eos_id, max_new_tokens=50):
        """(B, <= 1 + max_new_tokens) ids starting with ``bos_id``; rows that produced
        ``eos_id`` are padded with ``pad_id`` after it."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                memory, src_pad = self.encode(src)
                B = memory.shape[0]
                out = np.full((B, 1), bos_id, dtype=np.int64)
                done = np.zeros(B, dtype=bool)
                for _ in range(min(max_new_tokens, self.max_len - 1)):
                    logits = self.decode(out, memory, src_pad).data[:, -1]
                    nxt = np.where(done, self.pad_id, logits.argmax(-1))
                    out = np.concatenate([out, nxt[:, None]], axis=1)
                    done |= nxt == eos_id
                    if done.all():
                        break
        finally:
            self.train(was_training)
        return out

    def beam_search(self, src, bos_id, eos_id, beam_size=4, max_new_tokens=50, alpha=0.6):
        """The best translation of each source sentence by beam search: a list of id lists
        (without ``bos_id``, ending before ``eos_id``)."""
        if not isinstance(beam_size, (int, np.integer)) or beam_size < 1:
            raise TinyLMError(f"beam_search: beam_size must be a positive integer, got "
                              f"{beam_size!r}")
        src = self._ids(src, self.src_vocab_size, "src")
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                return [self._beam_one(src[i:i + 1], bos_id, eos_id, beam_size,
                                       min(max_new_tokens, self.max_len - 1), alpha)
                        for i in range(len(src))]
        finally:
            self.train(was_training)

    def _beam_one(self, src, bos_id, eos_id, k, max_new, alpha):
        memory, src_pad = self.encode(src)
        beams = [([bos_id], 0.0)]                  # (tokens, total log-probability)
        finished = []

        def score(tokens, logp):                   # length-normalised (tokens after <bos>)
            return logp / (len(tokens) - 1) ** alpha

        for _ in range(max_new):
            seqs = np.array([t for t, _ in beams])
            n = len(beams)
            logits = self.decode(seqs, F.concatenate([memory] * n, axis=0) if n > 1 else memory,
                                 np.repeat(src_pad, n, axis=0)).data[:, -1]
            logp = logits - logits.max(-1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
            total = np.array([lp for _, lp in beams])[:, None] + logp
            best = np.argsort(-total, axis=None, kind="stable")[:2 * k]
            candidates = []
            for flat in best:
                b, tok = divmod(int(flat), total.shape[1])
                tokens = beams[b][0] + [tok]
                if tok == eos_id:
                    finished.append((tokens, float(total[b, tok])))
                else:
                    candidates.append((tokens, float(total[b, tok])))
                if len(candidates) == k:
                    break
            beams = candidates
            # stop when no live beam can beat the best finished one any more
            if finished and (not beams or max(score(t, lp) for t, lp in finished)
                             >= max(score(t, lp) for t, lp in beams)):
                break
        pool = finished or beams
        tokens, _ = max(pool, key=lambda c: score(*c))
        return [t for t in tokens[1:] if t != eos_id]
