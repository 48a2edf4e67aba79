"""tinylm.generate: the sampling distributions, determinism and the autoregressive loop."""
import numpy as np
import pytest

from tinylm import ShapeError, TinyLMError
from tinylm.generate import generate, next_token_distribution, sample_next_token

LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05]))


def test_temperature_one_is_the_softmax_and_zero_is_argmax():
    np.testing.assert_allclose(next_token_distribution(LOGITS), [0.5, 0.3, 0.15, 0.05])
    np.testing.assert_array_equal(next_token_distribution(LOGITS, temperature=0), [1, 0, 0, 0])
    hot = next_token_distribution(LOGITS, temperature=100.0)
    assert np.ptp(hot) < 0.01                                     # nearly uniform
    cold = next_token_distribution(LOGITS, temperature=0.1)
    assert cold[0] > 0.99


def test_top_k_and_top_p_keep_the_right_sets():
    np.testing.assert_allclose(next_token_distribution(LOGITS, top_k=2), [0.5 / 0.8, 0.3 / 0.8,
                                                                          0, 0])
    # top-p 0.75: 0.5 alone is below 0.75, 0.5 + 0.3 reaches it -> keep the first two
    np.testing.assert_allclose(next_token_distribution(LOGITS, top_p=0.75),
                               [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    np.testing.assert_allclose(next_token_distribution(LOGITS, top_p=0.1), [1, 0, 0, 0])
    np.testing.assert_allclose(next_token_distribution(LOGITS, top_p=1.0), np.exp(LOGITS))


def test_sampling_frequencies_match_the_distribution():
    rng = np.random.default_rng(0)
    draws = sample_next_token(np.tile(LOGITS, (20000, 1)), rng)
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, np.exp(LOGITS), atol=0.01)


def test_same_seed_same_tokens_and_batches():
    a = sample_next_token(np.tile(LOGITS, (5, 1)), np.random.default_rng(3))
    b = sample_next_token(np.tile(LOGITS, (5, 1)), np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert isinstance(sample_next_token(LOGITS, np.random.default_rng(0)), int)


def test_generate_loop_feeds_tokens_back_and_stops_at_eos():
    def next_logits(idx):                       # "the next token is the last one + 1, mod 5"
        z = np.full((len(idx), 5), -1e9)
        z[np.arange(len(idx)), (idx[:, -1] + 1) % 5] = 0.0
        return z
    out = generate(next_logits, np.array([[0], [2]]), 6, seed=0)
    np.testing.assert_array_equal(out, [[0, 1, 2, 3, 4, 0, 1], [2, 3, 4, 0, 1, 2, 3]])
    out = generate(next_logits, np.array([[0], [3]]), 6, eos_id=4, seed=0)
    np.testing.assert_array_equal(out, [[0, 1, 2, 3, 4], [3, 4, 4, 4, 4]])


def test_bad_arguments():
    with pytest.raises(TinyLMError, match="temperature"):
        next_token_distribution(LOGITS, temperature=-1)
    with pytest.raises(TinyLMError, match="top_k"):
        next_token_distribution(LOGITS, top_k=0)
    with pytest.raises(TinyLMError, match="top_p"):
        next_token_distribution(LOGITS, top_p=1.5)
    with pytest.raises(TinyLMError, match="NaN"):
        next_token_distribution(np.array([0.0, np.nan]))
    with pytest.raises(ShapeError, match=r"\(V,\) or \(B, V\)"):
        next_token_distribution(np.zeros((2, 2, 2)))
    with pytest.raises(TinyLMError, match="Generator"):
        sample_next_token(LOGITS, rng=0)
    with pytest.raises(ShapeError, match="integer token ids"):
        generate(lambda idx: None, np.zeros((2, 3)), 2)
