# %% [markdown]
# # Chapter 12: the language model
#
# A language model is a **probability distribution over sequences of symbols** (E1, document
# 004 section 2: "a model that produces a probability distribution from the input sequence,
# to predict the probability of unknown symbols"). Every such distribution factorises by the
# chain rule of probability:
#
#     P(w_1 .. w_T) = P(w_1) P(w_2 | w_1) P(w_3 | w_1 w_2) ... = prod_t P(w_t | w_<t)     (E1)
#
# so a language model only has to predict **the next symbol given the ones before**. A count
# table does it with a short context (a bigram: `P(w_t | w_{t-1})`); an RNN/LSTM carries a
# state (chapters 08-09); a Transformer attends to the whole prefix (chapters 10-11), as long
# as it cannot see the symbol it must predict. Generating text (C6, document 002 section
# 3.2.3) is the same factorisation run forwards: draw `w_1`, then `w_2 ~ P(. | w_1)`, ...
#
# This chapter
#
# 1. checks the chain rule (E1) on a joint table and on a small count model: the product of
#    the conditionals sums to 1 over all V^T sequences;
# 2. derives perplexity `PPL = exp(mean NLL)` (uniform over k symbols -> exactly k) and
#    measures it for a unigram and an add-k bigram on held-out text;
# 3. builds E6, the document's encoder-only Transformer LM, **as written** (embedding and head
#    sized by `max_length`: the erratum) and fixed, and measures what a missing causal mask
#    does: the model "cheats" by reading the next character;
# 4. trains a small character-level GPT (`tinylm.models.GPT`) and an LSTM of the same size on
#    the embedded corpus and compares their held-out perplexity with the count models;
# 5. compares sampling strategies (greedy, temperature, top-k, top-p) on the trained GPT,
#    with numbers: the model's own NLL of its samples, distinct n-grams, repetition, real
#    words; and shows that greedy decoding repeats itself.
#
# Everything is character level (a vocabulary of ~100 symbols), so the models are tiny and
# the whole chapter runs in seconds with `--quick`.

# %%
import math
import re
import sys
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinylm as tl
from tinylm import functional as F
from tinylm import nn, optim
from tinylm.chapter import Chapter, plt
from tinylm.errors import IndexRangeError, TinyLMError
from tinylm.generate import generate, next_token_distribution
from tinylm.metrics import perplexity
from tinylm.models import GPT, GPTConfig, RNNLM
from tinylm.text import CharTokenizer, default_text, load_text
from tinylm.train import TrainConfig, Trainer

# %% [markdown]
# ## The tools of this chapter
#
# The chain rule on tables, the count models, perplexity on a fixed set of held-out windows,
# E6 as written and fixed, the training helper around `tinylm.train.Trainer`, and the
# measures of generated text. The tests (`tests/test_chapter_12.py`, marker `ch12`) use them.

# %%
QUICK_CHARS = 200_000          # --quick reads the first 200k characters of the corpus
MIN_CHARS = 5_000              # less text than this cannot fill the train/val windows
TRAIN_FRACTION = 0.9           # first 90% train, last 10% validation
K_SMOOTH = 0.1                 # the bigram's add-k (fixed beforehand, not tuned on validation)
STRATEGIES = (("greedy", {"temperature": 0.0}),
              ("T=0.5", {"temperature": 0.5}),
              ("T=1.0", {"temperature": 1.0}),
              ("T=1.5", {"temperature": 1.5}),
              ("top-k=5", {"temperature": 1.0, "top_k": 5}),
              ("top-p=0.9", {"temperature": 1.0, "top_p": 0.9}))


def load_chars(corpus=None, max_chars=None):
    """The text the chapter trains on: the embedded default corpus (``corpus=None``) or
    ``load_text(corpus)``, cut to ``max_chars`` characters."""
    text = default_text() if corpus is None else load_text(corpus)
    if max_chars is not None:
        text = text[:max_chars]
    if len(text) < MIN_CHARS:
        raise TinyLMError(f"chapter 12: the corpus needs at least {MIN_CHARS} characters, "
                          f"got {len(text)}")
    return text


def split_ids(text, fraction=TRAIN_FRACTION):
    """A character tokenizer trained on the first ``fraction`` of the text, and the ids of
    both parts (train first, validation last: no shuffling, so no leak of neighbouring text).
    Validation characters never seen in training become ``<unk>``."""
    if not 0 < fraction < 1:
        raise TinyLMError(f"split_ids: fraction must be in (0, 1), got {fraction}")
    cut = int(len(text) * fraction)
    tok = CharTokenizer.train(text[:cut])
    return (tok, np.asarray(tok.encode(text[:cut]), dtype=np.int64),
            np.asarray(tok.encode(text[cut:]), dtype=np.int64))


# --- E1: the chain rule ---------------------------------------------------------------
def all_sequences(V, T):
    """Every sequence of length T over V symbols, one per row: (V^T, T) int64."""
    return np.indices((V,) * T).reshape(T, -1).T.astype(np.int64)


def conditionals_from_joint(joint):
    """E1 for any joint table P(w_1..w_T) (shape (V,)*T): the conditionals
    P(w_t | w_<t) = P(w_1..w_t) / P(w_1..w_{t-1}), each broadcast to the full shape, so that
    their product is the chain rule's right-hand side."""
    joint = np.asarray(joint, dtype=np.float64)
    T = joint.ndim
    marginals = [joint.sum(axis=tuple(range(t + 1, T))) for t in range(T)]   # P(w_1..w_{t+1})
    conds = [marginals[0]]
    for t in range(1, T):
        conds.append(marginals[t] / marginals[t - 1][..., None])
    return [c.reshape(c.shape + (1,) * (T - c.ndim)) for c in conds]


def char_classes(text):
    """A 4-symbol alphabet for enumerating sequences: 0 whitespace, 1 vowel, 2 other letter,
    3 anything else (digits, punctuation)."""
    chars = np.frombuffer(text.lower().encode("utf-32-le"), dtype=np.uint32)
    space = np.isin(chars, [ord(c) for c in " \t\n\r"])
    vowel = np.isin(chars, [ord(c) for c in "aeiou"])
    letter = (chars >= ord("a")) & (chars <= ord("z"))
    return np.select([space, vowel, letter], [0, 1, 2], default=3).astype(np.int64)


class CountLM:
    """A unigram (``order=1``) or bigram (``order=2``) count model with add-k smoothing:

        unigram  P(b)     = (c(b) + k) / (N + k V)
        bigram   P(b | a) = (c(a, b) + k) / (c(a) + k V)

    E1 with a one-symbol memory. ``k=0`` is the maximum-likelihood table: a pair never seen
    in training gets probability 0 (an infinite NLL on text that contains it)."""

    def __init__(self, vocab_size, order=2, k=0.1):
        if order not in (1, 2):
            raise TinyLMError(f"CountLM: order must be 1 or 2, got {order!r}")
        if not k >= 0:
            raise TinyLMError(f"CountLM: k must be >= 0, got {k}")
        self.V, self.order, self.k = int(vocab_size), order, float(k)
        self.table = None

    def fit(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size < self.order:
            raise TinyLMError(f"CountLM.fit: need at least {self.order} tokens, got {ids.size}")
        if ids.min() < 0 or ids.max() >= self.V:
            raise IndexRangeError(f"CountLM.fit: ids must be in [0, {self.V}), got "
                                  f"[{ids.min()}, {ids.max()}]")
        V, k = self.V, self.k
        if self.order == 1:
            counts = np.bincount(ids, minlength=V).astype(np.float64)
            self.table = (counts + k) / (counts.sum() + k * V)
        else:   # pair (a, b) -> a * V + b: one bincount instead of a Python loop
            counts = np.bincount(ids[:-1] * V + ids[1:], minlength=V * V).reshape(V, V)
            counts = counts.astype(np.float64) + k
            rows = counts.sum(axis=1, keepdims=True)
            self.table = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        self.start = (np.bincount(ids, minlength=V) + k) / (ids.size + k * V)   # P(w_1)
        return self

    def token_nll(self, ids):
        """-log P(w_t | w_{t-1}) for t = 1 .. N-1 (the first token is context only)."""
        if self.table is None:
            raise TinyLMError("CountLM: call fit(ids) first")
        ids = np.asarray(ids, dtype=np.int64)
        p = self.table[ids[1:]] if self.order == 1 else self.table[ids[:-1], ids[1:]]
        with np.errstate(divide="ignore"):
            return -np.log(p)

    def nll(self, ids):
        return float(np.mean(self.token_nll(ids)))

    def sequence_log_prob(self, seqs):
        """E1: log P(w_1..w_T) = log P(w_1) + sum_t log P(w_t | w_{t-1}), for each row."""
        seqs = np.atleast_2d(np.asarray(seqs, dtype=np.int64))
        with np.errstate(divide="ignore"):
            logp = np.log(self.start[seqs[:, 0]])
            if self.order == 1:
                return logp + np.log(self.table[seqs[:, 1:]]).sum(axis=1)
            return logp + np.log(self.table[seqs[:, :-1], seqs[:, 1:]]).sum(axis=1)


# --- perplexity on held-out text --------------------------------------------------------
def windows(ids, block, max_windows=None):
    """Non-overlapping (x, y) windows of ``block`` tokens, y = x shifted by one: every model
    of the chapter is scored on exactly these targets."""
    n = (len(ids) - 1) // block
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        raise TinyLMError(f"windows: need more than {block} tokens, got {len(ids)}")
    return ids[:n * block].reshape(n, block), ids[1:n * block + 1].reshape(n, block)


def token_nll_from_logits(logits, targets):
    """-log softmax(logits)[target] per position, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(logp, np.asarray(targets)[..., None], axis=-1)[..., 0]


def model_token_nll(model, x, y, batch=64):
    """(n, block) NLLs of a model called as ``model(x, y)`` -> (logits, ...) (GPT, RNNLM and
    EncoderLM all are), in evaluation mode, without a graph."""
    was_training = model.training
    model.eval()
    out = []
    with tl.no_grad():
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch], y[i:i + batch])[0]
            out.append(token_nll_from_logits(logits.numpy(), y[i:i + batch]))
    model.train(was_training)
    return np.concatenate(out)


# --- E6: the encoder-only Transformer LM -----------------------------------------------
class DocTransformer(nn.Module):
    """E6 as the document writes it (004, section 5), made runnable and nothing more:

        self.embedding = nn.Embedding(max_length, d_model)      # ERRATUM: not the vocabulary
        self.fc = nn.Linear(d_model, max_length)                # ERRATUM: scores max_length
        x = self.embedding(x) * math.sqrt(self.d_model)
        x += self.pos_encoder(x)                                # pos_encoder(x) = x + p
        x = self.transformer_encoder(x)                         # no mask
        return self.fc(x)

    The document never sets ``self.d_model``, never defines ``num_layers`` and never imports
    ``math``; those three are supplied. The layer is built with PyTorch's default
    ``batch_first=False``, so inputs are (T, N) ids. ``TransformerEncoder`` copies
    ``transformer_layers``, so that template layer's parameters are never used."""

    def __init__(self, d_model, num_heads, dff, position_encoding, dropout, max_length,
                 num_layers=1, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.d_model = d_model
        self.embedding = nn.Embedding(max_length, d_model, seed=rng)
        self.pos_encoder = position_encoding
        self.transformer_layers = nn.TransformerEncoderLayer(d_model, num_heads, dff, dropout,
                                                             seed=rng)
        self.transformer_encoder = nn.TransformerEncoder(self.transformer_layers, num_layers)
        self.fc = nn.Linear(d_model, max_length, seed=rng)

    def forward(self, x):
        x = self.embedding(x) * math.sqrt(self.d_model)
        x = x + self.pos_encoder(x)          # the document's in-place `x += self.pos_encoder(x)`
        x = self.transformer_encoder(x)
        return self.fc(x)


class EncoderLM(nn.Module):
    """E6 fixed: the same architecture sized by the vocabulary, batch first, with an optional
    causal mask (``causal=True`` is a language model; ``False`` is E6's unmasked encoder):

        h = PE(Embedding_V(x) * sqrt(d_model))     h_t = x_t sqrt(d) + p_t   (E3, E5)
        h = Encoder(h, causal mask)                position t attends to 1..t only
        logits = Linear(d_model, V)(h)             P(w_{t+1} | w_<=t) = softmax(logits_t)

    The embedding starts U(-0.1, 0.1) (PyTorch's Transformer tutorial): with the N(0, 1)
    default, ``x * sqrt(d)`` would be ~sqrt(2d) times larger than the position vectors and
    drown them. ``model(idx, targets)`` returns ``(logits, loss)`` as GPT's."""

    def __init__(self, vocab_size, d_model, nhead, dff, num_layers, max_len, causal=True,
                 dropout=0.0, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.d_model, self.causal, self.max_len = d_model, causal, max_len
        self.embedding = nn.Embedding(vocab_size, d_model, seed=rng)
        self.embedding.weight.data = rng.uniform(-0.1, 0.1, self.embedding.weight.shape).astype(
            self.embedding.weight.dtype)
        self.pos_encoder = nn.PositionalEncoding(d_model, max_len=max_len, batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dff, dropout, batch_first=True,
                                           seed=rng)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers)
        self.fc = nn.Linear(d_model, vocab_size, seed=rng)

    def forward(self, idx, targets=None):
        h = self.pos_encoder(self.embedding(idx) * math.sqrt(self.d_model))
        h = self.transformer_encoder(h, is_causal=self.causal)
        logits = self.fc(h)
        return logits, None if targets is None else F.cross_entropy(logits, targets)

    def next_logits(self, idx):
        """(B, V) logits for the token after each row (the last ``max_len`` tokens are the
        context): the callback ``tinylm.generate.generate`` needs."""
        with tl.no_grad():
            return self(np.asarray(idx)[:, -self.max_len:])[0].numpy()[:, -1]


# --- training -----------------------------------------------------------------------------
def lm_batches(train_ids, val_ids, block, batch):
    """``get_batch(split, rng)`` for ``Trainer``: ``batch`` random windows of the split."""
    data = {"train": train_ids, "val": val_ids}
    for split, ids in data.items():
        if len(ids) <= block + 1:
            raise TinyLMError(f"lm_batches: the {split} split has {len(ids)} tokens, fewer "
                              f"than block + 2 = {block + 2}")

    def get_batch(split, rng):
        ids = data[split]
        start = rng.integers(0, len(ids) - block - 1, size=batch)
        offsets = start[:, None] + np.arange(block)
        return ids[offsets], ids[offsets + 1]
    return get_batch


def make_optimizer(model, lr):
    """AdamW with weight decay 0.1 on the matrices only (GPT.configure_optimizers' rule,
    used for every model so the comparison is fair)."""
    params = list(model.parameters())
    return optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
                        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                       lr=lr, betas=(0.9, 0.99))


def train_lm(model, get_batch, steps, lr=3e-3, eval_interval=50, eval_iters=4, seed=0):
    """Train with ``tinylm.train.Trainer`` (warmup + cosine decay, clipping at 1.0); returns
    its history: {"train": [{"iter", "loss", "lr"}], "eval": [{"iter", "train_loss",
    "val_loss"}]}."""
    cfg = TrainConfig(max_iters=steps, lr=lr, min_lr=lr / 10, warmup_iters=min(50, steps // 10),
                      eval_interval=eval_interval, eval_iters=eval_iters, seed=seed,
                      progress=False)
    return Trainer(model, make_optimizer(model, lr), get_batch, cfg).fit()


def lstm_parameter_count(vocab_size, embed, hidden):
    """RNNLM(cell="lstm") parameters: embedding V E, LSTM 4H(E + H) + 8H (two biases, as
    PyTorch), decoder H V + V."""
    return vocab_size * embed + 4 * hidden * (embed + hidden) + 8 * hidden + hidden * vocab_size \
        + vocab_size


def matching_lstm_hidden(vocab_size, embed, target):
    """The LSTM hidden size whose RNNLM has the parameter count closest to ``target``."""
    hidden = np.arange(1, 2049)
    counts = lstm_parameter_count(vocab_size, embed, hidden)
    return int(hidden[np.argmin(np.abs(counts - target))])


# --- generation and its measures ---------------------------------------------------------
def incremental_logits(model, ids, prompt_len):
    """GPT's logits for positions prompt_len-1 .. T-2 computed the way cached generation does
    (the prompt in one pass, then one token at a time against the KV cache)."""
    caches = [{} for _ in model.transformer.h]
    out = []
    with tl.no_grad():
        logits, _ = model(ids[:, :prompt_len], caches=caches, start_pos=0)
        out.append(logits.numpy()[:, -1])
        for t in range(prompt_len, ids.shape[1] - 1):
            logits, _ = model(ids[:, t:t + 1], caches=caches, start_pos=t)
            out.append(logits.numpy()[:, -1])
    return np.stack(out, axis=1)


def generated_nll(model, ids, prompt_len):
    """The model's own mean NLL (temperature 1, full context) of each row's generated part
    ``ids[:, prompt_len:]``: (B,)."""
    y = ids[:, 1:].copy()
    nll = model_token_nll(model, ids[:, :-1], y)
    return nll[:, prompt_len - 1:].mean(axis=1)


def distinct_n(seq, n):
    """Distinct-n (Li et al. 2016): unique n-grams / n-grams in one sequence."""
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngram_rate(seq, n):
    """The share of n-grams that already occurred earlier in the same sequence."""
    seen, repeats, total = set(), 0, 0
    for i in range(len(seq) - n + 1):
        gram = tuple(seq[i:i + n])
        repeats += gram in seen
        total += 1
        seen.add(gram)
    return repeats / total if total else 0.0


def tail_period(seq, max_period=40, min_repeats=3):
    """The smallest p <= max_period such that the last p * min_repeats tokens repeat with
    period p (a loop), else None."""
    seq = np.asarray(seq)
    for p in range(1, max_period + 1):
        span = p * min_repeats
        if span <= len(seq) and np.array_equal(seq[-span:-p], seq[-span + p:]):
            return p
    return None


WORD_RE = re.compile(r"[A-Za-z]{2,}")


def real_word_share(text, known_words):
    """The share of the letter runs (2+ letters) of ``text`` that are words of the training
    text: 0 for gibberish, near 1 for fluent text."""
    words = WORD_RE.findall(text.lower())
    return sum(w in known_words for w in words) / len(words) if words else 0.0


def expected_nll_at_temperature(logits, temperature):
    """E_{w ~ p_T}[-log p(w)] per row: the NLL, under the model's own distribution p, of a
    token sampled at temperature T (p_T proportional to p^(1/T)); 0 < T."""
    p = next_token_distribution(logits, 1.0)
    q = next_token_distribution(logits, temperature)
    with np.errstate(divide="ignore"):
        return -(q * np.where(q > 0, np.log(p), 0.0)).sum(axis=-1)


def sampling_table(model, prompts, tok, known_words, seed=0):
    """Sample a continuation of every prompt row with each strategy of STRATEGIES (up to the
    block size, so one cached pass covers it), then measure it. Returns {name: row}."""
    prompt_len = prompts.shape[1]
    n_new = model.config.block_size - prompt_len
    rows = {}
    for name, kw in STRATEGIES:
        ids = model.generate(prompts, n_new, seed=seed, **kw)
        gen = ids[:, prompt_len:]
        texts = [tok.decode(g) for g in gen]
        rows[name] = {
            "ids": ids, "texts": texts,
            "nll": float(generated_nll(model, ids, prompt_len).mean()),
            "distinct_3": float(np.mean([distinct_n(g, 3) for g in gen])),
            "repeat_4": float(np.mean([repeated_ngram_rate(g, 4) for g in gen])),
            "words": float(np.mean([real_word_share(t, known_words) for t in texts]))}
    return rows


# %%
ch = Chapter(12, "The language model")

# %% [markdown]
# ## 1. E1: a language model is a distribution over sequences
#
# For any joint distribution over sequences, the definition of conditional probability
# `P(A, B) = P(A) P(B | A)`, applied T - 1 times, gives
#
#     P(w_1 .. w_T) = P(w_1) P(w_2 | w_1) ... P(w_T | w_1 .. w_{T-1})          (E1)
#
# with `P(w_t | w_<t) = P(w_1..w_t) / P(w_1..w_{t-1})`. No assumption is made; the
# conditionals are just the joint table's ratios of marginals. We check it on a random joint
# table over V = 3 symbols and T = 4 positions.
#
# The other direction is what a language model uses: **any** family of conditionals, each
# summing to 1 over the next symbol, defines a distribution over length-T sequences (the
# products sum to 1, by summing out w_T, then w_{T-1}, ...). A bigram model keeps one
# symbol of context: `P(w_t | w_<t) ~ P(w_t | w_{t-1})`. We count a bigram on the corpus
# mapped to a 4-letter alphabet (whitespace / vowel / consonant / other), enumerate all
# 4^T sequences and add up their probabilities.

# %%
ch.section("1. E1: the chain rule P(w_1..w_T) = prod_t P(w_t | w_<t)")
ch.code(conditionals_from_joint)
joint = np.random.default_rng(0).random((3,) * 4)
joint /= joint.sum()
conds = conditionals_from_joint(joint)
product = np.prod(np.broadcast_arrays(*conds), axis=0)
ch.show("P(w_1) (first factor)", conds[0].ravel())
ch.show("P(w_2 | w_1 = 0)", conds[1][0].ravel())
ch.check("E1: the product of the conditionals equals the joint table (all 81 sequences)",
         (product, joint, 1e-15))
ch.check("every conditional sums to 1 over the next symbol",
         all(np.allclose(c.sum(axis=t), 1.0) for t, c in enumerate(conds)))

text = load_chars(ch.corpus, QUICK_CHARS if ch.quick else None)
classes = char_classes(text)
small = CountLM(4, order=2, k=0.0).fit(classes)
ch.show("bigram P(b | a) on {space, vowel, consonant, other}", small.table)
ch.code(CountLM.sequence_log_prob)
totals = []
for T_seq in range(1, 7):
    seqs = all_sequences(4, T_seq)
    totals.append(np.exp(small.sequence_log_prob(seqs)).sum())
ch.show("sum over all 4^T sequences of prod_t P(w_t | w_{t-1}), T = 1..6", np.array(totals))
ch.check("E1: the chain-rule products sum to 1 over all 4^T sequences, T = 1..6",
         (np.array(totals), np.ones(6), 1e-12))
seqs5 = all_sequences(4, 5)
best = seqs5[np.argmax(small.sequence_log_prob(seqs5))]
ch.show("the most likely length-5 class sequence (0 space, 1 vowel, 2 consonant, 3 other)",
        best)

# %% [markdown]
# ## 2. Perplexity
#
# Score a model on held-out text w_1..w_N by the probability it gives the text. The raw
# probability shrinks with N, so take the **geometric mean per token** and invert it:
#
#     PPL = P(w_1..w_N)^(-1/N) = exp(-(1/N) sum_t log P(w_t | w_<t)) = exp(mean NLL)
#
# The mean NLL is the cross-entropy training minimises, so PPL = exp(loss). **Meaning**: a
# model that is uniform over k symbols gives every token probability 1/k, so its mean NLL is
# log k and its perplexity exactly k: a perplexity of 8 means "as unsure as a fair choice
# among 8 characters". Lower is better; 1 is perfect prediction.
#
# The count models: a unigram ignores context; a bigram conditions on one character. Without
# smoothing (k = 0) a pair never seen in training has probability 0 and one such pair in the
# validation text makes the perplexity infinite; add-k smoothing moves a little mass to
# every pair. All the models of this chapter are scored on the same targets: the
# non-overlapping windows of the last 10% of the text.

# %%
ch.section("2. Perplexity = exp(mean NLL)")
ch.code(perplexity)
ks = np.array([2, 10, 100])
ppl_uniform = np.array([perplexity(-np.log(1.0 / k)) for k in ks])
ch.show("perplexity of the uniform distribution over k = 2, 10, 100", ppl_uniform)
ch.check("the uniform distribution over k symbols has perplexity exactly k",
         (ppl_uniform, ks.astype(float), 1e-9))

tok, train_ids, val_ids = split_ids(text)
V = tok.vocab_size
block = 64 if ch.quick else 128
x_val, y_val = windows(val_ids, block, 64 if ch.quick else 256)
n_targets = y_val.size
targets_stream = val_ids[:n_targets + 1]          # w_0 (context only), then the targets
ch.show("characters: train, validation", np.array([len(train_ids), len(val_ids)]))
ch.show("vocabulary size V (4 specials + characters)", V)
ch.show("validation targets scored (windows x block)", f"{len(x_val)} x {block} = {n_targets}")

unigram = CountLM(V, order=1, k=1.0).fit(train_ids)
uni_nll = unigram.token_nll(targets_stream)
geo = np.exp(np.mean(np.log(np.exp(-uni_nll))))
ch.check("PPL = 1 / (geometric mean of the per-token probabilities)",
         abs(perplexity(uni_nll.mean()) - 1 / geo) < 1e-9 * perplexity(uni_nll.mean()))
smoothing = {}
for k in (0.0, 0.01, 0.1, 1.0):
    bigram_k = CountLM(V, order=2, k=k).fit(train_ids)
    nll_k = bigram_k.token_nll(targets_stream)
    smoothing[k] = (int(np.sum(~np.isfinite(nll_k))), float(np.mean(nll_k)))
print("  add-k bigram on validation:   k   unseen pairs (P = 0)   perplexity")
for k, (unseen, m) in smoothing.items():
    print(f"                            {k:5.2f}   {unseen:20d}   {math.exp(m):10.3f}")
k_best = K_SMOOTH
bigram = CountLM(V, order=2, k=k_best).fit(train_ids)
bi_nll = bigram.token_nll(targets_stream)
ch.check("each bigram row P(. | a) sums to 1", np.allclose(bigram.table.sum(axis=1), 1.0))
if smoothing[0.0][0]:
    ch.check("k = 0 (no smoothing): a pair unseen in training makes the perplexity infinite",
             not math.isfinite(math.exp(smoothing[0.0][1])))
ch.check(f"add-k smoothing (k = {k_best:g}) gives a finite validation perplexity",
         math.isfinite(bi_nll.mean()))
ch.check("the bigram beats the unigram on validation perplexity",
         bi_nll.mean() < uni_nll.mean(),
         f"{perplexity(bi_nll.mean()):.2f} < {perplexity(uni_nll.mean()):.2f}")
results = {"uniform over V": math.log(V), "unigram (add-1)": float(uni_nll.mean()),
           f"bigram (add-{k_best:g})": float(bi_nll.mean())}

# %% [markdown]
# ## 3. E6: the document's encoder-only Transformer LM, as written and fixed
#
# Document 004 (section 5) writes a Transformer language model in PyTorch (see
# `DocTransformer` above for the code). Reading it line by line:
#
# * `nn.Embedding(max_length, d_model)` and `nn.Linear(d_model, max_length)`: **ERRATUM**.
#   Both are sized by `max_length` (a sequence length, the size of a *position* table),
#   where a language model needs the **vocabulary size** V: the embedding must have a row
#   for every token id, and the head must score every possible next token. With
#   max_length < V the model cannot even read the text (ids >= max_length are out of range);
#   with max_length > V it runs, but with rows and classes that match no token.
# * `x = embedding(x) * sqrt(d_model)`: as in Vaswani et al. (who tie the embedding to the
#   output layer, so its entries are ~d^-1/2 and the product has entries ~1).
# * `x += self.pos_encoder(x)`: a PositionalEncoding module returns `x + p` (E5, PyTorch's
#   tutorial), so this line makes `2x + p`. Harmless in itself, but not `P = E + p`.
# * the encoder has **no mask**: every position attends to every other, including the
#   character it is supposed to predict.
#
# The fixed form (`EncoderLM`): embedding and head of size V, `P = E + p`, and a causal
# mask, which makes it a decoder-only LM in all but name (GPT is the same with pre-LN
# blocks, learned positions and a tied head).

# %%
ch.section("3. E6: the encoder-only Transformer LM, as written (ERRATUM) and fixed")
e6_block, d_model = 32, 32
ch.code(DocTransformer)
max_length = e6_block
doc = DocTransformer(d_model, 2, 64, nn.PositionalEncoding(d_model, max_len=max_length), 0.0,
                     max_length, num_layers=1, seed=0)
ch.show("as written: embedding rows, head outputs (max_length)",
        np.array([doc.embedding.weight.shape[0], doc.fc.weight.shape[0]]))
ch.show("what a character LM of this corpus needs (V)", V)
out_of_range = float(np.mean(train_ids >= max_length))
x_doc = windows(train_ids, max_length)[0]
windows_hit = float(np.mean((x_doc >= max_length).any(axis=1)))
ch.show(f"share of training characters with id >= max_length = {max_length}", out_of_range)
ch.show(f"share of {max_length}-character windows containing one", windows_hit)
word_list = WORD_RE.findall(text[:int(len(text) * TRAIN_FRACTION)].lower())
_, word_counts = np.unique(word_list, return_counts=True)
word_ranks = np.argsort(np.argsort(-word_counts, kind="stable"), kind="stable")
word_share = float(word_counts[word_ranks >= max_length].sum() / word_counts.sum())
ch.show(f"with a word vocabulary ({len(word_counts)} words): share of word tokens with id >= "
        f"{max_length}", word_share)
bad = x_doc[np.argmax((x_doc >= max_length).any(axis=1))][:, None]     # (T, N=1), seq first
try:
    doc(bad)
    error = None
except IndexRangeError as exc:
    error = str(exc)
print(f"as written on a window with such a character -> {type(IndexRangeError()).__name__}: "
      f"{error}")
ch.check("as written, a token id >= max_length cannot be embedded (IndexRangeError)",
         error is not None)

ok_window = x_doc[np.argmin((x_doc >= max_length).any(axis=1))][:, None]
ch.check("where it runs (all ids < max_length), it scores max_length classes, not V",
         doc(ok_window).shape == (max_length, 1, max_length),
         f"output {doc(ok_window).shape}, a LM needs (.., .., {V})")
y_doc = windows(train_ids, max_length)[1]
ch.show(f"share of next-character targets the head cannot score (id >= {max_length})",
        float(np.mean(y_doc >= max_length)))

emb = doc.embedding(ok_window) * math.sqrt(d_model)
doubled = emb + doc.pos_encoder(emb)
ch.check("the document's `x += pos_encoder(x)` gives 2x + p, not x + p (E5)",
         (doubled, 2 * emb.numpy() + doc.pos_encoder.pe[:max_length][:, None, :], 1e-5))
doc.zero_grad()
doc(ok_window).sum().backward()
unused = sum(p.size for p in doc.transformer_layers.parameters()
             if p.grad is None or not np.any(p.grad))
ch.show("parameters as written / never used (the template layer that TransformerEncoder "
        "copies)", np.array([doc.num_parameters(), unused]))
ch.check("the template layer `transformer_layers` gets no gradient",
         unused == sum(p.size for p in doc.transformer_layers.parameters()) > 0)

big = DocTransformer(d_model, 2, 64, nn.PositionalEncoding(d_model, max_len=2 * V), 0.0,
                     2 * V, num_layers=1, seed=0)
x_big = x_val[:4, :e6_block].T
with tl.no_grad():
    p_big = F.softmax(big(x_big), axis=-1).numpy()
dead_mass = float(p_big[..., V:].sum(axis=-1).mean())
ch.show(f"max_length = 2V = {2 * V} (runs): probability on the {V} classes that are no "
        f"token, at init", dead_mass)
ch.check("with max_length > V, about half the initial probability goes to non-tokens",
         0.3 < dead_mass < 0.7)
big.zero_grad()
logits_big = big(x_big)
F.cross_entropy(logits_big.reshape(-1, 2 * V), x_val[:4, 1:e6_block + 1].T.reshape(-1)).backward()
ch.check("... and the embedding rows V .. max_length-1 never get a gradient",
         not np.any(big.embedding.weight.grad[V:]) and np.any(big.embedding.weight.grad[:V]))

ch.code(EncoderLM)
scale_ratio = float(np.linalg.norm(np.random.default_rng(0).standard_normal(d_model))
                    * math.sqrt(d_model) / np.linalg.norm(doc.pos_encoder.pe[5]))
ch.show("|N(0,1) embedding * sqrt(d)| / |p_t| (why EncoderLM starts U(-0.1, 0.1))",
        scale_ratio)
fixed = EncoderLM(V, d_model, 2, 64, 1, e6_block, causal=True, seed=0)
logits_fixed, loss_fixed = fixed(x_val[:4, :e6_block], y_val[:4, :e6_block])
ch.check("fixed: logits (B, T, V) and an initial loss near log V",
         logits_fixed.shape == (4, e6_block, V) and abs(loss_fixed.item() - math.log(V)) < 0.5,
         f"loss {loss_fixed.item():.3f}, log V = {math.log(V):.3f}")

# %% [markdown]
# ### The missing mask: an encoder that reads the answer
#
# Training a language model means, at every position t, predicting w_{t+1} from the input
# w_1..w_T. Without a causal mask position t can attend to position t+1 **of the input**,
# which *is* the target: the cheapest solution is to copy it. We first check the leak
# directly (change input character 10: does the output at positions < 10 change?), then
# train the same encoder twice, with and without the mask, and score each two ways:
#
# * on every position of held-out windows (what its training loss measures), and
# * on the **last** position only, where no next character is in the input: exactly the
#   situation of generation, and an honest score.

# %%
probe = x_val[:1, :e6_block].copy()
probe2 = probe.copy()
probe2[0, 10] = (probe2[0, 10] + 1) % V
leak = {}
for causal in (True, False):
    m = EncoderLM(V, d_model, 2, 64, 1, e6_block, causal=causal, seed=0)
    with tl.no_grad():
        a, b = m(probe)[0].numpy(), m(probe2)[0].numpy()
    leak[causal] = float(np.max(np.abs(a[0, :10] - b[0, :10])))
ch.show("max change of the outputs at positions < 10 when input 10 changes (causal, no mask)",
        np.array([leak[True], leak[False]]))
ch.check("causal mask: no output before position 10 depends on input 10", leak[True] == 0.0)
ch.check("no mask: earlier outputs depend on later inputs (the leak)", leak[False] > 1e-3)

e6_steps = 200 if ch.quick else 800
e6_batches = lm_batches(train_ids, val_ids, e6_block, 8 if ch.quick else 16)
x_e6, y_e6 = windows(val_ids, e6_block, 128 if ch.quick else 512)
e6 = {}
for name, causal in (("causal mask", True), ("no mask", False)):
    model = EncoderLM(V, d_model, 2, 64, 1 if ch.quick else 2, e6_block, causal=causal, seed=1)
    history = train_lm(model, e6_batches, e6_steps, lr=1e-2, eval_interval=e6_steps // 4,
                       eval_iters=2, seed=0)
    nll = model_token_nll(model, x_e6, y_e6)
    sample = generate(model.next_logits, x_val[:1, :16], 80, temperature=1.0, seed=0)
    e6[name] = {"model": model, "history": history,
                "train": history["eval"][-1]["train_loss"],
                "all": float(nll.mean()), "last": float(nll[:, -1].mean()),
                "sample": tok.decode(sample[0, 16:])}
print("  E6 encoder LM      train loss   val NLL, all positions   val NLL, last position "
      "(honest)")
for name, r in e6.items():
    print(f"  {name:16s}  {r['train']:10.3f}   {r['all']:22.3f}   {r['last']:22.3f}")
for name, r in e6.items():
    print(f"  {name} sample (T = 1): {r['sample']!r}")
ch.check("no mask: its loss on all positions is far below the causal model's (it copies)",
         e6["no mask"]["all"] < e6["causal mask"]["all"] - 0.3,
         f"{e6['no mask']['all']:.3f} vs {e6['causal mask']['all']:.3f}")
ch.check("no mask: on the honest last position it is worse than the causal model",
         e6["no mask"]["last"] > e6["causal mask"]["last"],
         f"{e6['no mask']['last']:.3f} vs {e6['causal mask']['last']:.3f}")
ch.check("causal mask: the honest score is close to its all-position score; no mask: far off",
         abs(e6["causal mask"]["last"] - e6["causal mask"]["all"]) + 0.3
         < e6["no mask"]["last"] - e6["no mask"]["all"])

# %% [markdown]
# ## 4. A small GPT, and an LSTM of the same size
#
# `tinylm.models.GPT` is nanoGPT's model: token + learned position embeddings, pre-LN blocks
# of causal self-attention and an MLP, a final LayerNorm, and a head tied to the token
# embedding. It is E6 fixed, with the causal mask built in. We train a small one on the
# characters of the first 90% of the corpus with `tinylm.train.Trainer` (AdamW, warmup and
# cosine decay, gradient clipping) and an LSTM language model (`tinylm.models.RNNLM`) with
# the hidden size that gives the same number of parameters, on the same batches, for the
# same number of steps. Both are then scored on the held-out windows of section 2, each
# window read from scratch (the LSTM starts from a zero state, the GPT sees only the window).
#
# Two checks on the GPT's generation machinery first: with a KV cache each step feeds only
# the new token and reuses the keys and values of the earlier ones, which must give exactly
# the logits of the full forward pass, and the same tokens.

# %%
ch.section("4. A small GPT vs an LSTM of the same size, and the count models")
gpt_cfg = GPTConfig(block_size=block, vocab_size=V, n_layer=1 if ch.quick else 2,
                    n_head=4, n_embd=64, dropout=0.0)
gpt = GPT(gpt_cfg, seed=0)
lstm_hidden = matching_lstm_hidden(V, gpt_cfg.n_embd, gpt.num_parameters())
lstm = RNNLM(V, gpt_cfg.n_embd, lstm_hidden, cell="lstm", seed=0)
ch.show("GPT config", str(gpt_cfg))
ch.show("parameters: GPT, LSTM (embedding 64, hidden "
        f"{lstm_hidden})", np.array([gpt.num_parameters(), lstm.num_parameters()]))
ch.check("the LSTM's parameter count is the formula's, within 2% of the GPT's",
         lstm.num_parameters() == lstm_parameter_count(V, gpt_cfg.n_embd, lstm_hidden)
         and abs(lstm.num_parameters() / gpt.num_parameters() - 1) < 0.02)

steps = 400 if ch.quick else 1000
lr = 5e-3 if ch.quick else 3e-3
batches = lm_batches(train_ids, val_ids, block, 16)
curves = {}
for name, model in (("GPT", gpt), ("LSTM", lstm)):
    curves[name] = train_lm(model, batches, steps, lr=lr, eval_interval=steps // 8,
                            eval_iters=4 if ch.quick else 10, seed=0)
    nll = model_token_nll(model, x_val, y_val)
    results[f"{name} ({model.num_parameters()} parameters, {steps} steps)"] = float(nll.mean())
    if name == "GPT":
        gpt_nll = nll

print(f"\n  validation: {n_targets} characters, the same targets for every model")
print("  model                                      mean NLL (nats)   perplexity")
for name, m in results.items():
    print(f"  {name:42s} {m:15.4f}   {math.exp(m):10.3f}")
ch.check("the GPT's loss fell from about log V to well below it",
         curves["GPT"]["eval"][0]["val_loss"] > math.log(V) - 0.5
         and gpt_nll.mean() < math.log(V) - 2)
ch.check("the trained GPT beats the bigram on validation perplexity",
         gpt_nll.mean() < bi_nll.mean(),
         f"{perplexity(gpt_nll.mean()):.2f} < {perplexity(bi_nll.mean()):.2f}")
lstm_key = [k for k in results if k.startswith("LSTM")][0]
ch.check("the trained LSTM beats the unigram on validation perplexity",
         results[lstm_key] < uni_nll.mean())
ch.check("same targets: the bigram's NLL here is its section 2 value",
         n_targets == len(bi_nll))

prompt = x_val[:2, :10]
with_cache = gpt.generate(prompt, block - 10, temperature=1.0, seed=3, use_cache=True)
without = gpt.generate(prompt, block - 10, temperature=1.0, seed=3, use_cache=False)
ch.check("cached generation = uncached generation (same tokens, same seed)",
         np.array_equal(with_cache, without))
gpt.eval()
with tl.no_grad():
    full = gpt(with_cache, np.zeros_like(with_cache))[0].numpy()[:, 9:-1]
ch.check("KV-cache logits, one token at a time = the full causal forward pass",
         (incremental_logits(gpt, with_cache, 10), full, 1e-4))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
for (name, h), color in zip(curves.items(), ("C0", "C1")):
    it = [r["iter"] for r in h["train"]]
    loss = np.array([r["loss"] for r in h["train"]])
    smooth = np.convolve(loss, np.ones(10) / 10, mode="valid")
    axes[0].plot(it[9:], smooth, color=color, alpha=0.6, label=f"{name} train (10-step mean)")
    axes[0].plot([r["iter"] for r in h["eval"]], [r["val_loss"] for r in h["eval"]], "o-",
                 color=color, label=f"{name} validation")
axes[0].axhline(bi_nll.mean(), color="k", ls="--", lw=1, label="bigram (add-k), validation")
axes[0].axhline(uni_nll.mean(), color="gray", ls=":", lw=1, label="unigram, validation")
axes[0].set_xlabel("step")
axes[0].set_ylabel("cross-entropy (nats / character)")
axes[0].set_title(f"char-level LMs with ~{gpt.num_parameters() // 1000}k parameters")
axes[0].legend(fontsize=8)
for (name, r), color in zip(e6.items(), ("C2", "C3")):
    h = r["history"]
    axes[1].plot([q["iter"] for q in h["eval"]], [q["train_loss"] for q in h["eval"]], "o-",
                 color=color, label=f"E6 encoder, {name}: training loss")
    axes[1].axhline(r["last"], color=color, ls="--",
                    label=f"{name}: honest NLL (last position)")
axes[1].set_xlabel("step")
axes[1].set_title("E6 without a causal mask: low loss, nothing learned")
axes[1].legend(fontsize=8)
ch.savefig(fig, "12_loss_curves.png")

# %% [markdown]
# ## 5. C6: generation, and the sampling strategies compared
#
# Generation runs E1 forwards: feed the prompt, turn the logits z of the next token into a
# distribution, pick a token, append it, repeat (document 002, 3.2.3 names VAEs and GANs;
# text LMs generate this way, autoregressively). How to pick (`tinylm.generate`):
#
# * **greedy**: `argmax_i z_i` (the limit T -> 0);
# * **temperature** T: `p_i proportional to exp(z_i / T) = p_i^(1/T)`: T < 1 sharpens the
#   model's distribution, T > 1 flattens it;
# * **top-k**: keep the k most likely tokens, renormalise;
# * **top-p** (nucleus): keep the smallest set of most likely tokens whose mass reaches p.
#
# We sample a continuation of 4 held-out prompts with each strategy and measure: the model's
# **own NLL** of what it wrote (at T = 1: how surprising the text is to the model itself),
# **distinct-3** (unique character 3-grams / all; low = repetitive), the share of 4-grams
# that **repeat** an earlier one, and the share of **real words** (letter runs found in the
# training text). Since `E_{p_T}[-log p]` grows with T (its derivative is
# `Var_{p_T}(log p) / T^2 >= 0`), sharper sampling gives text the model finds more likely,
# and greedy text is the most likely of all, locally. It is also the most repetitive: once a
# context repeats, greedy makes the same choice again, and it loops forever.

# %%
ch.section("5. C6: sampling strategies compared on the trained GPT")
ch.code(next_token_distribution)
gpt.eval()
with tl.no_grad():
    ctx_logits = gpt(x_val[:1, :block], y_val[:1, :block])[0].numpy()[0]    # (block, V)
p1 = next_token_distribution(ctx_logits, 1.0)
p_half = next_token_distribution(ctx_logits, 0.5)
ch.check("temperature 0.5 gives p^2 renormalised (p_T proportional to p^(1/T))",
         (p_half, p1 ** 2 / (p1 ** 2).sum(axis=1, keepdims=True), 1e-10))
p_k = next_token_distribution(ctx_logits, 1.0, top_k=5)
ch.check("top-k = 5 keeps exactly 5 tokens per row and sums to 1",
         np.all((p_k > 0).sum(axis=1) == 5) and np.allclose(p_k.sum(axis=1), 1.0))
p_p = next_token_distribution(ctx_logits, 1.0, top_p=0.9)
kept_mass = np.where(p_p > 0, p1, 0.0).sum(axis=1)
smallest = np.array([np.searchsorted(np.cumsum(np.sort(row)[::-1]), 0.9) + 1 for row in p1])
ch.check("top-p = 0.9 keeps the smallest set of most likely tokens with mass >= 0.9",
         np.all(kept_mass >= 0.9 - 1e-12) and np.array_equal((p_p > 0).sum(axis=1), smallest))
temps = np.array([0.25, 0.5, 1.0, 1.5, 2.0])
exp_nll = np.array([expected_nll_at_temperature(ctx_logits, t).mean() for t in temps])
ch.show("E_{w ~ p_T}[-log p(w)] over the 64 contexts, T = 0.25, 0.5, 1, 1.5, 2", exp_nll)
ch.check("the expected NLL of a sampled token grows with the temperature",
         np.all(np.diff(exp_nll) > 0))
ch.check("at T = 1 it is the model's entropy H(p)",
         (exp_nll[2], -(p1 * np.log(np.maximum(p1, 1e-300))).sum(axis=1).mean(), 1e-9))

known_words = set(WORD_RE.findall(text[:int(len(text) * TRAIN_FRACTION)].lower()))
prompts = x_val[::max(1, len(x_val) // 4)][:4, :16]
table = sampling_table(gpt, prompts, tok, known_words, seed=0)
print(f"\n  {block - 16} characters after each of 4 held-out prompts of 16")
print("  strategy     own NLL   distinct-3   repeated 4-grams   real words")
for name, r in table.items():
    print(f"  {name:10s} {r['nll']:9.3f}   {r['distinct_3']:10.3f}   {r['repeat_4']:16.3f}"
          f"   {r['words']:10.3f}")
print(f"\n  prompt: {tok.decode(prompts[0])!r}")
for name, r in table.items():
    print(f"  {name:10s} -> {r['texts'][0]!r}")
again = sampling_table(gpt, prompts, tok, known_words, seed=0)
ch.check("same seed, same samples", all(np.array_equal(again[n]["ids"], table[n]["ids"])
                                         for n in table))
ch.check("own NLL: greedy < T=0.5 < T=1.0 < T=1.5",
         table["greedy"]["nll"] < table["T=0.5"]["nll"] < table["T=1.0"]["nll"]
         < table["T=1.5"]["nll"])
ch.check("greedy is the most repetitive (lowest distinct-3, most repeated 4-grams)",
         table["greedy"]["distinct_3"] == min(r["distinct_3"] for r in table.values())
         and table["greedy"]["repeat_4"] == max(r["repeat_4"] for r in table.values()))
ch.check("T = 1.5 writes fewer real words than T = 0.5",
         table["T=1.5"]["words"] < table["T=0.5"]["words"])

n_long = 160 if ch.quick else 400
long_greedy = gpt.generate(prompts, n_long, temperature=0.0)[:, 16:]
long_sampled = gpt.generate(prompts, n_long, temperature=1.0, seed=0)[:, 16:]
periods_greedy = [tail_period(row) for row in long_greedy]
periods_sampled = [tail_period(row) for row in long_sampled]
print(f"\n  {n_long} greedy characters: the loop each row ends in (period in characters)")
for row, period in zip(long_greedy, periods_greedy):
    tail = tok.decode(row[-period:]) if period else "-"
    print(f"  period {period}: {tail!r}")
ch.show("loop periods at T = 1.0 (None: no loop)", str(periods_sampled))
ch.check("greedy decoding ends in a loop for every prompt",
         all(p is not None for p in periods_greedy))
ch.check("sampling at T = 1 does not", all(p is None for p in periods_sampled))

fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
names = list(table)
colors = ["k", "C0", "C1", "C3", "C2", "C4"]
for ax, (key, title) in zip(axes[:4], (("nll", "model's own NLL of the sample"),
                                       ("distinct_3", "distinct-3 (higher: varied)"),
                                       ("repeat_4", "repeated 4-grams"),
                                       ("words", "share of real words"))):
    ax.bar(range(len(names)), [table[n][key] for n in names], color=colors)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
order = np.argsort(-p1[-1])[:15]
for t, style in ((0.5, "C0"), (1.0, "C1"), (1.5, "C3")):
    axes[4].plot(next_token_distribution(ctx_logits[-1], t)[order], "o-", color=style,
                 ms=3, label=f"T = {t}")
axes[4].plot(next_token_distribution(ctx_logits[-1], 1.0, top_p=0.9)[order], "x", color="C4",
             label="top-p = 0.9")
axes[4].set_xticks(range(15))
axes[4].set_xticklabels([repr(tok.decode([i]))[1:-1] or "?" for i in order], fontsize=7)
axes[4].set_title("next-character distribution, one context", fontsize=10)
axes[4].legend(fontsize=7)
fig.suptitle("C6: sampling strategies on the trained GPT", y=1.02)
ch.savefig(fig, "12_sampling.png")

# %% [markdown]
# ## Summary
#
# * E1: a language model is the chain rule; any set of next-token conditionals defines a
#   distribution over sequences (the products sum to 1).
# * Perplexity = exp(mean NLL): uniform over k gives k; on this corpus a bigram already
#   halves the unigram's perplexity several times over, and small neural models go further.
# * E6 as written cannot read a token id >= max_length nor score one; sized by the
#   vocabulary it works, but only with a causal mask: without it the training loss is a
#   mirage, the model copies the next input character and has learned little else.
# * C6: greedy text is what the model finds likeliest, and it loops; temperature trades
#   the model's confidence for variety; top-k and top-p cut the unreliable tail.

# %%
ch.finish()
