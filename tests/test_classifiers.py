"""tinylm.models classifiers: padding never changes a sentence's prediction, A14 as written
gives one output per token, both models learn a toy task, and bad input is reported."""
import numpy as np
import pytest

from tinylm import ShapeError, TinyLMError
from tinylm import functional as F
from tinylm import optim
from tinylm.models import LSTMClassifier, TransformerClassifier


def _models():
    return {
        "lstm-last": LSTMClassifier(12, 8, 6, pooling="last", seed=0),
        "lstm-mean": LSTMClassifier(12, 8, 6, pooling="mean", dense_size=5, seed=0),
        "lstm-max-bi": LSTMClassifier(12, 8, 6, pooling="max", bidirectional=True, seed=0),
        "lstm-last-bi-2layers": LSTMClassifier(12, 8, 6, num_layers=2, bidirectional=True,
                                               num_outputs=3, seed=0),
        "transformer": TransformerClassifier(12, 16, 2, 2, 32, num_outputs=3, max_len=10,
                                             dropout=0.0, seed=0),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_padding_does_not_change_the_prediction(name, rng):
    model = _models()[name]
    sentence = rng.integers(1, 12, 4)
    alone = model(sentence[None], np.array([4])).data
    padded = np.zeros((2, 7), dtype=np.int64)
    padded[0, :4] = sentence
    padded[1] = rng.integers(1, 12, 7)
    together = model(padded, np.array([4, 7])).data
    np.testing.assert_allclose(together[0], alone[0], rtol=1e-5, atol=1e-6)


def test_a14_as_written_predicts_per_token_and_pooling_fixes_it(rng):
    ids = rng.integers(1, 10, (3, 5))
    per_token = LSTMClassifier(10, 8, 8, dense_size=8, pooling="none", seed=0)(ids)
    pooled = LSTMClassifier(10, 8, 8, dense_size=8, pooling="last", seed=0)(ids)
    assert per_token.shape == (3, 5) and pooled.shape == (3,)
    # with full-length sentences the last token's prediction IS the pooled one
    np.testing.assert_allclose(per_token.data[:, -1], pooled.data, rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: LSTMClassifier(8, 8, 8, pooling="max", seed=0),
    lambda: TransformerClassifier(8, 16, 2, 1, 32, num_outputs=1, max_len=8, dropout=0.0,
                                  seed=0)])
def test_learns_whether_a_token_occurs(make, rng):
    model = make()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    ids = rng.integers(1, 7, (64, 6))
    ids[:32, rng.integers(0, 6)] = 7                   # token 7 present -> label 1
    labels = (ids == 7).any(axis=1).astype(np.float32)
    lengths = rng.integers(3, 7, 64)
    ids[np.arange(6)[None, :] >= lengths[:, None]] = 0
    labels = (ids == 7).any(axis=1).astype(np.float32)
    for _ in range(60):
        loss = F.binary_cross_entropy_with_logits(model(ids, lengths), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = np.mean((model(ids, lengths).data > 0) == labels)
    assert accuracy > 0.95, accuracy


def test_bad_input():
    model = LSTMClassifier(10, 4, 4, seed=0)
    with pytest.raises(TinyLMError, match="pooling must be one of"):
        LSTMClassifier(10, 4, 4, pooling="cls")
    with pytest.raises(ShapeError, match=r"\(B, T\) integer token ids"):
        model(np.zeros((2, 3)))
    with pytest.raises(TinyLMError, match=r"\[0, 10\)"):
        model(np.array([[1, 10]]))
    with pytest.raises(ShapeError, match="lengths must be"):
        model(np.array([[1, 2]]), np.array([3]))
    with pytest.raises(ShapeError, match="longer than max_len=4"):
        TransformerClassifier(10, 8, 2, 1, 8, max_len=4, seed=0)(np.ones((1, 5), dtype=int))
