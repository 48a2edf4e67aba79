# %% [markdown]
# # Chapter 04: the text pipeline: from raw text to blocks of token ids
#
# A network computes with numbers; a language model reads text. Everything between the two
# is the data pipeline, which the source documents describe in a few lines:
#
# * **B1** (document 001, sections 1-2): collection -> preprocessing -> labelling -> training
#   -> evaluation -> optimisation;
# * **A2** (document 000, 3.2.1): preprocessing is 1. cleaning (remove stop words,
#   punctuation, ...), 2. tokenization (split the text into words), 3. embedding (map each word
#   to a low-dimensional vector);
# * **A4** (000, 3.2.3): split the data into training, validation and test sets;
# * **C14** (002, 5.2): `TEXT.build_vocab(train_data, max_size = 25000, ...)`: a vocabulary
#   capped at 25,000 words;
# * **E2, step 2** (004, 3): split the input into fixed-length sub-sequences processed in
#   parallel.
#
# This chapter runs each step on a real corpus and checks it. The default corpus needs no
# download: Python's own documentation, shipped inside every Python installation (the
# `pydoc_data` topics and the docstrings of the standard library), about 300k words;
# `--corpus PATH` (any UTF-8 file or URL, e.g. tiny Shakespeare or the Penn Treebank) swaps it.
#
# 1. collection: the corpus and its cache;
# 2. cleaning, each step optional and shown;
# 3. Zipf's law: why vocabularies are capped (figure `04_zipf.png`);
# 4. tokenization three ways: characters, words, byte-level BPE (figure
#    `04_bpe_compression.png`);
# 5. the vocabulary capped at 25,000 (C14): what the cap costs;
# 6. embedding as the next step: ids -> rows of a matrix (chapter 05);
# 7. the train / validation / test split (A4);
# 8. fixed-length blocks for a language model (E2 step 2);
# 9. B1's pipeline end to end.

# %%
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinylm as tl
from tinylm.chapter import Chapter, plt
from tinylm.nn import Embedding
from tinylm.text import (STOPWORDS, BPETokenizer, CharTokenizer, Vocab, WordTokenizer, clean,
                         corpus_sentences, default_corpus_info, default_text, lm_blocks,
                         load_text, split_sentences, train_val_test_split)


# %% [markdown]
# ## The tools of this chapter
#
# Small functions the narrative uses and the tests (`tests/test_chapter_04.py`, marker `ch04`)
# check: Zipf's fit, vocabulary coverage, the split and the blocks written out by hand.

# %%
CLEANING_STEPS = [  # (label, options of tinylm.text.clean): each step added to the previous
    ("raw", dict(lower=False, numbers=False, punctuation=False, stopwords=False)),
    ("lower-case", dict(lower=True, numbers=False, punctuation=False, stopwords=False)),
    ("- numbers", dict(lower=True, numbers=True, punctuation=False, stopwords=False)),
    ("- punctuation", dict(lower=True, numbers=True, punctuation=True, stopwords=False)),
    ("- stop words", dict(lower=True, numbers=True, punctuation=True, stopwords=True)),
]


def zipf_fit(counts, lo=10, hi=1000):
    """Zipf's law: the r-th most frequent word occurs about C / r^s times, s close to 1.
    Fit log f = log C - s log r by least squares over ranks lo..hi; returns (s, C)."""
    f = np.sort(np.asarray(counts, dtype=float))[::-1]
    r = np.arange(1, len(f) + 1)
    keep = (r >= lo) & (r <= min(hi, len(f)))
    slope, intercept = np.polyfit(np.log(r[keep]), np.log(f[keep]), 1)
    return -slope, np.exp(intercept)


def coverage(vocab, sentences):
    """The share of running tokens that the vocabulary knows (1 - the <unk> rate)."""
    known = sum(t in vocab.stoi and t not in vocab.specials for s in sentences for t in s)
    return known / max(sum(len(s) for s in sentences), 1)


def split_by_hand(n, fractions=(0.8, 0.1, 0.1), seed=0):
    """A4: shuffle the indices 0..n-1 with a seeded generator and cut them into consecutive
    train / validation / test parts of the given fractions (the rounding goes to train)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(fractions[1] * n), int(fractions[2] * n)
    n_train = n - n_val - n_test
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def blocks_by_hand(ids, block_size):
    """E2 step 2: cut a stream of ids into fixed-length rows; row i is the input
    x = ids[i T : i T + T] and the target y = ids[i T + 1 : i T + T + 1] (the next token).
    The incomplete tail is dropped. Returns x, y of shape (n_blocks, T)."""
    ids = np.asarray(ids, dtype=np.int64)
    n = (len(ids) - 1) // block_size
    x = ids[:n * block_size].reshape(n, block_size)
    y = ids[1:n * block_size + 1].reshape(n, block_size)
    return x, y


def stream_with_eos(vocab, sentences):
    """All sentences as one id stream, each followed by <eos> (so a model learns to end)."""
    out = []
    for s in sentences:
        out.extend(vocab.encode(s).tolist())
        out.append(vocab.eos_id)
    return np.array(out, dtype=np.int64)


# %%
ch = Chapter(4, "The text pipeline: cleaning, tokenizers, vocabulary, splits, blocks")

# %% [markdown]
# ## 1. B1, collection: the corpus
#
# The default corpus is built on first use (parsing the standard library's sources with
# `ast`, never importing them) and cached under `~/.cache/tinylm` (or `$TINYLM_CACHE`); later
# runs read the cache in a fraction of a second. Its text is cleaned into sentences of
# lower-case words (section 2 shows how).

# %%
ch.section("1. B1  Collection: the corpus")
start = time.perf_counter()
if ch.corpus is None:
    raw = default_text()
    info = default_corpus_info()
    ch.show("corpus", "Python's documentation in the standard library (pydoc topics + "
            "docstrings)")
    ch.show("built from scratch or read from the cache", "cache" if info["from_cache"]
            else "built")
    ch.show("seconds to get it (this run)", info["seconds"])
    ch.show("cache file", info["cache"])
else:
    raw = load_text(ch.corpus)
    ch.show("corpus", ch.corpus)
sentences = corpus_sentences(ch.corpus)
n_tokens = sum(len(s) for s in sentences)
ch.show("characters", len(raw))
ch.show("white-space words (raw)", len(raw.split()))
ch.show("sentences after cleaning", len(sentences))
ch.show("tokens after cleaning", n_tokens)
print("first sentences:", *[" ".join(s) for s in sentences[:3]], sep="\n  ")
ch.check("the corpus has sentences and every sentence has tokens",
         len(sentences) > 0 and all(sentences))

# %% [markdown]
# ## 2. A2 step 1: cleaning, each step optional
#
# `tinylm.text.clean(text, lower, numbers, punctuation, stopwords)` applies the steps in this
# order; each can be switched off. What each does to one sentence, and to the whole corpus:
#
# * lower-casing merges "The" and "the" (fewer distinct words, but "Apple" the company and
#   "apple" the fruit merge too);
# * numbers are removed (or replaced by a word such as `N`, as in the Penn Treebank);
# * punctuation is removed, except an apostrophe or hyphen inside a word (`don't`);
# * stop words (`tinylm.text.STOPWORDS`, our own list of ~190 English function words) are
#   removed. Useful for bag-of-words classification; harmful for a language model, which must
#   predict "the" too: so it is off by default.

# %%
ch.section("2. A2 step 1  Cleaning, step by step")
ch.code(clean)
sample = ("The 3 functions don't return None; they raise ValueError (see PEP 8) "
          "if the input is empty!")
print(f"{'step':<15} result")
previous = None
for label, options in CLEANING_STEPS:
    result = clean(sample, **options)
    print(f"{label:<15} {result}")
    previous = result
ch.check("all steps off: clean(x) == x", clean(sample, **CLEANING_STEPS[0][1]) == sample)
ch.check("after every step, no digit, no punctuation mark and no stop word is left",
         not any(c.isdigit() for c in previous)
         and all(c.isalnum() or c in " '-" for c in previous)
         and not set(previous.split()) & STOPWORDS)
n_chars = 60_000 if ch.quick else 200_000
sub = split_sentences(raw[:n_chars])
print(f"\n{'step':<15} {'tokens':>9} {'distinct':>9}   (first {n_chars} characters of the corpus)")
sizes = []
for label, options in CLEANING_STEPS:
    toks = [t for s in sub for t in clean(s, **options).split()]
    sizes.append((len(toks), len(set(toks))))
    print(f"{label:<15} {len(toks):>9} {len(set(toks)):>9}")
stop_share = 1 - sizes[-1][0] / sizes[-2][0]
ch.show("share of the (cleaned) tokens that are stop words", stop_share)
ch.check("lower-casing shrinks the set of distinct words", sizes[1][1] < sizes[0][1])
ch.check("stop words are a large share of running text (20-70%)", 0.2 < stop_share < 0.7)

# %% [markdown]
# ## 3. Zipf's law: a few words are everywhere, most words are rare
#
# Sort the words by frequency. The r-th most frequent occurs about `C / r^s` times with `s`
# close to 1 (Zipf, 1935): a straight line of slope `-s` on a log-log plot. So a handful of
# words cover most of the text, and half of the distinct words occur once or twice. This is
# why a vocabulary can be capped (section 5) and why rare words need subwords (section 4).

# %%
ch.section("3. Zipf's law on the corpus")
ch.formula("f(r) ~ C / r^s,   log f = log C - s log r")
ch.code(zipf_fit)
word_counts = Counter(t for s in sentences for t in s)
freqs = np.array(sorted(word_counts.values(), reverse=True))
s_fit, C_fit = zipf_fit(freqs)
once = float(np.mean(freqs <= 2))
top100 = freqs[:100].sum() / freqs.sum()
ch.show("distinct words", len(freqs))
ch.show("Zipf exponent s (ranks 10..1000)", s_fit)
ch.show("share of distinct words seen at most twice", once)
ch.show("share of running words covered by the 100 most frequent", top100)
print("the ten most frequent:", ", ".join(f"{w} ({n})" for w, n in word_counts.most_common(10)))
ch.check("Zipf exponent close to 1 (0.7 < s < 1.3)", 0.7 < s_fit < 1.3)
ch.check("the 100 most frequent words cover over a third of the text", top100 > 1 / 3)
fig, ax = plt.subplots(figsize=(5.5, 4))
ranks = np.arange(1, len(freqs) + 1)
ax.loglog(ranks, freqs, ".", ms=2, label="corpus")
ax.loglog(ranks, C_fit / ranks ** s_fit, "-", lw=1, label=f"C / r^{s_fit:.2f}")
ax.axvline(25000, color="gray", ls=":", label="C14 cap 25,000")
ax.set_xlabel("rank r")
ax.set_ylabel("frequency f(r)")
ax.set_title("Zipf's law (rank / frequency, log-log)")
ax.legend()
ch.savefig(fig, "04_zipf.png")

# %% [markdown]
# ## 4. A2 step 2: tokenization, three ways
#
# All three tokenizers share one interface: `Tok.train(texts, ...)`, `encode(str) ->
# list[int]`, `decode(ids) -> str`, `vocab_size`, `save`/`load` (JSON).
#
# * `CharTokenizer`: one id per character: a tiny vocabulary, long sequences; an unseen
#   character becomes `<unk>` (decoded as U+FFFD);
# * `WordTokenizer`: one id per word or punctuation mark: short sequences, a huge vocabulary,
#   and every unseen word is `<unk>`;
# * `BPETokenizer`, byte-level byte-pair encoding: start from the 256 byte values, and
#   repeatedly merge the most frequent adjacent pair into a new token. Frequent words become
#   one token, rare words split into pieces, and any text at all (Chinese, emoji) encodes
#   with no `<unk>` and decodes back exactly.

# %%
ch.section("4. A2 step 2  Tokenization: characters, words, BPE")
text_subset = raw[:200_000] if ch.quick else raw
sentence = "Tokenizers split unbelievably long words, e.g. 'untokenizable', into pieces."
char_tok = CharTokenizer.train(text_subset)
word_tok = WordTokenizer.train(text_subset, min_count=2)
start = time.perf_counter()
bpe_max = 600 if ch.quick else 4000
bpe_tok = BPETokenizer.train(text_subset, vocab_size=bpe_max)
train_seconds = time.perf_counter() - start
ch.show("BPE training seconds", train_seconds)
ch.show(f"BPE on {len(text_subset.split())} words: merges learned", len(bpe_tok.merges))
print("the first 12 merges:", [bpe_tok.token_strings([256 + k])[0]
                               for k in range(12)])
for name, tok in [("char", char_tok), ("word", word_tok), ("BPE", bpe_tok)]:
    ids = tok.encode(sentence)
    pieces = (bpe_tok.token_strings(ids) if tok is bpe_tok
              else [tok.vocab.itos[i] for i in ids])
    print(f"\n{name}: vocab_size {tok.vocab_size}, {len(ids)} tokens")
    print("  ", pieces[:30])
    print("   decoded:", tok.decode(ids))
ch.check("BPE: decode(encode(x)) == x", bpe_tok.decode(bpe_tok.encode(sentence)) == sentence)
ch.check("word tokenizer: the unseen word becomes <unk>",
         word_tok.vocab.unk_id in word_tok.encode(sentence))
zh = "大规模语言模型先把文本切成词元，再把词元映射为向量。🙂"
zh_ids = bpe_tok.encode(zh)
ch.show("a Chinese sentence through the English-trained BPE: bytes, tokens",
        np.array([len(zh.encode("utf-8")), len(zh_ids)]))
ch.check("BPE round-trips Chinese and emoji exactly (no <unk> needed)",
         bpe_tok.decode(zh_ids) == zh)
ch.check("char tokenizer: unseen characters decode to U+FFFD, known ones exactly",
         char_tok.decode(char_tok.encode("a" + zh[0])) == "a\ufffd")

# %% [markdown]
# **Compression against vocabulary size.** Greedy BPE training is a prefix process: the first
# k merges of a 4000-token run are exactly what a run stopped at 256 + k learns. So one
# training gives every smaller tokenizer, and we can measure bytes per token and tokens per
# word as the vocabulary grows.

# %%
sizes_bpe = [256, 300, 400, 600] + ([1000, 2000, 4000] if not ch.quick else [])
small = BPETokenizer.train(text_subset, vocab_size=300)
ch.check("the first 44 merges of the big run == a run stopped at vocab_size 300",
         small.merges == bpe_tok.merges[:44])
eval_text = text_subset[:50_000]
n_words, n_bytes = len(eval_text.split()), len(eval_text.encode("utf-8"))
rows = []
for v in sizes_bpe:
    tok_v = BPETokenizer(bpe_tok.merges[:v - 256])
    n_ids = len(tok_v.encode(eval_text))
    rows.append((v, n_bytes / n_ids, n_ids / n_words))
print(f"{'vocab size':>10} {'bytes/token':>12} {'tokens/word':>12}")
for v, bpt, tpw in rows:
    print(f"{v:>10} {bpt:>12.3f} {tpw:>12.3f}")
start = time.perf_counter()
bpe_tok.encode(text_subset)
enc_seconds = time.perf_counter() - start
ch.show(f"encode speed at vocab {bpe_tok.vocab_size} (words per second)",
        len(text_subset.split()) / enc_seconds)
ch.check("vocab 256 is one token per byte", abs(rows[0][1] - 1) < 1e-12)
ch.check("more merges, fewer tokens: tokens per word falls at every size",
         all(a[2] > b[2] for a, b in zip(rows, rows[1:])))
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.plot([r[0] for r in rows], [r[2] for r in rows], "o-", label="tokens per word")
ax.plot([r[0] for r in rows], [r[1] for r in rows], "s-", label="bytes per token")
ax.set_xscale("log")
ax.set_xlabel("BPE vocabulary size")
ax.set_title("BPE compression against vocabulary size")
ax.legend()
ch.savefig(fig, "04_bpe_compression.png")

# %% [markdown]
# ## 5. C14: a vocabulary capped at 25,000
#
# Document 002 builds its vocabulary with `max_size = 25000` (C14). `tinylm.text.Vocab` does
# the same: the specials `<pad> <unk> <bos> <eos>` get ids 0-3, then the words by frequency,
# cut at `max_size` (specials included). Every word beyond the cap becomes `<unk>`. Because
# of Zipf's law the cap costs little: the words it drops are the rare ones. The counts stay
# in the table (`vocab.counts`): word2vec's subsampling and negative-sampling table
# (chapter 06) are built from them.

# %%
ch.section("5. C14  The vocabulary capped at 25,000")
ch.code(coverage)
full = Vocab(word_counts)
capped = Vocab(word_counts, max_size=25000)
ch.show("distinct words + 4 specials", len(full))
ch.show("len(Vocab(max_size=25000))", len(capped))
caps = [c for c in (500, 1000, 5000, 10000, 25000) if c < len(full)] + [len(full)]
cov_sentences = sentences[:5000] if ch.quick else sentences
print(f"{'max_size':>9} {'coverage of running tokens':>27}   ({len(cov_sentences)} sentences)")
covs = []
for cap in caps:
    covs.append(coverage(Vocab(word_counts, max_size=cap), cov_sentences))
    print(f"{cap:>9} {covs[-1]:>27.4f}")
ch.check("the capped vocabulary has min(25000, words + 4) entries",
         len(capped) == min(25000, len(word_counts) + 4))
ch.check("ids 0-3 are <pad> <unk> <bos> <eos>", capped.itos[:4] == ["<pad>", "<unk>", "<bos>",
                                                                    "<eos>"])
ch.check("coverage grows with the cap and the full table covers everything",
         all(a <= b for a, b in zip(covs, covs[1:])) and abs(covs[-1] - 1) < 1e-12)
ch.check("counts are kept, most frequent first",
         bool(np.all(np.diff(capped.counts[4:]) <= 0))
         and capped.counts[4] == word_counts.most_common(1)[0][1])

# %% [markdown]
# ## 6. A2 step 3: embedding, the next step
#
# After tokenization a sentence is a list of ids. Embedding maps each id to a row of a
# matrix `W` (A5, `word_embedding(x) = W vec(x)`): chapter 05 derives it. Here we only check
# the shape of the hand-off: a (batch, time) array of ids becomes a (batch, time, dim) array
# of vectors, and looking a row up equals multiplying a one-hot vector by `W` (A10).

# %%
ch.section("6. A2 step 3  Embedding: ids -> vectors (chapter 05)")
ids_batch = np.stack([capped.encode(s[:6]) for s in sentences if len(s) >= 6][:2])
emb = Embedding(len(capped), 8, seed=0, dtype=np.float64)
vectors = emb(tl.Tensor(ids_batch))
one_hot = np.eye(len(capped))[ids_batch]
ch.show("ids (batch 2, time 6)", ids_batch)
ch.show("embedded shape", str(vectors.shape))
ch.check("embedding(ids) == one_hot(ids) @ W",
         (vectors.numpy(), one_hot @ emb.weight.numpy(), 1e-12))

# %% [markdown]
# ## 7. A4: training, validation and test sets
#
# A4 splits the data three ways: the model learns on the training set, choices
# (hyper-parameters, when to stop) are made on the validation set, and the test set is looked
# at once, at the end, to report an honest number. The split is by whole sentences, after a
# seeded shuffle (the same seed gives the same split), and the vocabulary is built on the
# training part only: a word that appears only in the test set must be `<unk>`, as it would
# be for new text.

# %%
ch.section("7. A4  Train / validation / test split")
ch.code(split_by_hand)
train_idx, val_idx, test_idx = split_by_hand(len(sentences), (0.8, 0.1, 0.1), seed=0)
ch.show("sizes (train, validation, test)",
        np.array([len(train_idx), len(val_idx), len(test_idx)]))
all_idx = np.concatenate([train_idx, val_idx, test_idx])
ch.check("the three parts are disjoint and cover every sentence",
         len(set(all_idx.tolist())) == len(sentences) == len(all_idx))
ch.check("the same seed gives the same split",
         all(np.array_equal(a, b) for a, b in zip(split_by_hand(len(sentences), seed=0),
                                                  (train_idx, val_idx, test_idx))))
library_split = train_val_test_split(np.arange(len(sentences)), (0.8, 0.1, 0.1), seed=0)
ch.check("tinylm.text.train_val_test_split gives the same split",
         all(np.array_equal(a, b) for a, b in zip(library_split,
                                                  (train_idx, val_idx, test_idx))))
train_vocab = Vocab.build([sentences[i] for i in train_idx], max_size=25000)
for name, idx in (("train", train_idx), ("validation", val_idx), ("test", test_idx)):
    ch.show(f"<unk> rate on {name} (vocabulary from train)",
            1 - coverage(train_vocab, [sentences[i] for i in idx]))

# %% [markdown]
# ## 8. E2 step 2: fixed-length blocks
#
# A language model is trained on windows of `T` tokens, many at once. The sentences become one
# stream of ids (each followed by `<eos>`), cut into rows of `T`: the input is
# `x = ids[iT : iT + T]` and the target the same window one token later,
# `y = ids[iT + 1 : iT + T + 1]`: at every position the model predicts the next token. The rows
# are independent, so a batch of them is processed in parallel (E2: "split into fixed-length
# sub-sequences processed in parallel").

# %%
ch.section("8. E2 step 2  Fixed-length blocks for a language model")
ch.code(blocks_by_hand)
stream = stream_with_eos(train_vocab, [sentences[i] for i in train_idx[:2000]])
T_block = 16
x_blocks, y_blocks = blocks_by_hand(stream, T_block)
ch.show("stream length", len(stream))
ch.show("blocks (n, T)", str(x_blocks.shape))
print("block 0 in words:", " ".join(train_vocab.decode(x_blocks[0])))
ch.check("every row is T long and there are (len - 1) // T rows",
         x_blocks.shape == y_blocks.shape == ((len(stream) - 1) // T_block, T_block))
ch.check("the target is the input shifted by one token",
         np.array_equal(x_blocks[:, 1:], y_blocks[:, :-1])
         and np.array_equal(x_blocks.reshape(-1)[1:], y_blocks.reshape(-1)[:-1]))
x_lib, y_lib = lm_blocks(stream, T_block)
ch.check("tinylm.text.lm_blocks gives the same blocks",
         np.array_equal(x_lib, x_blocks) and np.array_equal(y_lib, y_blocks))

# %% [markdown]
# ## 9. B1 end to end
#
# Collection (section 1) -> preprocessing: cleaning (2), tokenization (4), vocabulary (5),
# ids -> vectors (6) -> the split (7) and batches of blocks (8) feed training and
# evaluation (chapters 05-13). Labelling belongs to supervised tasks (chapter 13's
# classifier); a language model's labels are the text itself, shifted by one (section 8).

# %%
ch.section("9. B1  The pipeline end to end")
print(f"{'stage':<28} result")
print(f"{'collection':<28} {len(raw.split())} raw words")
print(f"{'cleaning + sentences':<28} {len(sentences)} sentences, {n_tokens} tokens")
print(f"{'vocabulary (train, C14)':<28} {len(train_vocab)} entries")
print(f"{'split (A4)':<28} {len(train_idx)} / {len(val_idx)} / {len(test_idx)} sentences")
print(f"{'blocks (E2 step 2)':<28} {x_blocks.shape[0]} rows of {T_block} ids")
ch.check("every id in the blocks is inside the vocabulary",
         0 <= x_blocks.min() and x_blocks.max() < len(train_vocab))

# %%
ch.finish()
