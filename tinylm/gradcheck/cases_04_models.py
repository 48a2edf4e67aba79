"""Gradient-check cases of whole models: a tiny GPT and RNN language models (the loss w.r.t.
every parameter)."""
import numpy as np

from ..models import (GPT, RNNLM, GPTConfig, LSTMClassifier, Seq2SeqTransformer,
                      TransformerClassifier)
from . import GradCase


def _gpt(bias=True):
    def build(rng):
        config = GPTConfig(block_size=5, vocab_size=7, n_layer=2, n_head=2, n_embd=4, bias=bias)
        model = GPT(config, seed=0).to(np.float64)
        for p in model.parameters():         # move off the special init values (zeros, ones)
            p.data = p.data + 0.3 * rng.standard_normal(p.shape)
        idx = rng.integers(0, 7, (2, 4))
        targets = rng.integers(0, 7, (2, 4))
        targets[0, 1] = -1                                        # an ignored position
        return (lambda: model(idx, targets)[1]), list(model.parameters())
    return build


def _rnnlm(cell, tie):
    def build(rng):
        model = RNNLM(7, 4, 4, num_layers=2, cell=cell, tie_weights=tie, seed=0).to(np.float64)
        for p in model.parameters():
            p.data = p.data + 0.3 * rng.standard_normal(p.shape)
        idx, targets = rng.integers(0, 7, (2, 4)), rng.integers(0, 7, (2, 4))
        return (lambda: model(idx, targets)[1]), list(model.parameters())
    return build


def _classifier(make):
    def build(rng):
        model = make().to(np.float64)
        for p in model.parameters():
            p.data = p.data + 0.3 * rng.standard_normal(p.shape)
        ids = np.array([[3, 1, 4, 0, 0], [2, 6, 5, 3, 1]])
        return (lambda: model(ids, np.array([3, 5]))), list(model.parameters())
    return build


def _seq2seq(rng):
    model = Seq2SeqTransformer(6, 7, d_model=4, nhead=2, num_encoder_layers=1,
                               num_decoder_layers=1, dim_feedforward=6, dropout=0.0, max_len=6,
                               seed=0).to(np.float64)
    for p in model.parameters():
        p.data = p.data + 0.3 * rng.standard_normal(p.shape)
    src = np.array([[3, 4, 5, 0], [2, 5, 3, 4]])
    tgt_in, tgt_out = np.array([[1, 4, 6], [1, 3, 0]]), np.array([[4, 6, 2], [3, 2, 0]])
    return (lambda: model(src, tgt_in, tgt_out)[1]), list(model.parameters())


# second order is left out: slow for a whole model, and every op in it is checked to second
# order on its own
CASES = [GradCase("models.GPT[loss, tied head]", _gpt(), second_order=False),
         GradCase("models.GPT[no bias]", _gpt(bias=False), second_order=False),
         GradCase("models.RNNLM[lstm, tied]", _rnnlm("lstm", True), second_order=False),
         GradCase("models.RNNLM[gru]", _rnnlm("gru", False), second_order=False),
         GradCase("models.LSTMClassifier[bidirectional, max pooling, dense]", _classifier(
             lambda: LSTMClassifier(7, 3, 3, bidirectional=True, pooling="max", dense_size=3,
                                    num_outputs=2, seed=0)), second_order=False),
         GradCase("models.TransformerClassifier[CLS]", _classifier(
             lambda: TransformerClassifier(7, 4, 2, 1, 6, num_outputs=2, max_len=6,
                                           dropout=0.0, seed=0)), second_order=False),
         GradCase("models.Seq2SeqTransformer[D7, padded]", _seq2seq, second_order=False)]
