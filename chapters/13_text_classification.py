# %% [markdown]
# # Chapter 13: text classification
#
# A classifier reads a sentence and names its class: positive or negative, which package
# wrote this docstring. The documents build one several times:
#
# * A4 (document 000, 3.2.3) scores it: accuracy, precision, recall, F1 (and the confusion
#   matrix they come from);
# * A14 (document 000, 5.2) writes a Keras model `Embedding(10000, 128) -> LSTM(128,
#   return_sequences=True) -> Dense(128, relu) -> Dense(1, sigmoid)` with binary
#   cross-entropy and Adam, and A15 (5.4) fits it 10 epochs with batch 32 and reports test
#   accuracy. **An erratum**: the text calls it "BERT", but it is an LSTM; and because the
#   LSTM returns *every* time step, the head makes one prediction *per token*: the output is
#   (batch, T, 1), not the (batch, 1) the text says. A sentence needs one vector: the last
#   real step, or the mean or max over the steps (section 2);
# * C14 (document 002, 5.2) is the PyTorch pipeline: vocabulary capped at 25,000,
#   pretrained 100-d vectors, batches of 64, a 2-layer LSTM (hidden 128, dropout 0.5), Adam
#   1e-3, `BCEWithLogitsLoss`, validation accuracy. **An erratum**: its output has
#   `len(LABEL.vocab)` units and is read by argmax, i.e. a multi-class output, but trained
#   with BCE: binary -> one logit + BCE; multi-class -> softmax cross-entropy (section 5);
# * A12 (document 000, 4.3.1) is the real BERT-style classifier: tokenize, embed, encode
#   with a Transformer, softmax over the classes (section 6).
#
# The data needs no files: `tinylm.datasets.stdlib_docstrings`, docstrings of four
# standard-library packages (asyncio, email, unittest, xml), each labelled with its package
# (a 4-class task); its binary version keeps asyncio vs email. With `--corpus PATH` (a
# folder with SST-2's `train.tsv`/`dev.tsv`, an rt-polarity folder, or a `text<TAB>label`
# file), or in a full run when `../shared/data/sentiment/sst2` exists, section 7 trains the
# best LSTM on that sentiment data and reports its dev accuracy.

# %%
import sys
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinylm as tl
from tinylm import functional as F
from tinylm import optim
from tinylm.chapter import Chapter, plt
from tinylm.datasets import (DATA_DIR, STDLIB_PACKAGES, load_labelled_tsv, load_rt_polarity,
                             load_sst2, stdlib_docstrings)
from tinylm.embeddings import Word2Vec
from tinylm.errors import ShapeError, TinyLMError
from tinylm.metrics import accuracy, confusion_matrix, precision_recall_f1
from tinylm.models import LSTMClassifier, TransformerClassifier
from tinylm.text import WordTokenizer, bucket_batches, pad_sequences, train_val_test_split

# %% [markdown]
# ## The tools of this chapter
#
# A4's metrics counted by hand, the losses of each variant (A14's per-token BCE, binary BCE,
# C14's BCE on one-hot targets, softmax CE), one training loop (A15's "fit N epochs, batch
# 32"), the prediction rule of each variant, C14's pretrained word2vec embedding, and the
# calibration numbers of section 5. The tests (`tests/test_chapter_13.py`, marker `ch13`)
# use them.

# %%
LOSSES = ("bce", "ce", "bce_onehot", "bce_tokens")
MAX_VOCAB = 25_000          # C14: TEXT.build_vocab(train_data, max_size=25000, ...)
SST2_DIR = DATA_DIR / "sentiment" / "sst2"


def metrics_by_hand(y_true, y_pred, positive=1):
    """A4 by counting: TP, FP, FN, TN of class ``positive`` (one-vs-rest), then
    accuracy = (TP + TN) / N, precision = TP / (TP + FP), recall = TP / (TP + FN),
    F1 = 2 P R / (P + R) (the harmonic mean), a 0/0 ratio counted as 0."""
    tp = fp = fn = tn = 0
    for t, p in zip(y_true, y_pred):
        if p == positive:
            tp, fp = tp + (t == positive), fp + (t != positive)
        else:
            fn, tn = fn + (t == positive), tn + (t != positive)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "accuracy": (tp + tn) / len(y_true),
            "precision": precision, "recall": recall, "f1": f1}


def confusion_by_hand(y_true, y_pred, num_classes):
    """M[i][j] = how many examples of true class i were predicted as class j."""
    m = [[0] * num_classes for _ in range(num_classes)]
    for t, p in zip(y_true, y_pred):
        m[t][p] += 1
    return m


def encode_texts(tokenizer, texts, max_len):
    """Token ids of each text, cut to ``max_len``; an empty text becomes one <unk>."""
    unk = tokenizer.vocab.stoi["<unk>"]
    return [tokenizer.encode(t)[:max_len] or [unk] for t in texts]


def binary_subset(texts, labels, keep=(0, 1)):
    """The examples of classes ``keep[0]`` (-> 0) and ``keep[1]`` (-> 1) only."""
    rows = [i for i, y in enumerate(labels) if y in keep]
    return [texts[i] for i in rows], [keep.index(labels[i]) for i in rows]


def per_token_bce(token_logits, labels, lengths):
    """A14 as written, made to run: the head gives one logit per token, (B, T); Keras
    broadcasts the sentence label y (B,) to every step, so the loss is
    sum_{b, t < len_b} BCE(sigmoid(z_bt), y_b) / sum_b len_b (padding left out)."""
    B, T = token_logits.shape
    mask = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    target = np.broadcast_to(np.asarray(labels, dtype=np.float32)[:, None], (B, T))
    each = F.binary_cross_entropy_with_logits(token_logits, target, reduction="none")
    return (each * mask).sum() / float(mask.sum())


def classification_loss(out, labels, kind, lengths=None):
    """The loss of each variant: ``"bce"`` one logit (B,) + BCE-with-logits (binary);
    ``"ce"`` logits (B, C) + softmax cross-entropy; ``"bce_onehot"`` logits (B, C) +
    BCE-with-logits on one-hot targets (C14's code); ``"bce_tokens"`` (B, T) per-token
    logits + A14's broadcast BCE."""
    labels = np.asarray(labels)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(out, labels.astype(np.float32))
    if kind == "ce":
        return F.cross_entropy(out, labels)
    if kind == "bce_onehot":
        onehot = np.eye(out.shape[-1], dtype=np.float32)[labels]
        return F.binary_cross_entropy_with_logits(out, onehot)
    if kind == "bce_tokens":
        return per_token_bce(out, labels, lengths)
    raise TinyLMError(f"classification_loss: kind must be one of {LOSSES}, got {kind!r}")


def sigmoid_np(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax_np(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@tl.no_grad()
def predict_logits(model, sequences, batch_size=256):
    """Logits for every sequence, in order: (N,) / (N, C) for pooled models; for per-token
    models (N, T_max) with T_max the longest sequence (padding positions hold junk), and
    the lengths (N,)."""
    model.eval()
    T = max(len(s) for s in sequences)
    out = []
    for start in range(0, len(sequences), batch_size):
        ids, lengths = pad_sequences(sequences[start:start + batch_size], max_len=T)
        out.append(model(ids, lengths).numpy())
    return np.concatenate(out), np.array([len(s) for s in sequences])


def probabilities(logits, kind, lengths=None):
    """The model's class probabilities, (N, C): binary kinds give [1 - p, p]; ``"ce"`` the
    softmax; ``"bce_onehot"`` the C independent sigmoids (they need not sum to 1);
    ``"bce_tokens"`` the mean of the per-token probabilities over the real tokens."""
    if kind == "ce":
        return softmax_np(logits)
    if kind == "bce_onehot":
        return sigmoid_np(logits)
    if kind == "bce_tokens":
        mask = np.arange(logits.shape[1])[None, :] < lengths[:, None]
        p = (sigmoid_np(logits) * mask).sum(axis=1) / lengths
    else:
        p = sigmoid_np(logits)
    return np.stack([1 - p, p], axis=1)


def predict(model, sequences, kind):
    """Predicted labels: argmax of ``probabilities`` (for one logit: p > 0.5)."""
    logits, lengths = predict_logits(model, sequences)
    return probabilities(logits, kind, lengths).argmax(axis=1)


def train_classifier(model, train, val, kind, epochs, batch_size=32, lr=1e-3, seed=0,
                     grad_clip=5.0):
    """A15: fit ``epochs`` passes over ``train = (sequences, labels)`` in length-bucketed
    batches (shuffled with ``seed`` + epoch), Adam(lr), gradient norm clipped; after each
    epoch the validation accuracy. Returns {"loss": [...], "val_accuracy": [...]}."""
    seqs, labels = train
    opt = optim.Adam(model.parameters(), lr=lr)
    history = {"loss": [], "val_accuracy": []}
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for ids, lengths, y in bucket_batches(seqs, labels, batch_size, seed=seed + epoch):
            loss = classification_loss(model(ids, lengths), y, kind, lengths)
            opt.zero_grad()
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            total += loss.item() * len(y)
        history["loss"].append(total / len(seqs))
        history["val_accuracy"].append(accuracy(val[1], predict(model, val[0], kind)))
    return history


def pretrained_vectors(tokenizer, token_lists, dim=100, epochs=10, seed=0):
    """C14's "pretrained 100-d vectors", trained here: word2vec (skip-gram, negative
    sampling) on the training sentences; row i of the result is the vector of vocabulary
    word i, or N(0, 0.1^2) noise for words word2vec did not keep (and zeros for <pad>).
    Returns (matrix (V, dim) float32, share of the vocabulary covered)."""
    w2v = Word2Vec(token_lists, vector_size=dim, window=5, min_count=1, sg=1, negative=5,
                   epochs=epochs, workers=1, seed=seed)
    rng = np.random.default_rng(seed)
    itos = tokenizer.vocab.itos
    matrix = rng.normal(0.0, 0.1, (len(itos), dim)).astype(np.float32)
    found = 0
    for i, word in enumerate(itos):
        if word in w2v.wv:
            matrix[i] = w2v.wv[word]
            found += 1
    matrix[tokenizer.vocab.stoi["<pad>"]] = 0.0
    return matrix, found / len(itos)


def calibration(probs, labels, bins=10):
    """Numbers for section 5: the mean and max |sum_c p_c - 1|, the NLL of the true class after
    dividing by the row sum, and the expected calibration error (ECE: |confidence -
    accuracy| of the argmax, averaged over ``bins`` equal-width confidence bins, weighted
    by their share of examples)."""
    labels = np.asarray(labels)
    sums = probs.sum(axis=1)
    normalised = probs / sums[:, None]
    nll = float(-np.mean(np.log(np.clip(normalised[np.arange(len(labels)), labels], 1e-12,
                                        None))))
    confidence, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.minimum((confidence * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        rows = edges == b
        if rows.any():
            ece += rows.mean() * abs(confidence[rows].mean() - (pred[rows] == labels[rows]).mean())
    return {"mean_abs_sum_minus_1": float(np.mean(np.abs(sums - 1))),
            "max_abs_sum_minus_1": float(np.max(np.abs(sums - 1))), "nll": nll,
            "ece": float(ece), "accuracy": float(np.mean(pred == labels))}


def sentiment_data(source, seed=0):
    """{"train": (texts, labels), "dev": (texts, labels)} from an SST-2 folder (train.tsv,
    dev.tsv), an rt-polarity folder (seeded 90/10 split) or a text<TAB>label file (seeded
    90/10 split)."""
    path = Path(source)
    if path.is_dir() and (path / "train.tsv").is_file():
        return {s: load_sst2(path, s) for s in ("train", "dev")}
    if path.is_dir() and (path / "rt-polarity.pos").is_file():
        return {s: load_rt_polarity(path, s, seed=seed) for s in ("train", "dev")}
    if path.is_dir():
        raise TinyLMError(f"chapter 13: {path} holds neither train.tsv/dev.tsv (SST-2) nor "
                          f"rt-polarity.pos/.neg")
    texts, labels = load_labelled_tsv(source)
    train, dev, _ = train_val_test_split(list(range(len(texts))), (0.9, 0.1, 0.0), seed=seed,
                                         stratify=labels)
    return {s: ([texts[i] for i in rows], [labels[i] for i in rows])
            for s, rows in (("train", train), ("dev", dev))}


# %%
ch = Chapter(13, "Text classification: metrics, LSTM classifiers, BCE vs CE, a BERT-style "
                 "encoder")
quick = ch.quick
max_len = 24 if quick else 48           # tokens kept per docstring
n_epochs = 2 if quick else 10           # A15: 10 epochs
learning_rate = 3e-3 if quick else 1e-3  # the documents' Adam 1e-3; --quick: bigger steps
width = 32 if quick else 128            # A14: Embedding(.., 128), LSTM(128), Dense(128)

# %% [markdown]
# ## 1. A4: accuracy, precision, recall, F1
#
# For one class (the "positive" one), every prediction falls in one of four cells: true
# positive (predicted positive, is positive), false positive, false negative, true negative.
#
# * accuracy = (TP + TN) / N: the share right;
# * precision = TP / (TP + FP): of what we called positive, how much was;
# * recall = TP / (TP + FN): of what was positive, how much we found;
# * F1 = 2PR / (P + R): the harmonic mean, low when either one is low.
#
# For C classes, the confusion matrix M (rows: true class, columns: predicted class) holds
# all of it: TP_c = M[c, c], FP_c = column c minus TP_c, FN_c = row c minus TP_c; "macro"
# averages the per-class numbers.

# %%
ch.section("A4  metrics by hand vs tinylm.metrics")
ch.formula("accuracy = (TP + TN) / N    precision = TP / (TP + FP)",
           "recall = TP / (TP + FN)     F1 = 2 P R / (P + R)")
ch.code(metrics_by_hand)
y_true = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
y_pred = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
hand = metrics_by_hand(y_true, y_pred)
ch.show("y_true", np.array(y_true))
ch.show("y_pred", np.array(y_pred))
ch.note(f"TP = {hand['tp']}, FP = {hand['fp']}, FN = {hand['fn']}, TN = {hand['tn']}: "
        f"accuracy = (3 + 4) / 10 = {hand['accuracy']:.2f}, precision = 3 / 5 = "
        f"{hand['precision']:.2f}, recall = 3 / 4 = {hand['recall']:.2f}, "
        f"F1 = 2 * 0.6 * 0.75 / 1.35 = {hand['f1']:.4f}")
p, r, f1 = precision_recall_f1(y_true, y_pred)
ch.check("by hand == tinylm.metrics (accuracy, precision, recall, F1)",
         ((hand["accuracy"], hand["precision"], hand["recall"], hand["f1"]),
          (accuracy(y_true, y_pred), p, r, f1), 1e-12))
ch.check("F1 of the example is 2/3 (P = 0.6, R = 0.75)", (hand["f1"], 2 / 3, 1e-12))

y3_true = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
y3_pred = [0, 0, 1, 1, 1, 2, 2, 2, 0, 2]
M = confusion_matrix(y3_true, y3_pred)
ch.show("confusion matrix (rows true, columns predicted)", M)
ch.check("the confusion matrix by hand == tinylm.metrics.confusion_matrix",
         (np.array(confusion_by_hand(y3_true, y3_pred, 3)), M, 0))
per_class = [metrics_by_hand(y3_true, y3_pred, positive=c) for c in range(3)]
macro = precision_recall_f1(y3_true, y3_pred, average="macro")
ch.show("per-class F1 (one-vs-rest, by hand)", np.array([m["f1"] for m in per_class]))
ch.check("macro P, R, F1 = the mean of the per-class ones (by hand)",
         (np.array(macro), np.array([np.mean([m[k] for m in per_class])
                                     for k in ("precision", "recall", "f1")]), 1e-12))

# %% [markdown]
# **Why accuracy misleads on imbalanced data.** 95 negatives and 5 positives: a "classifier"
# that always says negative is 95 % accurate, and finds none of the positives.

# %%
ch.section("A4  accuracy on imbalanced data")
y_imb = np.array([1] * 5 + [0] * 95)
always_no = np.zeros(100, dtype=np.int64)
lazy = metrics_by_hand(y_imb, always_no)
ch.note(f"always 'negative': accuracy {lazy['accuracy']:.2f}, precision {lazy['precision']:.2f}, "
        f"recall {lazy['recall']:.2f}, F1 {lazy['f1']:.2f}")
ch.check("the constant classifier: accuracy 0.95 but recall 0 and F1 0",
         lazy["accuracy"] == 0.95 and lazy["recall"] == 0 and lazy["f1"] == 0)
train_texts, train_labels = stdlib_docstrings(split="train")
val_texts, val_labels = stdlib_docstrings(split="val")
test_texts, test_labels = stdlib_docstrings(split="test")
counts = np.bincount(train_labels, minlength=len(STDLIB_PACKAGES))
ch.show("docstrings per package (train)", counts)
majority = int(counts.argmax())
base = metrics_by_hand(test_labels, [majority] * len(test_labels), positive=majority)
ch.note(f"on our 4-class test split, always answering '{STDLIB_PACKAGES[majority]}' is "
        f"{base['accuracy']:.2f} accurate (chance is 0.25) with macro F1 "
        f"{precision_recall_f1(test_labels, [majority] * len(test_labels), 'macro')[2]:.2f}: "
        f"the baseline every model below must beat")
majority_rate = base["accuracy"]

# %% [markdown]
# ## 2. A14 as written: one prediction per token
#
# `LSTM(128, return_sequences=True)` returns the state at every step, (B, T, 128); a Dense
# layer acts on the last axis, so `Dense(1, sigmoid)` gives (B, T, 1): one probability per
# token, not per sentence. `LSTMClassifier(pooling="none")` reproduces it. The sentence
# labels y (B,) do not have that shape: tinylm refuses the loss; Keras broadcasts y to
# every step, so the loss asks every prefix of the sentence ("asyncio.", "asyncio.Event
# ...") to predict the sentence's label on its own. The fixes pool the steps first: the
# state after the last real token, the mean, or the max over the steps.

# %%
ch.section("A14  the shape problem")
tok = WordTokenizer.train(train_texts, max_size=MAX_VOCAB, lower=True)
bin_train = binary_subset(train_texts, train_labels)
bin_val = binary_subset(val_texts, val_labels)
bin_test = binary_subset(test_texts, test_labels)
b_train = (encode_texts(tok, bin_train[0], max_len), np.array(bin_train[1]))
b_val = (encode_texts(tok, bin_val[0], max_len), np.array(bin_val[1]))
b_test = (encode_texts(tok, bin_test[0], max_len), np.array(bin_test[1]))
ch.note(f"binary task: {STDLIB_PACKAGES[0]} (0) vs {STDLIB_PACKAGES[1]} (1); "
        f"{len(b_train[0])} train, {len(b_val[0])} val, {len(b_test[0])} test docstrings; "
        f"vocabulary {tok.vocab_size} words")
a14 = LSTMClassifier(tok.vocab_size, width, width, dense_size=width, num_outputs=1,
                     pooling="none", seed=0)
ids, lengths = pad_sequences(b_train[0][:4])
token_logits = a14(ids, lengths)
ch.show("ids shape", np.array(ids.shape))
ch.show("A14's output shape (B, T)", np.array(token_logits.shape))
try:
    F.binary_cross_entropy_with_logits(token_logits, b_train[1][:4].astype(np.float32))
    shape_error = ""
except ShapeError as exc:
    shape_error = str(exc)
ch.note(f"BCE(output, labels) -> ShapeError: {shape_error}")
ch.check("BCE of A14's (B, T) output against (B,) labels is a shape error", bool(shape_error))
ch.formula("A14 with Keras's broadcast: L = sum_{b, t < len_b} BCE(sigmoid(z_bt), y_b) / "
           "sum_b len_b")
ch.code(per_token_bce)
z = token_logits.numpy()
mask = np.arange(ids.shape[1])[None, :] < lengths[:, None]
y4 = b_train[1][:4][:, None]
by_hand = -(y4 * np.log(sigmoid_np(z)) + (1 - y4) * np.log(1 - sigmoid_np(z)))
ch.check("per-token BCE == the mean of -[y log p + (1 - y) log(1 - p)] over real tokens",
         (per_token_bce(token_logits, b_train[1][:4], lengths).item(),
          by_hand[mask].mean(), 1e-5))

# %% [markdown]
# Pooling must not see the padding: a sentence alone, or padded inside a batch of longer
# ones, must get the same logit. (Taking `output[-1]`, as C14's code does, would read the
# state after the pads.)

# %%
ch.section("A14  pooling: last, mean, max; padding does not matter")
POOLINGS = ("last", "mean", "max")
short = min(range(8), key=lambda i: len(b_train[0][i]))
for pooling in POOLINGS:
    m = LSTMClassifier(tok.vocab_size, width, width, dense_size=width, pooling=pooling,
                       seed=0)
    m.eval()
    alone = m(np.array([b_train[0][short]])).numpy()[0]
    ids8, len8 = pad_sequences(b_train[0][:8])
    batched = m(ids8, len8).numpy()[short]
    ch.check(f"pooling={pooling!r}: the logit alone == in a padded batch",
             (alone, batched, 1e-5))

# %% [markdown]
# ## 3. A15: fit N epochs, batch 32, test accuracy, for each variant
#
# The same data, the same width, the same seed; A14's per-token model is read out by the
# mean of its token probabilities. Each model is trained `n_epochs` epochs (10 in a full run,
# as A15; 2 with `--quick`) with batch 32 and Adam 1e-3 (3e-3 with `--quick`), then scored on
# the test split.

# %%
ch.section("A15  training A14 and its pooled fixes")
ch.code(train_classifier)
curves, a14_results = {}, {}
for pooling in ("none",) + POOLINGS:
    kind = "bce_tokens" if pooling == "none" else "bce"
    model = LSTMClassifier(tok.vocab_size, width, width, dense_size=width, num_outputs=1,
                           pooling=pooling, seed=0)
    hist = train_classifier(model, b_train, b_val, kind, n_epochs, batch_size=32, lr=learning_rate,
                            seed=0)
    test_acc = accuracy(b_test[1], predict(model, b_test[0], kind))
    curves[f"A14 pooling={pooling}"] = hist["val_accuracy"]
    a14_results[pooling] = {"loss": hist["loss"], "test_accuracy": test_acc}
    ch.note(f"pooling={pooling:5s} loss {hist['loss'][0]:.3f} -> {hist['loss'][-1]:.3f}, "
            f"val accuracy {hist['val_accuracy'][-1]:.3f}, test accuracy {test_acc:.3f}")
bin_majority = max(np.mean(b_test[1]), 1 - np.mean(b_test[1]))
best_pooling = max(POOLINGS, key=lambda k: a14_results[k]["test_accuracy"])
ch.check("every variant's training loss went down",
         all(r["loss"][-1] < r["loss"][0] for r in a14_results.values()))
ch.check(f"the best pooled model ({best_pooling}) beats the majority rate "
         f"{bin_majority:.2f} by 0.1",
         a14_results[best_pooling]["test_accuracy"] > bin_majority + 0.1)

# %% [markdown]
# ## 4. C14: the PyTorch pipeline, pretrained vectors vs random initialisation
#
# The vocabulary keeps the 25,000 most frequent words (our docstrings have fewer, so the
# cap does not bind; a smaller cap shows what it costs: more `<unk>`). The "pretrained
# 100-d vectors" (GloVe in the document, not shipped here) are word2vec vectors trained on
# the training docstrings and copied into `embedding.weight`. Then a 2-layer LSTM (hidden
# 128, dropout 0.5), batches of 64, Adam 1e-3, one logit + BCE-with-logits, validation
# accuracy. C14's `output[-1]` is the last *real* step here (`pooling="last"`).

# %%
ch.section("C14  vocabulary cap")
ch.note(f"max_size={MAX_VOCAB}: {tok.vocab_size} words kept (all of them)")
val_tokens = sum(len(tok.split(t, lower=True)) for t in val_texts)
for cap in (MAX_VOCAB, 1000, 200):
    capped = WordTokenizer.train(train_texts, max_size=cap, lower=True)
    unk = capped.vocab.stoi["<unk>"]
    share = sum(i == unk for t in val_texts for i in capped.encode(t)) / val_tokens
    ch.note(f"cap {cap:6d}: vocabulary {capped.vocab_size:5d}, <unk> = {share:.1%} of the "
            f"validation tokens")
ch.check("the cap is respected", WordTokenizer.train(train_texts, max_size=200, lower=True)
         .vocab_size <= 200)

ch.section("C14  pretrained 100-d word2vec vectors vs random init")
w2v_epochs = 1 if quick else 10
vectors, coverage = pretrained_vectors(tok, [tok.split(t, lower=True) for t in train_texts],
                                       dim=100, epochs=w2v_epochs, seed=0)
ch.note(f"word2vec on {len(train_texts)} training docstrings: {coverage:.1%} of the "
        f"vocabulary has a trained vector")
c14_hidden = 32 if quick else 128
c14_results = {}
for init in ("random", "word2vec"):
    model = LSTMClassifier(tok.vocab_size, 100, c14_hidden, num_layers=2, dropout=0.5,
                           num_outputs=1, pooling="last", seed=0)
    if init == "word2vec":
        model.embedding.weight.data[...] = vectors
        ch.check("embedding.weight holds the word2vec vectors",
                 (model.embedding.weight.numpy(), vectors, 0))
    hist = train_classifier(model, b_train, b_val, "bce", n_epochs, batch_size=64,
                            lr=learning_rate, seed=0)
    curves[f"C14 {init} init"] = hist["val_accuracy"]
    c14_results[init] = hist
    ch.note(f"{init:8s} init: loss {hist['loss'][0]:.3f} -> {hist['loss'][-1]:.3f}, "
            f"validation accuracy by epoch {np.round(hist['val_accuracy'], 3).tolist()}")
ch.check("C14 trains (both inits): the loss goes down",
         all(h["loss"][-1] < h["loss"][0] for h in c14_results.values()))
for init, hist in c14_results.items():
    reached = [e + 1 for e, a in enumerate(hist["val_accuracy"]) if a >= 0.85]
    ch.note(f"{init:8s} init: best validation accuracy {max(hist['val_accuracy']):.3f}, "
            f"first >= 0.85 at epoch {reached[0] if reached else 'never'}")

# %% [markdown]
# ## 5. The C14 erratum: BCE on a multi-class output, read by argmax
#
# C14's model has `len(LABEL.vocab)` outputs (for two labels torchtext counts three:
# `<unk>`, neg, pos), read by argmax, but `BCEWithLogitsLoss` on `predictions.view(-1)`
# against one label per sentence: (B * 3,) against (B,) does not even run. Made to run
# with one-hot targets, BCE trains C independent yes/no questions: its gradient per logit
# is sigma(z_c) - y_c, and nothing ties the classes together. Softmax cross-entropy has
# gradient softmax(z)_c - y_c: raising one class lowers the others, and the C probabilities
# sum to 1.

# %%
ch.section("C14 erratum  the document's loss call")
logits3 = tl.Tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
try:
    F.binary_cross_entropy_with_logits(logits3.reshape(-1), np.array([1, 0, 1, 1], np.float32))
    doc_error = ""
except ShapeError as exc:
    doc_error = str(exc)
ch.note(f"BCEWithLogits(predictions.view(-1) (12,), labels (4,)) -> ShapeError: {doc_error}")
ch.check("C14's loss call as written is a shape error", bool(doc_error))

ch.section("C14 erratum  gradients: sigma(z) - y vs softmax(z) - y")
ch.formula("BCE one-hot: L = -(1/(B C)) sum_bc [y log s(z) + (1-y) log(1-s(z))],"
           "  dL/dz = (s(z) - y) / (B C)",
           "softmax CE:  L = -(1/B) sum_b log softmax(z_b)_{y_b},"
           "  dL/dz = (softmax(z) - onehot(y)) / B")
zt = tl.Tensor(np.random.default_rng(1).normal(size=(4, 3)), requires_grad=True)
y3 = np.array([0, 2, 1, 2])
onehot = np.eye(3)[y3]
classification_loss(zt, y3, "bce_onehot").backward()
g_bce = zt.grad.copy()
zt.grad = None
classification_loss(zt, y3, "ce").backward()
g_ce = zt.grad.copy()
ch.check("autograd of BCE on one-hot == (sigmoid(z) - y) / (B C)",
         (g_bce, (sigmoid_np(zt.numpy()) - onehot) / 12, 1e-12))
ch.check("autograd of softmax CE == (softmax(z) - y) / B",
         (g_ce, (softmax_np(zt.numpy()) - onehot) / 4, 1e-12))
ch.show("per-row sum of the BCE gradient (x B C)", (g_bce * 12).sum(axis=1))
ch.show("per-row sum of the CE gradient (x B)", (g_ce * 4).sum(axis=1))
ch.check("the CE gradient of each row sums to 0 (probability moves between classes)",
         ((g_ce * 4).sum(axis=1), np.zeros(4), 1e-12))

# %% [markdown]
# Now both losses on the 4-class task, same model and seed: one-hot BCE + argmax against
# softmax CE. We compare accuracy, how far the BCE "probabilities" are from summing to 1,
# the NLL of the true class (after normalising the rows), and the expected calibration
# error of the argmax's confidence.

# %%
ch.section("C14 erratum  4 classes: BCE on one-hot + argmax vs softmax CE")
m_train = (encode_texts(tok, train_texts, max_len), np.array(train_labels))
m_val = (encode_texts(tok, val_texts, max_len), np.array(val_labels))
m_test = (encode_texts(tok, test_texts, max_len), np.array(test_labels))
C = len(STDLIB_PACKAGES)
erratum, erratum_probs = {}, {}
for kind in ("bce_onehot", "ce"):
    model = LSTMClassifier(tok.vocab_size, width, width, num_outputs=C, pooling="mean",
                           seed=0)
    hist = train_classifier(model, m_train, m_val, kind, n_epochs, batch_size=32,
                            lr=learning_rate, seed=0)
    logits, _ = predict_logits(model, m_test[0])
    probs = probabilities(logits, kind)
    erratum[kind] = calibration(probs, m_test[1])
    erratum_probs[kind] = probs
    curves[f"4-class LSTM {kind}"] = hist["val_accuracy"]
    ch.note(f"{kind:10s}: test accuracy {erratum[kind]['accuracy']:.3f}, |sum p - 1| mean "
            f"{erratum[kind]['mean_abs_sum_minus_1']:.3f} max "
            f"{erratum[kind]['max_abs_sum_minus_1']:.3f}, NLL {erratum[kind]['nll']:.3f}, "
            f"ECE {erratum[kind]['ece']:.3f}")
ch.show("BCE one-hot: row sums of the first 6 test 'probability' rows",
        erratum_probs["bce_onehot"][:6].sum(axis=1))
ch.check("softmax CE probabilities sum to 1",
         (erratum_probs["ce"].sum(axis=1), np.ones(len(m_test[1])), 1e-5))
ch.check("the one-hot BCE 'probabilities' do not (max |sum - 1| > 0.1)",
         erratum["bce_onehot"]["max_abs_sum_minus_1"] > 0.1)
ch.check("the CE model beats the majority rate", erratum["ce"]["accuracy"] > majority_rate)

# %% [markdown]
# ## 6. A12: a BERT-style encoder vs the LSTM
#
# Tokenize, embed (plus learned positions), prepend a learned [CLS] vector, run a
# Transformer encoder that ignores the padding, and put a softmax over the classes on the
# [CLS] output: `TransformerClassifier`. Same 4-class data and loop as the softmax-CE LSTM
# above.

# %%
ch.section("A12  a BERT-style classifier")
bert = TransformerClassifier(tok.vocab_size, d_model=width, nhead=4, num_layers=2,
                             dim_feedforward=2 * width, num_outputs=C, max_len=max_len,
                             dropout=0.1, seed=0)
hist = train_classifier(bert, m_train, m_val, "ce", n_epochs, batch_size=32,
                        lr=learning_rate, seed=0)
curves["4-class BERT-style (CE)"] = hist["val_accuracy"]
bert_pred = predict(bert, m_test[0], "ce")
bert_acc = accuracy(m_test[1], bert_pred)
lstm_acc = erratum["ce"]["accuracy"]
ch.note(f"test accuracy: BERT-style encoder {bert_acc:.3f}, LSTM (mean pooling) "
        f"{lstm_acc:.3f}; macro F1 of the encoder "
        f"{precision_recall_f1(m_test[1], bert_pred, 'macro', num_classes=C)[2]:.3f}")
ch.check("the encoder's loss went down", hist["loss"][-1] < hist["loss"][0])
ch.check("the encoder beats the majority rate", bert_acc > majority_rate)
best_name, best_probs = ("BERT-style", None) if bert_acc > lstm_acc else \
    ("LSTM", erratum_probs["ce"])
best_pred = bert_pred if best_probs is None else best_probs.argmax(axis=1)
cm = confusion_matrix(m_test[1], best_pred, num_classes=C)
ch.show(f"confusion matrix of the better 4-class model ({best_name})", cm)
ch.check("the confusion matrix's diagonal / total == accuracy",
         (np.trace(cm) / cm.sum(), accuracy(m_test[1], best_pred), 1e-12))

# %% [markdown]
# ## 7. Sentiment data (SST-2, rt-polarity)
#
# With `--corpus PATH`, or in a full run when `../shared/data/sentiment/sst2` exists, the
# best recipe above (an LSTM, mean pooling, one logit + BCE) is trained on the sentiment
# training split and scored on its dev split. `benchmarks/bench_classification.py` runs the
# longer measurement.

# %%
sentiment_source = ch.corpus or (SST2_DIR if not quick and SST2_DIR.is_dir() else None)
if sentiment_source is None:
    ch.note("no sentiment data (pass --corpus PATH, or run without --quick beside "
            "../shared/data): section skipped")
else:
    ch.section(f"sentiment: {sentiment_source}")
    try:
        parts = sentiment_data(sentiment_source, seed=0)
    except TinyLMError as exc:      # e.g. a plain text corpus given to every chapter
        ch.note(f"--corpus is not labelled data ({exc}): section skipped")
        parts = None
if sentiment_source is not None and parts is not None:
    s_tok = WordTokenizer.train(parts["train"][0], max_size=MAX_VOCAB, lower=True)
    s_train = (encode_texts(s_tok, parts["train"][0], 64), np.array(parts["train"][1]))
    s_dev = (encode_texts(s_tok, parts["dev"][0], 64), np.array(parts["dev"][1]))
    s_model = LSTMClassifier(s_tok.vocab_size, 64, 64, num_outputs=1, pooling="mean",
                             dropout=0.3, seed=0)
    s_hist = train_classifier(s_model, s_train, s_dev, "bce", 1 if quick else 2,
                              batch_size=64, lr=2e-3, seed=0)
    s_pred = predict(s_model, s_dev[0], "bce")
    s_acc = accuracy(s_dev[1], s_pred)
    ch.note(f"{len(s_train[0])} train / {len(s_dev[0])} dev sentences, vocabulary "
            f"{s_tok.vocab_size}: dev accuracy by epoch "
            f"{np.round(s_hist['val_accuracy'], 3).tolist()}, F1 "
            f"{precision_recall_f1(s_dev[1], s_pred)[2]:.3f}")
    curves["sentiment LSTM (dev)"] = s_hist["val_accuracy"]
    ch.check("the sentiment model beats the majority rate of its dev split",
             s_acc > max(np.mean(s_dev[1]), 1 - np.mean(s_dev[1])))

# %% [markdown]
# ## The figure: learning curves and a confusion matrix

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
for name, acc in curves.items():
    ax = axes[0] if name.startswith(("A14", "C14", "sentiment")) else axes[1]
    ax.plot(np.arange(1, len(acc) + 1), acc, "o-", ms=3, label=name)
for ax, title in ((axes[0], "binary (asyncio vs email): A14 variants, C14; sentiment"),
                  (axes[1], "4 classes: BCE one-hot vs CE, BERT-style")):
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel("validation accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
axes[2].imshow(cm, cmap="Blues")
for i in range(C):
    for j in range(C):
        axes[2].text(j, i, str(cm[i, j]), ha="center", va="center",
                     color="white" if cm[i, j] > cm.max() / 2 else "black")
axes[2].set_xticks(range(C))
axes[2].set_xticklabels(STDLIB_PACKAGES, rotation=30)
axes[2].set_yticks(range(C))
axes[2].set_yticklabels(STDLIB_PACKAGES)
axes[2].set_xlabel("predicted")
axes[2].set_ylabel("true")
axes[2].set_title(f"test confusion matrix ({best_name})", fontsize=10)
fig.suptitle("Chapter 13: text classification", y=1.02)
ch.savefig(fig, "13_classification.png")

# %% [markdown]
# ## Summary
#
# * A4: precision, recall and F1 come from the confusion matrix; on imbalanced data a
#   constant answer gets high accuracy and zero recall, so report F1 (macro for classes).
# * A14 as written predicts per token; its broadcast BCE trains every prefix to guess the
#   label. Pooling (last real step, mean, max) gives one vector per sentence, and must
#   ignore the padding.
# * A15: the same loop for every variant: epochs, batch 32, test accuracy.
# * C14: a vocabulary cap, word2vec vectors in the embedding, a 2-layer LSTM with dropout
#   and one logit + BCE-with-logits. Its erratum: a multi-class output wants softmax CE;
#   BCE on one-hot targets trains independent sigmoids whose "probabilities" do not sum to 1.
# * A12: a Transformer encoder with a [CLS] vector is a drop-in replacement for the LSTM.

# %%
ch.finish()
