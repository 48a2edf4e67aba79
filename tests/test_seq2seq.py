"""tinylm.models.Seq2SeqTransformer (D7): teacher forcing ignores padding, the decoder is
causal, it learns to reverse a sequence, and beam search with one beam is greedy decoding."""
import numpy as np
import pytest

from tinylm import ShapeError, TinyLMError, optim
from tinylm.models import Seq2SeqTransformer

PAD, BOS, EOS = 0, 1, 2


def _model(**kw):
    settings = dict(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                    dim_feedforward=32, dropout=0.0, max_len=12, seed=0)
    return Seq2SeqTransformer(9, 9, **{**settings, **kw})


def reversal_batch(rng, n=32, length=4):
    src = rng.integers(3, 9, (n, length))
    tgt = np.concatenate([np.full((n, 1), BOS), src[:, ::-1], np.full((n, 1), EOS)], axis=1)
    return src, tgt[:, :-1], tgt[:, 1:]


def test_loss_ignores_padding_and_the_decoder_is_causal(rng):
    m = _model()
    src, tgt_in, tgt_out = reversal_batch(rng, 2)
    logits, loss = m(src, tgt_in, tgt_out)
    padded_out = tgt_out.copy()
    padded_out[:, -2:] = PAD
    _, partial = m(src, tgt_in, padded_out)
    lp = logits.data - np.log(np.exp(logits.data).sum(-1, keepdims=True))
    expected = -np.take_along_axis(lp[:, :-2], tgt_out[:, :-2, None], -1).mean()
    assert partial.item() == pytest.approx(expected, rel=1e-5)
    changed = tgt_in.copy()
    changed[:, 3] = 5
    later, _ = m(src, changed)
    np.testing.assert_allclose(later.data[:, :3], logits.data[:, :3], rtol=1e-5, atol=1e-6)


def test_learns_to_reverse_and_decodes_it(rng):
    m = _model()
    opt = optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(250):
        _, loss = m(*reversal_batch(rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
    src, _, tgt_out = reversal_batch(np.random.default_rng(99), 8)
    greedy = m.greedy(src, BOS, EOS, max_new_tokens=6)
    assert np.mean(greedy[:, 1:6] == tgt_out[:, :5]) > 0.9
    beams = m.beam_search(src, BOS, EOS, beam_size=3, max_new_tokens=6)
    assert np.mean([b == list(s[::-1]) for b, s in zip(beams, src)]) > 0.8
    one_beam = m.beam_search(src, BOS, EOS, beam_size=1, max_new_tokens=6)
    as_lists = [[t for t in row[1:] if t not in (EOS, PAD)] for row in greedy]
    assert one_beam == as_lists


def test_bad_input(rng):
    m = _model()
    with pytest.raises(ShapeError, match="integer token ids"):
        m(np.zeros((2, 3)), np.zeros((2, 3), dtype=int))
    with pytest.raises(TinyLMError, match=r"\[0, 9\)"):
        m(np.array([[1, 9]]), np.array([[1, 2]]))
    with pytest.raises(ShapeError, match="max_len=12"):
        m(np.ones((1, 13), dtype=int), np.ones((1, 2), dtype=int))
    with pytest.raises(TinyLMError, match="beam_size"):
        m.beam_search(np.ones((1, 2), dtype=int), BOS, EOS, beam_size=0)
