"""Chapter 14 (translation): the chapter runs end to end (``--quick``) and passes its own
checks, and its tools (teacher forcing, BLEU by hand, sequence scores, cross-attention
weights, A13's GPT prompts) are tested here directly on small untrained models."""
import math

import numpy as np
import pytest

from tinylm.errors import ShapeError, TinyLMError
from tinylm.metrics import corpus_bleu
from tinylm.models.gpt import GPT, GPTConfig
from tinylm.models.seq2seq import Seq2SeqTransformer
from tinylm.text import CharTokenizer

from chapter_tools import assert_chapter_passes, load_definitions

pytestmark = pytest.mark.ch14


@pytest.fixture(scope="module")
def ch14():
    return load_definitions("14_translation.py")


@pytest.fixture(scope="module")
def tiny():
    """An untrained 1+1-layer translator over 12 source and 9 target ids."""
    return Seq2SeqTransformer(12, 9, d_model=16, nhead=2, num_encoder_layers=1,
                              num_decoder_layers=1, dim_feedforward=32, dropout=0.0,
                              max_len=20, seed=0).eval()


def test_chapter_14_runs(tmp_path):
    out = assert_chapter_passes("14_translation.py", tmp_path,
                                ["14_cross_attention.png", "14_training.png"])
    assert "greedy vs beam search" in out and "decoder-only GPT (A13)" in out


def test_teacher_forcing_shifts_the_target(ch14):
    src = [[5, 6, 7], [8]]
    tgt = [[ch14.BOS, 4, 5, ch14.EOS], [ch14.BOS, 6, ch14.EOS]]
    x, tgt_in, tgt_out = ch14.teacher_forcing_batch(src, tgt)
    np.testing.assert_array_equal(x, [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(tgt_in, [[ch14.BOS, 4, 5], [ch14.BOS, 6, ch14.EOS]])
    np.testing.assert_array_equal(tgt_out, [[4, 5, ch14.EOS], [6, ch14.EOS, 0]])


def test_loss_by_hand_and_sequence_logprob_equal_the_model(ch14, tiny):
    rng = np.random.default_rng(0)
    src = [rng.integers(4, 12, size=n).tolist() for n in (5, 3, 7)]
    tgt = [[ch14.BOS] + rng.integers(4, 9, size=n).tolist() + [ch14.EOS] for n in (4, 2, 6)]
    x, tgt_in, tgt_out = ch14.teacher_forcing_batch(src, tgt)
    logits, loss = tiny(x, tgt_in, tgt_out)
    assert ch14.teacher_forcing_loss_by_hand(logits.numpy(), tgt_out) == \
        pytest.approx(loss.item(), abs=1e-6)
    # one sentence: the mean loss is -log p(y <eos> | x) / (its number of tokens)
    _, one = tiny(np.array([src[0]]), np.array([tgt[0][:-1]]), np.array([tgt[0][1:]]))
    logp = ch14.sequence_logprob(tiny, src[0], tgt[0][1:-1])
    assert -logp / (len(tgt[0]) - 1) == pytest.approx(one.item(), rel=1e-5)
    assert ch14.normalised_score(logp, 4, alpha=0.0) == pytest.approx(logp)


def test_translate_is_greedy_decoding_stripped(ch14, tiny):
    src = [[4, 5, 6, 7], [8, 9]]
    out = ch14.translate(tiny, src, max_new_tokens=6)
    raw = tiny.greedy(np.array([[4, 5, 6, 7], [8, 9, 0, 0]]), ch14.BOS, ch14.EOS, 6).tolist()
    assert out == [ch14.strip_ids(r) for r in raw]
    for s, r in zip(src, raw):      # each step took the argmax given its own earlier output
        logits = tiny(np.array([s]), np.array([r[:-1]]))[0].numpy()[0]
        n = r.index(ch14.EOS) if ch14.EOS in r else len(r) - 1
        assert logits.argmax(-1)[:n].tolist() == r[1:n + 1]
    assert ch14.strip_ids([ch14.BOS, 5, 0, 6, ch14.EOS, 7]) == [5, 6]


@pytest.mark.parametrize("seed", range(5))
def test_bleu_by_hand_equals_corpus_bleu(ch14, seed):
    rng = np.random.default_rng(seed)
    words = list("abcde")
    hyp = rng.choice(words, size=rng.integers(5, 12)).tolist()
    refs = [rng.choice(words, size=rng.integers(4, 14)).tolist() for _ in range(2)]
    rows, c, r, bp, bleu = ch14.bleu_by_hand(hyp, refs)
    assert bleu == pytest.approx(corpus_bleu([hyp], [refs]), abs=1e-12)
    assert c == len(hyp) and r in (len(refs[0]), len(refs[1]))
    assert all(0 <= m <= t for _, m, t in rows)


def test_bleu_by_hand_clipping_brevity_and_errors(ch14):
    rows, *_ = ch14.bleu_by_hand("the the the the".split(), ["the cat".split()], max_n=1)
    assert rows == [(1, 1, 4)]
    rows, c, r, bp, bleu = ch14.bleu_by_hand("a b c d".split(), ["a b c d e f".split()])
    assert (c, r) == (4, 6) and bp == pytest.approx(math.exp(1 - 6 / 4))
    assert bleu == pytest.approx(bp)                       # every p_n = 1
    assert ch14.bleu_by_hand("x y".split(), ["a b".split()])[4] == 0.0
    with pytest.raises(TinyLMError, match="empty"):
        ch14.bleu_by_hand([], ["a".split()])


def test_exact_match_and_scores(ch14):
    assert ch14.exact_match(["a", "b", "c", "d"], ["a", "x", "c", "y"]) == 0.5
    with pytest.raises(ShapeError):
        ch14.exact_match(["a"], ["a", "b"])
    bleu, exact = ch14.score_translations(["1994-09-27"], ["1994-09-27"])
    assert bleu == pytest.approx(100.0) and exact == 1.0


def test_cross_attention_weights_are_the_models(ch14, tiny):
    src = np.array([[4, 5, 6, 7, 0, 0], [8, 9, 10, 11, 5, 6]])
    tgt_in = np.array([[ch14.BOS, 4, 5], [ch14.BOS, 6, 7]])
    weights, logits = ch14.cross_attention_weights(tiny, src, tgt_in)
    assert len(weights) == 1 and weights[0].shape == (2, 3, 6)
    np.testing.assert_allclose(weights[0].sum(-1), 1.0, atol=1e-6)
    assert np.all(weights[0][0, :, 4:] == 0)               # padding gets no attention
    np.testing.assert_allclose(logits, tiny(src, tgt_in)[0].numpy(), atol=1e-6)


def test_encode_pairs_adds_bos_eos_and_rejects_empty(ch14):
    tok = CharTokenizer.train(["ab", "12"])
    src, tgt = ch14.encode_pairs(tok, tok, [("ab", "21")])
    assert src == [tok.encode("ab")]
    assert tgt == [[ch14.BOS] + tok.encode("21") + [ch14.EOS]]
    with pytest.raises(TinyLMError, match="no tokens"):
        ch14.encode_pairs(tok, tok, [("", "1")])


def test_gpt_prompt_and_sequences_mask_the_source(ch14):
    tok = CharTokenizer.train(["abc", "123"], specials=ch14.SPECIALS)
    sep = tok.vocab.stoi["<sep>"]
    prompt = ch14.gpt_prompt(tok, "ab", sep, width=4)
    assert prompt == [ch14.PAD, ch14.PAD] + tok.encode("ab") + [sep]
    xs, ys = ch14.gpt_sequences(tok, [("ab", "12"), ("abca", "3")], sep, width=4)
    for x, y, target in zip(xs, ys, ("12", "3")):
        assert len(x) == len(y) == 4 + 1 + len(target)
        assert y[:4] == [-1] * 4                             # nothing learned on the prompt
        assert y[4:] == tok.encode(target) + [ch14.EOS]      # the translation, then <eos>
        assert x[5:] == tok.encode(target)                   # x is the text shifted right
    with pytest.raises(TinyLMError, match="1..4 tokens"):
        ch14.gpt_prompt(tok, "abcab", sep, width=4)


def test_gpt_translate_continues_the_prompt_greedily(ch14):
    tok = CharTokenizer.train(["abc", "123"], specials=ch14.SPECIALS)
    sep = tok.vocab.stoi["<sep>"]
    gpt = GPT(GPTConfig(block_size=12, vocab_size=tok.vocab_size, n_layer=1, n_head=2,
                        n_embd=8), seed=1)
    out = ch14.gpt_translate(gpt, tok, ["ab", "c"], sep, width=3, max_new_tokens=4)
    for source, text in zip(["ab", "c"], out):
        ids = ch14.gpt_prompt(tok, source, sep, 3)
        for _ in range(4):                                    # greedy continuation by hand
            logits = gpt(np.array([ids]))[0].numpy()[0, -1]
            ids.append(int(logits.argmax()))
        assert text == tok.decode(ch14.strip_ids(ids[4:]))
    x, y = ch14.gpt_batches(*ch14.gpt_sequences(tok, [("ab", "1"), ("abc", "23")], sep, 3),
                            batch_size=3)(np.random.default_rng(0))
    assert x.shape == y.shape and np.all((y == -1) | (y >= 0))
