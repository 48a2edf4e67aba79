# %% [markdown]
# # Chapter 14: translation
#
# Translation turns one sequence into another of a different length, in a different
# vocabulary. Two documents describe how a Transformer does it:
#
# * D2 (document 003, sections 2.3 and 3.3): an **encoder** reads the source and a
#   **decoder** generates the target "referring to the encoder's output at every step";
# * D7 (document 003, section 5.2): code for that model: embeddings, positional encoding,
#   dropout, encoder and decoder layers and a final dense layer to the target vocabulary;
# * A13 (document 000, section 4.3.2): "machine translation with a GPT model": embed the
#   source, run the GPT, turn its output into the target text. A GPT has no encoder, so the
#   only way to read the source is as the *beginning of the text it continues*.
#
# This chapter
#
# 1. follows the shapes through the encoder, the cross-attention and the decoder (D2), and
#    shows that the encoder's output is NOT "a fixed-length vector" (as D2 says) but one
#    vector per source token;
# 2. builds D7 as `tinylm.models.Seq2SeqTransformer` and checks teacher forcing by hand;
# 3. trains it to translate written dates into ISO dates ("September 27, 1994" ->
#    "1994-09-27"), a task that needs no files;
# 4. explains BLEU (clipped n-gram precision and the brevity penalty) by hand on one
#    example and checks `tinylm.metrics.corpus_bleu` against it;
# 5. compares greedy decoding with beam search (exact match, BLEU, and the score each one
#    finds);
# 6. draws the cross-attention weights: which source characters each output character reads;
# 7. A13: trains a decoder-only GPT on "source <sep> target" strings, of about the same
#    size, and compares it with the encoder-decoder;
# 8. with the Tatoeba corpus (full run, or `--corpus eng-fra.txt`), English -> French.

# %%
import math
import sys
import time
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinylm import optim
from tinylm.chapter import Chapter, plt
from tinylm.datasets import DATA_DIR, date_pairs, load_tatoeba
from tinylm.errors import ShapeError, TinyLMError
from tinylm.metrics import corpus_bleu
from tinylm.models.gpt import GPT, GPTConfig
from tinylm.models.seq2seq import Seq2SeqTransformer
from tinylm.tensor import no_grad
from tinylm.text import CharTokenizer, WordTokenizer, pad_sequences, train_val_test_split

# %% [markdown]
# ## The tools of this chapter
#
# Data preparation, a training loop with teacher forcing, translation (greedy, beam search,
# and the GPT's continuation), scoring, BLEU by hand, and the cross-attention weights
# recomputed layer by layer. The tests (`tests/test_chapter_14.py`, marker `ch14`) use them.

# %%
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>", "<sep>")   # <sep>: A13's prompt separator
PAD = 0          # the ids of the specials in every tokenizer of this chapter
BOS = 2
EOS = 3
TATOEBA_PATH = DATA_DIR / "translation" / "tatoeba-eng-fra" / "eng-fra.txt"


def encode_pairs(src_tok, tgt_tok, pairs, max_len=None):
    """Source ids, and target ids ``<bos> y_1 .. y_n <eos>`` for each ``(source, target)``
    pair (each side cut to ``max_len`` tokens). An empty encoding is an error: a sentence
    needs at least one position to attend to."""
    src, tgt = [], []
    for number, (s, t) in enumerate(pairs):
        s_ids, t_ids = src_tok.encode(s)[:max_len], tgt_tok.encode(t)[:max_len]
        if not s_ids or not t_ids:
            raise TinyLMError(f"encode_pairs: pair {number} encodes to no tokens "
                              f"(source {s!r}, target {t!r}); expected non-empty sentences")
        src.append(s_ids)
        tgt.append([BOS] + t_ids + [EOS])
    return src, tgt


def teacher_forcing_batch(src, tgt):
    """D7's training input. ``tgt`` rows are ``<bos> y_1 .. y_n <eos>``; the decoder reads
    them shifted right (``tgt_in = <bos> y_1 .. y_n``) and must predict them shifted left
    (``tgt_out = y_1 .. y_n <eos>``): at step t it sees the TRUE y_<t, not its own guess."""
    x, _ = pad_sequences(src, pad_id=PAD)
    y, _ = pad_sequences(tgt, pad_id=PAD)
    return x, y[:, :-1], y[:, 1:]


def teacher_forcing_loss_by_hand(logits, tgt_out):
    """Mean over the non-padding positions of -log softmax(logits)[y_t] (the loss the model
    returns), in NumPy."""
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    keep = tgt_out != PAD
    picked = np.take_along_axis(logp, tgt_out[..., None], axis=-1)[..., 0]
    return -picked[keep].mean()


def train_steps(model, loss_fn, batches, steps, lr, seed=0, clip=1.0, snapshot_at=None):
    """AdamW with a linear warm-up (first 10 % of the steps) and cosine decay to lr / 10;
    ``batches(rng)`` draws one batch, ``loss_fn(model, batch)`` is its loss Tensor. Returns
    the loss of every step, and with ``snapshot_at`` = k also the model's state_dict after
    k steps (a half-trained model for section 5)."""
    rng = np.random.default_rng(seed)
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    losses, snapshot = [], None
    model.train()
    for it in range(steps):
        if it == snapshot_at:
            snapshot = model.state_dict()
        frac = it / warm if it < warm else (it - warm) / max(1, steps - warm)
        opt.param_groups[0]["lr"] = lr * frac if it < warm else \
            lr / 10 + (lr - lr / 10) * 0.5 * (1 + math.cos(math.pi * frac))
        loss = loss_fn(model, batches(rng))
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    model.eval()
    return np.array(losses) if snapshot_at is None else (np.array(losses), snapshot)


def seq2seq_batches(src, tgt, batch_size):
    def draw(rng):
        rows = rng.integers(len(src), size=batch_size)
        return teacher_forcing_batch([src[i] for i in rows], [tgt[i] for i in rows])
    return draw


def seq2seq_loss(model, batch):
    return model(*batch)[1]


def strip_ids(row):
    """Output ids up to (not including) the first <eos>, without <bos> and padding."""
    out = []
    for t in row:
        if t == EOS:
            break
        if t not in (PAD, BOS):
            out.append(t)
    return out


def translate(model, src_ids, max_new_tokens, beam_size=1, alpha=0.6, batch_size=128):
    """Output id lists (no <bos>/<eos>): greedy when ``beam_size`` is 1, else beam search."""
    out = []
    for start in range(0, len(src_ids), batch_size):
        x, _ = pad_sequences(src_ids[start:start + batch_size], pad_id=PAD)
        if beam_size == 1:
            rows = model.greedy(x, BOS, EOS, max_new_tokens=max_new_tokens).tolist()
        else:
            rows = model.beam_search(x, BOS, EOS, beam_size=beam_size,
                                     max_new_tokens=max_new_tokens, alpha=alpha)
        out.extend(strip_ids(r) for r in rows)
    return out


def sequence_logprob(model, src_ids, out_ids):
    """log p(out <eos> | src) = sum_t log p(y_t | y_<t, src), by one teacher-forced pass:
    the score greedy decoding and beam search are trying to maximise."""
    y = [BOS] + list(out_ids) + [EOS]
    with no_grad():
        logits = model(np.array([src_ids]), np.array([y[:-1]]))[0].numpy()[0]
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(logp[np.arange(len(y) - 1), y[1:]].sum())


def normalised_score(logprob, n_tokens, alpha=0.6):
    """Beam search's ranking: log p / (number of tokens incl. <eos>)^alpha (Wu et al. 2016)."""
    return logprob / n_tokens ** alpha


def exact_match(hyps, refs):
    """The share of translations equal to their reference."""
    if len(hyps) != len(refs) or not hyps:
        raise ShapeError(f"exact_match: need as many hypotheses as references (> 0), got "
                         f"{len(hyps)} and {len(refs)}")
    return float(np.mean([h == r for h, r in zip(hyps, refs)]))


def ngram_counts(tokens, n):
    counts = {}
    for i in range(len(tokens) - n + 1):
        g = tuple(tokens[i:i + n])
        counts[g] = counts.get(g, 0) + 1
    return counts


def bleu_by_hand(hyp, refs, max_n=4):
    """BLEU of ONE sentence, every step kept:

        p_n = sum_g min(count_hyp(g), max_ref count_ref(g)) / sum_g count_hyp(g)   (clipped)
        BP  = 1 if c > r else exp(1 - r / c)     c = len(hyp), r = the closest ref length
        BLEU = BP * exp(sum_n (1/N) log p_n)

    Returns ``(rows, c, r, bp, bleu)`` with rows ``(n, clipped matches, hyp n-grams)``."""
    if not hyp:
        raise TinyLMError("bleu_by_hand: the hypothesis is empty (BLEU needs c > 0)")
    rows = []
    for n in range(1, max_n + 1):
        h = ngram_counts(hyp, n)
        best = {}
        for ref in refs:
            for g, k in ngram_counts(ref, n).items():
                best[g] = max(best.get(g, 0), k)
        rows.append((n, sum(min(k, best.get(g, 0)) for g, k in h.items()), sum(h.values())))
    c = len(hyp)
    r = min((abs(len(ref) - c), len(ref)) for ref in refs)[1]
    bp = 1.0 if c > r else math.exp(1 - r / c)
    if any(m == 0 for _, m, _ in rows):
        return rows, c, r, bp, 0.0
    return rows, c, r, bp, bp * math.exp(sum(math.log(m / t) for _, m, t in rows) / max_n)


def cross_attention_weights(model, src, tgt_in):
    """Run the decoder of a pre-LN ``Seq2SeqTransformer`` layer by layer, by hand, keeping
    each layer's cross-attention weights softmax(q_t . k_s / sqrt(d_head)) averaged over the
    heads: a list of (B, T, S) arrays (one per layer), and the logits of this pass (equal to
    the model's own, which shows these are the weights it really uses)."""
    layers = model.transformer.decoder.layers
    if not all(layer.norm_first for layer in layers):
        raise TinyLMError("cross_attention_weights: written for pre-LN decoders (norm_first)")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            memory, src_pad = model.encode(src)
            tgt_in = np.asarray(tgt_in)
            x = model._embed(model.tgt_embedding, tgt_in)
            weights = []
            for layer in layers:
                h = layer.norm1(x)
                x = x + layer.self_attn(h, h, h, key_padding_mask=tgt_in == PAD,
                                        need_weights=False, is_causal=True)[0]
                ctx, w = layer.multihead_attn(layer.norm2(x), memory, memory,
                                              key_padding_mask=src_pad, need_weights=True)
                x = x + ctx
                x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
                weights.append(w.numpy())
            x = model.transformer.decoder.norm(x)
            logits = model.generator(x).numpy()
    finally:
        model.train(was_training)
    return weights, logits


# --- A13: a decoder-only GPT translating by continuing a prompt ---------------------------
def gpt_prompt(tok, source, sep_id, width):
    """``<pad> .. <pad> source <sep>``: the source left-padded to ``width`` tokens, so the
    translation always starts at position ``width + 1``. The GPT has learned absolute
    positions and no padding mask: to it the pads are ordinary tokens it learns to skip,
    and a fixed start makes "the first digit of the year" one position to learn, not 30."""
    ids = tok.encode(source)
    if not ids or len(ids) > width:
        raise TinyLMError(f"gpt_prompt: the source must have 1..{width} tokens, got "
                          f"{len(ids)} ({source!r})")
    return [PAD] * (width - len(ids)) + ids + [sep_id]


def gpt_sequences(tok, pairs, sep_id, width):
    """``(x, y)`` id lists for the GPT: the text is ``prompt target <eos>`` (the prompt of
    ``gpt_prompt``), x the text without its last token, y the text shifted by one, with -1
    (ignored by the loss) wherever the next token is still part of the prompt: the model
    is only taught to write the translation, not to predict the source."""
    xs, ys = [], []
    for s, t in pairs:
        prompt = gpt_prompt(tok, s, sep_id, width)
        text = prompt + tok.encode(t) + [EOS]
        y = text[1:]
        y[:len(prompt) - 1] = [-1] * (len(prompt) - 1)
        xs.append(text[:-1])
        ys.append(y)
    return xs, ys


def gpt_batches(xs, ys, batch_size):
    def draw(rng):
        rows = rng.integers(len(xs), size=batch_size)
        width = max(len(xs[i]) for i in rows)
        x = np.full((batch_size, width), PAD, dtype=np.int64)
        y = np.full((batch_size, width), -1, dtype=np.int64)
        for j, i in enumerate(rows):
            x[j, :len(xs[i])], y[j, :len(ys[i])] = xs[i], ys[i]
        return x, y
    return draw


def gpt_loss(model, batch):
    return model(*batch)[1]


def gpt_translate(model, tok, sources, sep_id, width, max_new_tokens, batch_size=128):
    """A13: feed ``<pad>.. source <sep>`` and let the GPT continue greedily (temperature 0)
    until <eos>; the translation is what it writes after the prompt."""
    out = []
    for start in range(0, len(sources), batch_size):
        ids = np.array([gpt_prompt(tok, s, sep_id, width)
                        for s in sources[start:start + batch_size]])
        gen = model.generate(ids, max_new_tokens, temperature=0.0)[:, ids.shape[1]:]
        out.extend(tok.decode(strip_ids(row)) for row in gen.tolist())
    return out


def score_translations(hyps, refs, unit="char"):
    """(BLEU x 100, exact match); BLEU counts characters (dates) or words."""
    split = list if unit == "char" else str.split
    bleu = corpus_bleu([split(h) for h in hyps], [split(r) for r in refs])
    return 100 * bleu, exact_match(hyps, refs)


# %%
ch = Chapter(14, "Translation: encoder-decoder, BLEU, beam search, A13's GPT")
quick = ch.quick
n_pairs = 3000 if quick else 6000
d_model = 32 if quick else 64
n_layers = 1 if quick else 2
steps = 150 if quick else 500
n_test = 60 if quick else 300
early_steps = steps // 3                   # a half-trained model for section 5

# %% [markdown]
# ## 1. D2: the shapes through an encoder-decoder
#
# The source (B, S) becomes S vectors of width d (embedding x sqrt(d) + sinusoidal
# positions); the encoder's self-attention mixes them into the **memory** (B, S, d). The
# decoder reads the target so far (B, T), attends causally to itself, then its
# **cross-attention** takes its queries from the target and its keys and values from the
# memory: weights (B, T, S), one distribution over the source per output position. A final
# dense layer gives (B, T, V_target) logits.
#
# D2 says the encoder makes "a fixed-length vector". It does not: the memory grows with the
# source (one vector per token). That is exactly what lets each output token look at the
# source token it needs (section 6); the fixed-length bottleneck belonged to the RNN
# encoder-decoders before attention.

# %%
ch.section("D2  the shapes through the encoder, the cross-attention and the decoder")
ch.formula("memory = Encoder(Embed(src) * sqrt(d) + PE)           (B, S, d)",
           "h = MaskedSelfAttn(Embed(tgt_in) * sqrt(d) + PE)        (B, T, d)",
           "CrossAttn(h, memory) = softmax(h W_q (memory W_k)^T / sqrt(d_h)) memory W_v",
           "logits = Linear(Decoder(...))                            (B, T, V_tgt)")
demo = Seq2SeqTransformer(20, 15, d_model=16, nhead=2, num_encoder_layers=1,
                          num_decoder_layers=1, dim_feedforward=32, dropout=0.0, max_len=32,
                          seed=0).eval()
rng = np.random.default_rng(0)
src_a = rng.integers(4, 20, size=(2, 7))
src_b = rng.integers(4, 20, size=(2, 12))
tgt_demo = np.concatenate([np.full((2, 1), BOS), rng.integers(4, 15, size=(2, 4))], axis=1)
with no_grad():
    mem_a, _ = demo.encode(src_a)
    mem_b, _ = demo.encode(src_b)
    logits_a = demo.decode(tgt_demo, mem_a, src_a == PAD).numpy()
w_demo, _ = cross_attention_weights(demo, src_a, tgt_demo)
for label, value in (("src", src_a.shape), ("memory (7 source tokens)", mem_a.shape),
                     ("memory (12 source tokens)", mem_b.shape), ("tgt_in", tgt_demo.shape),
                     ("cross-attention weights", w_demo[0].shape),
                     ("logits", logits_a.shape)):
    ch.show(label, str(value))
ch.check("the memory has one vector per source token (not one fixed-length vector)",
         mem_a.shape == (2, 7, 16) and mem_b.shape == (2, 12, 16))
ch.check("cross-attention: each output position holds a distribution over the source",
         (w_demo[0].sum(-1), np.ones((2, 5)), 1e-6))
tgt_changed = tgt_demo.copy()
tgt_changed[:, 3] = (tgt_changed[:, 3] - 3) % 11 + 4
src_changed = src_a.copy()
src_changed[:, -1] = (src_changed[:, -1] - 3) % 16 + 4
with no_grad():
    logits_t = demo.decode(tgt_changed, mem_a, src_a == PAD).numpy()
    logits_s = demo(src_changed, tgt_demo)[0].numpy()
ch.check("the decoder is causal: changing target token 3 leaves positions 0-2 unchanged",
         (logits_t[:, :3], logits_a[:, :3], 1e-12))
ch.check("every output position reads the source: changing the LAST source token changes "
         "the FIRST output position", np.abs(logits_s[:, 0] - logits_a[:, 0]).max() > 1e-6)
src_padded = np.concatenate([src_a, np.zeros((2, 3), dtype=src_a.dtype)], axis=1)
w_pad, logits_pad = cross_attention_weights(demo, src_padded, tgt_demo)
ch.check("padding is invisible: padded source positions get weight 0 and change nothing",
         np.all(w_pad[0][..., 7:] == 0) and np.abs(logits_pad - logits_a).max() < 1e-5,
         f"max |logits change| = {np.abs(logits_pad - logits_a).max():.1e} (float32)")

# %% [markdown]
# ## 2. D7: the document's model, and teacher forcing
#
# D7's code has the right parts (embedding, positional encoding, dropout, encoder and
# decoder layers, a final dense to the target vocabulary), but its `call` never uses the
# target: it feeds the encoder output to the decoder as *both* of its inputs, and creates a
# new, untrained `Dense(d_model)` on every call. `Seq2SeqTransformer` wires the same parts
# the standard way: the decoder reads the target shifted right, attends to the memory, and
# a `<pad>`-aware cross-entropy scores its predictions.
#
# **Teacher forcing**: during training the decoder is given the TRUE previous tokens, so
# all T positions are trained in one parallel pass (the causal mask keeps each position from
# seeing its own answer). At inference there is no true target: the decoder feeds back its
# own outputs, one token at a time (section 5).

# %%
ch.section("D7  Seq2SeqTransformer on the date task, trained with teacher forcing")
pairs = date_pairs(n_pairs, seed=0)
train_pairs, val_pairs, test_pairs = train_val_test_split(pairs, (0.8, 0.1, 0.1), seed=0)
test_pairs = test_pairs[:n_test]
src_tok = CharTokenizer.train([s for s, _ in train_pairs])
tgt_tok = CharTokenizer.train([t for _, t in train_pairs])
for s, t in pairs[:4]:
    print(f"  {s!r:40} -> {t!r}")
ch.show("source characters", src_tok.vocab_size)
ch.show("target characters", tgt_tok.vocab_size)
train_src, train_tgt = encode_pairs(src_tok, tgt_tok, train_pairs)
test_src, _ = encode_pairs(src_tok, tgt_tok, test_pairs)
test_refs = [t for _, t in test_pairs]
max_src = max(len(s) for s in train_src)
ch.code(teacher_forcing_batch)
x, tgt_in, tgt_out = teacher_forcing_batch(train_src[:2], train_tgt[:2])
ch.show("tgt_in[0]  (<bos> y_1..y_n)", tgt_tok.vocab.decode(tgt_in[0].tolist()))
ch.show("tgt_out[0] (y_1..y_n <eos>)", tgt_tok.vocab.decode(tgt_out[0].tolist()))

s2s_config = dict(src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size,
                  d_model=d_model, nhead=2, num_encoder_layers=n_layers,
                  num_decoder_layers=n_layers, dim_feedforward=2 * d_model, dropout=0.0,
                  max_len=max_src + 16)
model = Seq2SeqTransformer(**s2s_config, seed=0)
x, tgt_in, tgt_out = teacher_forcing_batch(train_src[:16], train_tgt[:16])
logits, loss = model(x, tgt_in, tgt_out)
ch.check("the model's loss = the mean of -log softmax(logits)[y_t] over non-padding "
         "positions", (loss.item(), teacher_forcing_loss_by_hand(logits.numpy(), tgt_out),
                       1e-10))
ch.check("an untrained model is near chance: loss ~ log V_target",
         abs(loss.item() - math.log(tgt_tok.vocab_size)) < 1.0,
         f"loss {loss.item():.3f}, log V = {math.log(tgt_tok.vocab_size):.3f}")

# %% [markdown]
# ## 3. Training
#
# AdamW, warm-up then cosine decay, gradient clipping at 1, batches of 64 random pairs.

# %%
ch.section("training the encoder-decoder")
s2s_params = model.num_parameters()
ch.show("parameters", s2s_params)
t0 = time.perf_counter()
s2s_losses, early_state = train_steps(model, seq2seq_loss,
                                     seq2seq_batches(train_src, train_tgt, 64), steps, lr=5e-3,
                                     seed=0, snapshot_at=early_steps)
s2s_seconds = time.perf_counter() - t0
print(f"  {steps} steps in {s2s_seconds:.1f} s; loss {s2s_losses[0]:.3f} -> "
      f"{s2s_losses[-20:].mean():.3f} (mean of the last 20)")
ch.check("training lowers the teacher-forced loss by at least 4x",
         s2s_losses[-20:].mean() < s2s_losses[:5].mean() / 4)

# %% [markdown]
# ## 4. BLEU, by hand
#
# BLEU (Papineni et al. 2002) scores a translation by the n-grams (n = 1..4) it shares
# with the reference:
#
# * **clipped precision** p_n: of the hypothesis' n-grams, how many occur in the reference,
#   each counted at most as often as the reference has it (otherwise "the the the the"
#   would have a perfect unigram precision against "the cat");
# * the **brevity penalty** BP = exp(1 - r/c) when the hypothesis (c tokens) is shorter
#   than the reference (r): precision alone would reward saying very little;
# * BLEU = BP x the geometric mean of p_1..p_4. Over a corpus, the matches and counts are
#   pooled over all sentences before dividing (so corpus BLEU is not the mean of sentence
#   BLEUs).

# %%
ch.section("BLEU: clipped n-gram precision and the brevity penalty")
ch.formula("p_n = sum_g min(count_hyp(g), count_ref(g)) / sum_g count_hyp(g)",
           "BP = min(1, exp(1 - r / c)),   BLEU = BP * exp((1/4) sum_n log p_n)")
ch.code(bleu_by_hand)
hyp = "the cat sat on the mat".split()
ref = "the cat sat on the red mat".split()
print(f"  hypothesis: {' '.join(hyp)}\n  reference:  {' '.join(ref)}")
rows, c, r, bp, bleu = bleu_by_hand(hyp, [ref])
for n, m, t in rows:
    print(f"  p_{n} = {m}/{t} = {m / t:.4f}")
print(f"  c = {c}, r = {r}, BP = exp(1 - {r}/{c}) = {bp:.4f}")
print(f"  BLEU = {bp:.4f} * (6/6 * 4/5 * 3/4 * 2/3)^(1/4) = {bleu:.4f}")
ch.check("BLEU by hand = tinylm.metrics.corpus_bleu on one sentence",
         (bleu, corpus_bleu([hyp], [ref]), 1e-12))
ch.check("the hand numbers: p = 1, 4/5, 3/4, 2/3 and BP = exp(-1/6)",
         (bleu, math.exp(-1 / 6) * (1 * 0.8 * 0.75 * 2 / 3) ** 0.25, 1e-12))
rows_dup = bleu_by_hand("the the the the".split(), ["the cat".split()], max_n=1)[0]
ch.show("'the the the the' vs 'the cat': clipped unigram precision", rows_dup[0][1] / 4)
ch.check("clipping: 'the' counts once, as often as the reference has it",
         rows_dup[0][1:] == (1, 4))
corpus_h = [hyp, "a dog ran in the park".split()]
corpus_r = [ref, "a dog ran in a big park today".split()]
sentence_mean = np.mean([bleu_by_hand(h, [rr])[4] for h, rr in zip(corpus_h, corpus_r)])
ch.show("corpus BLEU of two sentences", corpus_bleu(corpus_h, corpus_r))
ch.show("mean of their sentence BLEUs", sentence_mean)
ch.check("corpus BLEU pools the counts: it is not the mean of sentence BLEUs",
         abs(corpus_bleu(corpus_h, corpus_r) - sentence_mean) > 1e-3)

# %% [markdown]
# ## 5. Greedy decoding vs beam search
#
# Greedy decoding takes the most likely next token at every step. Beam search keeps the k
# best partial translations (by total log-probability) and extends them all, so it can
# recover from a first step that looked best but leads to a worse sentence. Both try to
# maximise log p(y | x); beam search ranks finished sentences by log p / length^0.6 so
# that it does not simply prefer short ones. On dates we score BLEU over characters (the
# "words" of a date are single tokens) and exact match, for the final model and for a
# snapshot taken after a third of the training: beam search matters where the model is
# still unsure; a well-trained model puts nearly all its probability on one answer, and
# greedy already finds it.

# %%
ch.section("greedy vs beam search")
max_new = 12
early = Seq2SeqTransformer(**s2s_config, seed=0)
early.load_state_dict(early_state)
early.eval()
print(f"  {'model':24} {'search':7} {'BLEU':>7} {'exact':>7} {'seconds':>8}   "
      f"({len(test_refs)} test dates)")
runs = {}
for name, m in ((f"after {early_steps} steps", early), (f"after {steps} steps", model)):
    for k in (1, 4):
        t0 = time.perf_counter()
        ids = translate(m, test_src, max_new, beam_size=k)
        seconds = time.perf_counter() - t0
        out = [tgt_tok.decode(i) for i in ids]
        bleu_k, exact_k = score_translations(out, test_refs)
        scores_k = np.array([normalised_score(sequence_logprob(m, s, o), len(o) + 1)
                             for s, o in zip(test_src, ids)])
        runs[name, k] = ids, out, bleu_k, exact_k, scores_k
        print(f"  {name:24} {'greedy' if k == 1 else f'beam {k}':7} {bleu_k:7.2f} "
              f"{exact_k:7.3f} {seconds:8.2f}   mean score {scores_k.mean():.4f}")
final = f"after {steps} steps"
greedy_ids, greedy_out, g_bleu, g_exact, _ = runs[final, 1]
for (s, t), h in list(zip(test_pairs, greedy_out))[:3]:
    print(f"  {s!r:38} -> {h!r} (reference {t!r})")
min_exact = 0.2 if quick else 0.9           # 150 steps in --quick, 500 in the full run
ch.check(f"the encoder-decoder learns the task: greedy exact match > {min_exact:.0%}",
         g_exact > min_exact, f"{g_exact:.3f}")

with no_grad():
    x_g = np.array([[BOS] + greedy_ids[0]])
    first = model(np.array([test_src[0]]), x_g)[0].numpy()[0]
ch.check("greedy = the argmax of the teacher-forced pass on its own output",
         np.array_equal(first.argmax(-1)[:len(greedy_ids[0])], np.array(greedy_ids[0])))
beam1 = translate(model, test_src[:20], max_new, beam_size=1)
beam1_alpha0 = [model.beam_search(np.array([s]), BOS, EOS, beam_size=1, max_new_tokens=max_new,
                                  alpha=0.0)[0] for s in test_src[:20]]
ch.check("beam search with k = 1 and alpha = 0 is greedy decoding",
         beam1 == [strip_ids(b) for b in beam1_alpha0])
for name, m in ((f"after {early_steps} steps", early), (final, model)):
    ch.check(f"{name}: beam search scores at least as well as greedy on average",
             runs[name, 4][4].mean() >= runs[name, 1][4].mean() - 1e-9)

# the sentence where beam search gained the most score over greedy, over both models
gains = [(runs[name, 4][4][i] - runs[name, 1][4][i], name, i)
         for name in (f"after {early_steps} steps", final) for i in range(len(test_refs))]
fixed = [g for g in gains if g[0] > 1e-9 and runs[g[1], 4][1][g[2]] == test_refs[g[2]]
         != runs[g[1], 1][1][g[2]]]
gain, name, i = max(fixed or gains)       # prefer a sentence where beam search fixed greedy
for n in (f"after {early_steps} steps", final):
    g_ok = np.array(runs[n, 1][1]) == np.array(test_refs)
    b_ok = np.array(runs[n, 4][1]) == np.array(test_refs)
    print(f"  {n}: beam search fixed {int((b_ok & ~g_ok).sum())} greedy errors and broke "
          f"{int((g_ok & ~b_ok).sum())} correct greedy outputs")
ch.show("sentences where beam search found a better-scoring output",
        str({n: int(sum(g > 1e-9 for g, nn, _ in gains if nn == n))
             for n in (f"after {early_steps} steps", final)}))
if gain > 1e-9:
    g_out, b_out = runs[name, 1][1][i], runs[name, 4][1][i]
    print(f"  example ({name}): {test_pairs[i][0]!r} (reference {test_refs[i]!r})")
    print(f"    greedy {g_out!r}: score {runs[name, 1][4][i]:.4f}")
    print(f"    beam 4 {b_out!r}: score {runs[name, 4][4][i]:.4f}")
    verdict = "correct" if b_out == test_refs[i] else (
        "WRONG: a better score under the model is not a better translation (a model error, "
        "not a search error)" if g_out == test_refs[i] else "still wrong")
    print(f"    the higher-scoring output is {verdict}")
else:
    print("  (on these sentences beam search found no better-scoring output than greedy)")

# %% [markdown]
# ## 6. What the decoder reads: the cross-attention weights
#
# Re-running the decoder layer by layer with the cross-attention asked for its weights
# gives, for each output character, a distribution over the source characters. The logits
# of that pass equal the model's own, so these are the weights it really uses. For a date,
# the output's year digits should read the source's year, the month the month name.

# %%
ch.section("cross-attention weights of the trained model")
example = next(i for i, (s, _) in enumerate(test_pairs) if s[0].isalpha() and "," in s)
src_ex = np.array([test_src[example]])
tgt_ex = np.array([[BOS] + tgt_tok.encode(test_refs[example])])
weights, logits_ex = cross_attention_weights(model, src_ex, tgt_ex)
with no_grad():
    logits_model = model(src_ex, tgt_ex)[0].numpy()
ch.check("the layer-by-layer pass reproduces the model's logits",
         (logits_ex, logits_model, 1e-10))
W = weights[-1][0]
src_chars = list(test_pairs[example][0])
out_chars = list(test_refs[example])
year_start = test_pairs[example][0].rindex(test_refs[example][:4])   # "..., 1994"
year_src = list(range(year_start, year_start + 4))
year_mass = W[:4][:, year_src].sum(axis=1)
ch.show("source", test_pairs[example][0])
ch.show("attention mass of the 4 year outputs on the source's year digits", year_mass)
ch.show("a uniform reader would give", len(year_src) / len(src_chars))
ch.check("the year outputs read the source's year: over twice the uniform share",
         year_mass.mean() > 2 * len(year_src) / len(src_chars), f"{year_mass.mean():.3f}")
fig, ax = plt.subplots(figsize=(0.32 * len(src_chars) + 1.5, 0.32 * len(out_chars) + 1.2))
ax.imshow(W[:len(out_chars)], cmap="Blues", vmin=0)
ax.set_xticks(range(len(src_chars)), [c if c != " " else "_" for c in src_chars])
ax.set_yticks(range(len(out_chars)), [f"{c} <- " for c in out_chars])
ax.set_xlabel("source character (keys)")
ax.set_ylabel("output character predicted")
ax.set_title("cross-attention weights, last decoder layer (mean of the heads)", fontsize=9)
ch.savefig(fig, "14_cross_attention.png")

# %% [markdown]
# ## 7. A13: translating with a decoder-only GPT
#
# A13 translates with a GPT: there is no encoder, so the source is written *into the
# prompt*: `September 27, 1994<sep>1994-09-27<eos>`. The GPT is trained as a language model
# on these strings, with the loss only on the target part, and translates by continuing
# `source <sep>` until it writes `<eos>`. Its causal self-attention plays both roles: it
# reads the source (as the encoder did) and its own output so far (as the decoder did).
# We give it about as many parameters as the encoder-decoder and the same training steps.
# (Its loss starts higher: it chooses among all the characters of both sides, the decoder
# only among the 15 target characters.)
#
# One practical detail: the GPT has learned *absolute* position embeddings and no padding
# mask, and date sources vary from 6 to 30 characters. Left-padding every source to the same
# width puts the translation at a fixed position (the pads are ordinary tokens to the GPT;
# the loss ignores them). Without it, the same run reached about half the BLEU.

# %%
ch.section("A13  a decoder-only GPT trained on 'source <sep> target'")
joint_tok = CharTokenizer.train([s for s, _ in train_pairs] + [t for _, t in train_pairs],
                                specials=SPECIALS)
sep = joint_tok.vocab.stoi["<sep>"]
src_width = max(len(joint_tok.encode(s)) for s, _ in pairs)
gx, gy = gpt_sequences(joint_tok, train_pairs, sep, src_width)
n_pad = gx[0].count(PAD)
print(f"  x: <pad> x {n_pad} +", joint_tok.vocab.decode(gx[0][n_pad:]))
print(f"  y: -1 x {n_pad} +", [joint_tok.vocab.itos[t] if t >= 0 else -1 for t in gy[0][n_pad:]])
block = src_width + 1 + max_new
gpt_layers = 2 * n_layers
gpt = GPT(GPTConfig(block_size=block, vocab_size=joint_tok.vocab_size, n_layer=gpt_layers,
                    n_head=2, n_embd=d_model, dropout=0.0), seed=0)
gpt_params = gpt.num_parameters()
ch.show("parameters: encoder-decoder, GPT", np.array([s2s_params, gpt_params]))
ch.check("similar sizes: the GPT has within 25 % of the encoder-decoder's parameters",
         abs(gpt_params - s2s_params) / s2s_params < 0.25)
ch.check("the GPT is trained only on the target: every prompt position is ignored (-1)",
         all(y[:src_width] == [-1] * src_width and min(y[src_width:]) >= 0 for y in gy))
t0 = time.perf_counter()
gpt_losses = train_steps(gpt, gpt_loss, gpt_batches(gx, gy, 64), steps, lr=5e-3, seed=0)
gpt_seconds = time.perf_counter() - t0
gpt_out = gpt_translate(gpt, joint_tok, [s for s, _ in test_pairs], sep, src_width, max_new)
p_bleu, p_exact = score_translations(gpt_out, test_refs)
print(f"  {'model':22} {'params':>7} {'train s':>8} {'BLEU':>7} {'exact':>7}")
print(f"  {'encoder-decoder (D7)':22} {s2s_params:7d} {s2s_seconds:8.1f} {g_bleu:7.2f} "
      f"{g_exact:7.3f}")
print(f"  {'decoder-only GPT (A13)':22} {gpt_params:7d} {gpt_seconds:8.1f} {p_bleu:7.2f} "
      f"{p_exact:7.3f}")
for (s, t), h in list(zip(test_pairs, gpt_out))[:3]:
    print(f"  {s!r:38} -> {h!r} (reference {t!r})")
min_bleu = 40 if quick else 80
ch.check(f"the GPT also learns to translate by continuing the prompt: BLEU > {min_bleu}",
         p_bleu > min_bleu, f"{p_bleu:.1f}")

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(s2s_losses, lw=0.8, label=f"encoder-decoder ({s2s_params} params)")
ax.plot(gpt_losses, lw=0.8, label=f"decoder-only GPT ({gpt_params} params)")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("training loss (target tokens)")
ax.legend()
ch.savefig(fig, "14_training.png")

# %% [markdown]
# ## 8. A real corpus: Tatoeba English -> French
#
# With the corpus present (the full run reads `../shared/data`, or pass the `eng-fra.txt`
# file with `--corpus`), the same model translates short English sentences into French,
# word by word. A few minutes of CPU training give a small BLEU: the point is the
# pipeline on real text, not the score.

# %%
ch.section("Tatoeba English -> French (word level)")
tatoeba_source = ch.corpus or (None if quick or not TATOEBA_PATH.is_file() else TATOEBA_PATH)
if tatoeba_source is None:
    print("  skipped: no corpus (run without --quick with ../shared/data, or pass --corpus "
          "eng-fra.txt)")
else:
    tat = [(s, t) for s, t in load_tatoeba(tatoeba_source, split="all")
           if len(s.split()) <= 6 and len(t.split()) <= 8]
    tat_train, _, tat_test = train_val_test_split(tat, (0.9, 0.05, 0.05), seed=0)
    tat_test = tat_test[:200]
    en_tok = WordTokenizer.train([s for s, _ in tat_train], min_count=2, max_size=4000,
                                 lower=True)
    fr_tok = WordTokenizer.train([t for _, t in tat_train], min_count=2, max_size=4000,
                                 lower=True)
    ts, tt = encode_pairs(en_tok, fr_tok, tat_train, max_len=12)
    tat_model = Seq2SeqTransformer(en_tok.vocab_size, fr_tok.vocab_size, d_model=64, nhead=4,
                                   num_encoder_layers=2, num_decoder_layers=2,
                                   dim_feedforward=128, dropout=0.1, max_len=20, seed=0)
    tat_steps = 150 if quick else 600
    t0 = time.perf_counter()
    tat_losses = train_steps(tat_model, seq2seq_loss, seq2seq_batches(ts, tt, 64), tat_steps,
                             lr=3e-3, seed=0)
    test_ids = [en_tok.encode(s)[:12] or [1] for s, _ in tat_test]
    tat_out = [" ".join(fr_tok.vocab.itos[t] for t in ids)      # <unk> stays one token
               for ids in translate(tat_model, test_ids, 14)]
    tat_refs = [" ".join(fr_tok.tokenize(t)) for _, t in tat_test]
    t_bleu, t_exact = score_translations(tat_out, tat_refs, unit="word")
    print(f"  {len(tat_train)} training pairs, vocabularies {en_tok.vocab_size} / "
          f"{fr_tok.vocab_size}, {tat_steps} steps in {time.perf_counter() - t0:.0f} s")
    print(f"  loss {tat_losses[:5].mean():.2f} -> {tat_losses[-20:].mean():.2f}; test BLEU "
          f"{t_bleu:.2f} (corpus BLEU over lower-cased words), exact {t_exact:.3f}")
    for (s, t), h in list(zip(tat_test, tat_out))[:4]:
        print(f"  {s!r} -> {h!r} (reference {t!r})")
    ch.check("Tatoeba: training lowers the loss", tat_losses[-20:].mean() < tat_losses[:5].mean())

# %%
ch.finish()
