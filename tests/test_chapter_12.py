"""Chapter 12 (the language model): it runs end to end (``--quick``) and passes its own
checks, and the tools it defines (E1's chain rule, the count models, perplexity windows, E6
as written and fixed, the sampling measures) are tested here directly."""
import math

import numpy as np
import pytest

from tinylm.errors import IndexRangeError, TinyLMError
from tinylm.models import GPT, GPTConfig

from chapter_tools import assert_chapter_passes, load_definitions


@pytest.fixture(scope="module")
def ch12():
    return load_definitions("12_language_model.py")


@pytest.mark.ch12
def test_chapter_12_runs(tmp_path):
    out = assert_chapter_passes("12_language_model.py", tmp_path,
                                ["12_loss_curves.png", "12_sampling.png"])
    assert "the trained GPT beats the bigram" in out
    assert "cached generation = uncached generation" in out


@pytest.mark.ch12
def test_e1_chain_rule_recovers_any_joint_table(ch12):
    joint = np.random.default_rng(1).random((4, 3, 5))
    joint /= joint.sum()
    conds = ch12.conditionals_from_joint(joint)
    np.testing.assert_allclose(np.prod(np.broadcast_arrays(*conds), axis=0), joint, atol=1e-15)
    np.testing.assert_allclose(conds[1].sum(axis=1), 1.0)


@pytest.mark.ch12
@pytest.mark.parametrize("order,k", [(1, 0.5), (2, 0.0), (2, 1.0)])
def test_e1_count_model_sums_to_one_over_all_sequences(ch12, order, k):
    ids = np.random.default_rng(2).integers(0, 3, 400)
    model = ch12.CountLM(3, order=order, k=k).fit(ids)
    for T in (1, 3, 5):
        seqs = ch12.all_sequences(3, T)
        assert seqs.shape == (3 ** T, T) and len({tuple(s) for s in seqs}) == 3 ** T
        assert np.exp(model.sequence_log_prob(seqs)).sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.ch12
def test_bigram_counts_and_smoothing(ch12):
    ids = np.array([0, 1, 0, 1, 0, 2])
    mle = ch12.CountLM(3, order=2, k=0.0).fit(ids)
    np.testing.assert_allclose(mle.table[0], [0, 2 / 3, 1 / 3])     # after 0: 1, 1, 2
    np.testing.assert_allclose(mle.table[1], [1, 0, 0])
    assert np.isinf(mle.token_nll(np.array([1, 1]))).all()          # unseen pair: P = 0
    smooth = ch12.CountLM(3, order=2, k=1.0).fit(ids)
    np.testing.assert_allclose(smooth.table[1], [3 / 5, 1 / 5, 1 / 5])  # (2+1, 1, 1) / 5
    assert smooth.nll(np.array([1, 0])) == pytest.approx(-math.log(0.6))
    uni = ch12.CountLM(3, order=1, k=0.0).fit(ids)
    np.testing.assert_allclose(uni.table, [3 / 6, 2 / 6, 1 / 6])


@pytest.mark.ch12
def test_count_model_and_corpus_bad_input(ch12, tmp_path):
    with pytest.raises(TinyLMError, match="order"):
        ch12.CountLM(3, order=3)
    with pytest.raises(IndexRangeError, match=r"\[0, 3\)"):
        ch12.CountLM(3).fit(np.array([0, 5]))
    with pytest.raises(TinyLMError, match="fit"):
        ch12.CountLM(3).token_nll(np.array([0, 1]))
    with pytest.raises(TinyLMError, match="fraction"):
        ch12.split_ids("abc" * 100, fraction=1.5)
    short = tmp_path / "short.txt"
    short.write_text("too short to train on", encoding="utf-8")
    with pytest.raises(TinyLMError, match="at least"):
        ch12.load_chars(str(short))


@pytest.mark.ch12
def test_windows_and_token_nll(ch12):
    ids = np.arange(23)
    x, y = ch12.windows(ids, 5)
    assert x.shape == y.shape == (4, 5)
    np.testing.assert_array_equal(y, x + 1)
    with pytest.raises(TinyLMError):
        ch12.windows(np.arange(4), 5)
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    np.testing.assert_allclose(ch12.token_nll_from_logits(logits, np.array([1, 2])),
                               [-math.log(0.25), -math.log(0.8)])


@pytest.mark.ch12
def test_e6_as_written_cannot_read_ids_beyond_max_length(ch12):
    from tinylm import nn
    doc = ch12.DocTransformer(8, 2, 16, nn.PositionalEncoding(8, max_len=6), 0.0, 6, seed=0)
    assert doc(np.arange(6)[:, None]).shape == (6, 1, 6)       # (T, N, max_length), not V
    with pytest.raises(IndexRangeError):
        doc(np.array([[2], [7]]))


@pytest.mark.ch12
def test_encoder_lm_causal_mask_stops_the_leak(ch12):
    ids = np.random.default_rng(3).integers(0, 11, (1, 12))
    changed = ids.copy()
    changed[0, 7] = (changed[0, 7] + 1) % 11
    for causal in (True, False):
        model = ch12.EncoderLM(11, 16, 2, 32, 1, 12, causal=causal, seed=0)
        a, b = model(ids)[0].numpy(), model(changed)[0].numpy()
        earlier = np.max(np.abs(a[0, :7] - b[0, :7]))
        assert (earlier == 0.0) if causal else (earlier > 1e-4)
    logits, loss = model(ids[:, :-1], ids[:, 1:])
    assert logits.shape == (1, 11, 11) and abs(loss.item() - math.log(11)) < 1.0
    assert model.next_logits(ids).shape == (1, 11)


@pytest.mark.ch12
def test_lstm_matching_hidden_size(ch12):
    from tinylm.models import RNNLM
    h = ch12.matching_lstm_hidden(50, 16, 20000)
    assert RNNLM(50, 16, h, seed=0).num_parameters() == ch12.lstm_parameter_count(50, 16, h)
    assert abs(ch12.lstm_parameter_count(50, 16, h) - 20000) <= \
        abs(ch12.lstm_parameter_count(50, 16, h + 1) - 20000)


@pytest.mark.ch12
def test_kv_cache_logits_equal_full_forward(ch12):
    gpt = GPT(GPTConfig(block_size=12, vocab_size=9, n_layer=2, n_head=2, n_embd=8), seed=0)
    ids = np.random.default_rng(4).integers(0, 9, (2, 12))
    gpt.eval()
    full = gpt(ids, np.zeros_like(ids))[0].numpy()[:, 3:-1]
    np.testing.assert_allclose(ch12.incremental_logits(gpt, ids, 4), full, atol=1e-5)
    nll = ch12.generated_nll(gpt, ids, 4)
    ref = ch12.token_nll_from_logits(full, ids[:, 4:]).mean(axis=1)
    np.testing.assert_allclose(nll, ref, atol=1e-5)


@pytest.mark.ch12
def test_repetition_measures(ch12):
    loop = [1, 2, 3] * 5
    assert ch12.tail_period(loop) == 3
    assert ch12.tail_period([0, 1, 2, 3, 4, 5, 6, 7]) is None
    assert ch12.tail_period([5, 1, 1, 1, 1]) == 1
    assert ch12.distinct_n(loop, 3) == pytest.approx(3 / 13)
    assert ch12.distinct_n(list(range(10)), 2) == 1.0
    assert ch12.repeated_ngram_rate(loop, 3) == pytest.approx(10 / 13)
    assert ch12.repeated_ngram_rate([1, 2, 3, 4], 2) == 0.0
    assert ch12.real_word_share("The cat sat zzq", {"the", "cat", "sat"}) == pytest.approx(3 / 4)


@pytest.mark.ch12
def test_expected_nll_grows_with_temperature(ch12):
    logits = np.random.default_rng(5).standard_normal((6, 20)) * 2
    values = [ch12.expected_nll_at_temperature(logits, t).mean() for t in (0.3, 0.7, 1, 2, 5)]
    assert np.all(np.diff(values) > 0)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(ch12.expected_nll_at_temperature(logits, 1.0),
                               -(p * np.log(p)).sum(1), atol=1e-12)
