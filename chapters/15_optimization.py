# %% [markdown]
# # Chapter 15: optimisation and regularisation
#
# Every model of chapters 01-14 was trained the same way: compute a loss, backpropagate,
# move the weights a little. This chapter is about the last step and what surrounds it. The
# documents list it four times:
#
# * C15 (document 002, 9.2): the training steps: preprocess, embed, define the model, choose
#   a loss, backpropagate, **optimise "with an algorithm such as Adam or RMSprop"**, evaluate;
# * D3 (document 003, 3.1): preprocess, initialise, backpropagate, then "regularisation and
#   learning-rate adjustment" to generalise and train faster;
# * C16 (document 002, 9.4): to improve a model: larger models, better optimisers, **data
#   augmentation** "such as random cropping, rotation and scaling", **regularisation** "such
#   as weight decay and dropout", hyper-parameter tuning (learning rate, batch size, hidden
#   size) and **ensembling** (voting or weighted averages);
# * B8 (document 001, 8): the FAQ's answer to "how to improve a model": data augmentation,
#   regularisation, learning-rate tuning (its pruning and quantisation are chapter 17's).
#
# None of these carries an erratum, but one needs care: C16's augmentations (crop, rotate,
# scale) are **image** operations. A sentence cannot be rotated; section 8 uses the text
# operations that play their role (random deletion, swap and cropping of words) and shows
# which of them can matter to which model.
#
# The model throughout is small enough to train dozens of times in a minute: a bag-of-words
# classifier (mean of the word vectors -> hidden layer -> 4 classes) on the docstrings of
# four standard-library packages (asyncio, email, unittest, xml), the embedded dataset of
# chapter 13. No files are needed.
#
# 1. C15/D3: the training steps, one at a time, on this model;
# 2. the update rules derived and checked against tinylm.optim (and PyTorch): SGD,
#    momentum (and Nesterov), Adagrad, RMSprop, Adam (with its bias correction), AdamW;
#    their paths on an ill-conditioned quadratic;
# 3. a hyper-parameter sweep: every optimiser over a grid of learning rates;
# 4. the race: each optimiser at its best learning rate, same model, same batches;
# 5. weight decay vs L2: the same thing for SGD, not for Adam;
# 6. dropout: `m * x / (1 - p)`, and what it does to the gap between train and validation;
# 7. learning-rate schedules: step, cosine, warmup + cosine;
# 8. gradient clipping: the length capped, the direction kept;
# 9. data augmentation for text (B8, C16);
# 10. ensembling, and the test set, used once.

# %%
import math
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
from tinylm.datasets import stdlib_docstrings
from tinylm.errors import TinyLMError
from tinylm.text import WordTokenizer

# %% [markdown]
# ## The tools of this chapter
#
# The data and the model; each update rule written out in NumPy (to check tinylm's
# optimisers against); one training loop with the knobs of this chapter (schedule, clipping,
# augmentation); dropout by hand; three text augmentations. The tests
# (`tests/test_chapter_15.py`, marker `ch15`) use them.

# %%
OPTIMIZERS = ("SGD", "momentum", "Adagrad", "RMSprop", "Adam", "AdamW")
QUAD_CURVATURE = np.array([1.0, 20.0])      # f(w) = 1/2 (w_1^2 + 20 w_2^2): condition 20
QUAD_START = np.array([-4.0, 1.0])
# AdamW without weight decay IS Adam; in the sweep and the race it decays with this
# (decoupled) strength, a value section 5 finds good
RACE_DECAY = {"AdamW": 0.5}


def load_docstrings(min_count=2, seed=0):
    """C15 step 1, preprocess: the docstrings of the four packages (a seeded, stratified
    80/10/10 split), a lower-cased word vocabulary built from the TRAINING texts only (words
    seen at least ``min_count`` times; the rest become <unk>), every text as word ids.
    Returns {"tokenizer", "train": (ids, labels), "val": ..., "test": ...}."""
    parts = {s: stdlib_docstrings(split=s, seed=seed) for s in ("train", "val", "test")}
    tok = WordTokenizer.train(parts["train"][0], min_count=min_count, lower=True)
    data = {"tokenizer": tok}
    for split, (texts, labels) in parts.items():
        data[split] = ([tok.encode(t) for t in texts], np.array(labels))
    return data


def bag_of_words(sequences, vocab_size):
    """x_i = mean over the words of text i of their one-hot vectors, (N, V): so that
    x_i E = the mean of the word vectors (A10: a one-hot times a matrix selects a row).
    An empty text gives a zero row."""
    X = np.zeros((len(sequences), vocab_size))
    for i, ids in enumerate(sequences):
        if len(ids):
            np.add.at(X[i], ids, 1.0 / len(ids))
    return X


class BowClassifier(nn.Module):
    """C15 steps 2-3, embed and define: the mean word vector e = x E (E: V x d, N(0, 1) as
    an embedding table starts), dropout on e (section 6), a hidden layer
    h = relu(e W_1^T + b_1), logits z = h W_2^T + b_2 (one per class). float64, seeded."""

    def __init__(self, vocab_size, num_classes=4, embed_dim=32, hidden=32, dropout=0.0,
                 seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.embed = nn.Parameter(rng.standard_normal((vocab_size, embed_dim)))
        self.hidden = nn.Linear(embed_dim, hidden, seed=rng, dtype=np.float64)
        self.drop = nn.Dropout(dropout, seed=rng)
        self.out = nn.Linear(hidden, num_classes, seed=rng, dtype=np.float64)

    def forward(self, x):
        e = self.drop(x @ self.embed)         # x: a Tensor (B, V) of mean one-hots
        return self.out(F.relu(self.hidden(e)))


def make_optimizer(name, model, lr, weight_decay=0.0):
    """One of OPTIMIZERS from tinylm.optim; ``weight_decay`` is L2 on the gradient for all
    but AdamW, where it is decoupled (section 5)."""
    groups = optim.decay_groups(model.parameters(), weight_decay)   # on matrices only
    if name == "SGD":
        return optim.SGD(groups, lr=lr)
    if name == "momentum":
        return optim.SGD(groups, lr=lr, momentum=0.9)
    if name == "Adagrad":
        return optim.Adagrad(groups, lr=lr)
    if name == "RMSprop":
        return optim.RMSprop(groups, lr=lr)
    if name == "Adam":
        return optim.Adam(groups, lr=lr)
    if name == "AdamW":
        return optim.AdamW(groups, lr=lr)
    raise TinyLMError(f"make_optimizer: name must be one of {OPTIMIZERS}, got {name!r}")


@tl.no_grad()
def evaluate(model, X, y):
    """C15 step 7: mean cross-entropy and accuracy, in eval mode (dropout off)."""
    was_training = model.training
    model.eval()
    logits = model(tl.Tensor(X))
    loss = F.cross_entropy(logits, y).item()
    acc = float(np.mean(logits.numpy().argmax(axis=1) == y))
    model.train(was_training)
    return loss, acc


def train_model(model, opt, train, val, epochs, batch_size=32, seed=0, scheduler=None,
                clip=None, track_train=False):
    """Minibatch training: shuffle (seeded per epoch), forward, cross-entropy, backward,
    optional gradient clipping (``clip`` = max norm), step, optional per-step scheduler.

    ``train`` is (X, y), or a function ``epoch -> (X, y)`` (a fresh augmented copy each
    epoch). Returns a history: per step "loss", "grad_norm" (before clipping) and "lr"; per
    epoch "train_loss" (mean over its steps), "val_loss", "val_acc", and with
    ``track_train`` "train_eval_loss" (the whole training set in eval mode: no dropout)."""
    hist = {k: [] for k in ("loss", "grad_norm", "lr", "train_loss", "val_loss", "val_acc",
                            "train_eval_loss")}
    for epoch in range(epochs):
        X, y = train(epoch) if callable(train) else train
        order = np.random.default_rng(seed + epoch).permutation(len(y))
        model.train()
        losses = []
        for start in range(0, len(y), batch_size):
            rows = order[start:start + batch_size]
            loss = F.cross_entropy(model(tl.Tensor(X[rows])), y[rows])
            opt.zero_grad()
            loss.backward()
            norm = optim.clip_grad_norm_(model.parameters(), clip if clip else math.inf)
            hist["lr"].append(opt.param_groups[0]["lr"])
            opt.step()
            if scheduler is not None:
                scheduler.step()
            hist["loss"].append(loss.item())
            hist["grad_norm"].append(norm)
            losses.append(loss.item())
        hist["train_loss"].append(float(np.mean(losses)))
        if track_train:
            hist["train_eval_loss"].append(evaluate(model, X, y)[0])
        vl, va = evaluate(model, *val)
        hist["val_loss"].append(vl)
        hist["val_acc"].append(va)
    return hist


# --- the update rules in NumPy, one function each (state: a dict kept between steps) ----

def sgd_rule(w, g, state, lr):
    """C8: w <- w - lr g."""
    return w - lr * g


def momentum_rule(w, g, state, lr, mu=0.9, nesterov=False):
    """Heavy ball: b <- mu b + g (b = g on the first step), w <- w - lr b.
    Nesterov: the step uses g + mu b, a look-ahead along the velocity."""
    state["b"] = g.copy() if "b" not in state else mu * state["b"] + g
    return w - lr * (g + mu * state["b"] if nesterov else state["b"])


def adagrad_rule(w, g, state, lr, eps=1e-10):
    """s <- s + g^2 (all the past), w <- w - lr g / (sqrt(s) + eps)."""
    state["s"] = state.get("s", 0.0) + g * g
    return w - lr * g / (np.sqrt(state["s"]) + eps)


def rmsprop_rule(w, g, state, lr, alpha=0.99, eps=1e-8):
    """s <- alpha s + (1 - alpha) g^2 (a running mean: it forgets),
    w <- w - lr g / (sqrt(s) + eps)."""
    state["s"] = alpha * state.get("s", 0.0) + (1 - alpha) * g * g
    return w - lr * g / (np.sqrt(state["s"]) + eps)


def adam_rule(w, g, state, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False):
    """Adam: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2, m^ = m / (1-b1^t),
    v^ = v / (1-b2^t), w <- w - lr m^ / (sqrt(v^) + eps).
    weight_decay: L2 (g <- g + wd w, then Adam) or, decoupled (AdamW), w <- w (1 - lr wd)
    before the Adam step on the raw g."""
    t = state["t"] = state.get("t", 0) + 1
    if weight_decay and decoupled:
        w = w * (1 - lr * weight_decay)
    elif weight_decay:
        g = g + weight_decay * w
    state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    m_hat = state["m"] / (1 - b1 ** t)
    v_hat = state["v"] / (1 - b2 ** t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)


def quadratic_grad(w):
    """The gradient of f(w) = 1/2 sum_i c_i w_i^2: c * w (QUAD_CURVATURE c)."""
    return QUAD_CURVATURE * w


def run_rule(rule, w0, steps, grad=quadratic_grad, **kwargs):
    """Iterate a NumPy rule from w0; returns the path (steps + 1, dim)."""
    w, state, path = np.array(w0, dtype=np.float64), {}, [np.array(w0, dtype=np.float64)]
    for _ in range(steps):
        w = rule(w, grad(w), state, **kwargs)
        path.append(w)
    return np.array(path)


def run_optimizer(make, w0, steps, grad=quadratic_grad):
    """The same with a tinylm optimiser ``make(params)`` on one Parameter."""
    p = nn.Parameter(np.array(w0, dtype=np.float64))
    opt = make([p])
    path = [p.data.copy()]
    for _ in range(steps):
        p.grad = grad(p.data)
        opt.step()
        path.append(p.data.copy())
    return np.array(path)


# --- regularisation --------------------------------------------------------------------

def l2_penalty(model, weight_decay):
    """(wd / 2) sum ||W||^2 over the matrices: its gradient is wd W (what weight_decay adds)."""
    return sum(((p * p).sum() for p in model.parameters() if p.ndim >= 2),
               tl.Tensor(0.0)) * (weight_decay / 2)


def dropout_by_hand(x, p, rng):
    """Inverted dropout: keep each entry with probability 1 - p (mask m), scale the kept
    ones by 1 / (1 - p): y = m * x / (1 - p), so E[y] = x and evaluation needs no change."""
    keep = rng.random(x.shape) >= p
    return x * keep / (1.0 - p), keep


def clip_by_hand(grads, max_norm):
    """g <- g * min(1, C / (||g|| + 1e-6)), ||g|| the norm of ALL gradients as one vector:
    the direction is kept, only the length is capped."""
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    scale = min(1.0, max_norm / (total + 1e-6))
    return [g * scale for g in grads], total


def heavy_tailed_regression(clip, seed, steps=400, lr=0.02, batch=8, dim=10, df=1.5):
    """Minibatch SGD on linear regression y = x . w* + noise whose noise is Student-t with
    ``df`` degrees of freedom (df <= 2: infinite variance, so some batches carry huge
    gradients). ``clip``: max gradient norm, or None. Returns (||w - w*|| after each step,
    the length of each step ||w_t - w_(t-1)||)."""
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=dim)
    X = rng.normal(size=(steps * batch, dim))
    y = X @ w_true + rng.standard_t(df, size=steps * batch)
    layer = nn.Linear(dim, 1, bias=False, seed=0, dtype=np.float64)
    opt = optim.SGD(layer.parameters(), lr=lr)
    errors, moves = [], []
    for t in range(steps):
        rows = slice(t * batch, (t + 1) * batch)
        loss = F.mse_loss(layer(tl.Tensor(X[rows])).reshape(-1), tl.Tensor(y[rows]))
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(layer.parameters(), clip if clip else math.inf)
        before = layer.weight.data.copy()
        opt.step()
        moves.append(float(np.linalg.norm(layer.weight.data - before)))
        errors.append(float(np.linalg.norm(layer.weight.data[0] - w_true)))
    return np.array(errors), np.array(moves)


# --- data augmentation for text (B8, C16) ----------------------------------------------

def random_deletion(ids, p, rng):
    """Drop each word with probability p (keep at least one): the words that remain keep
    their order."""
    if not ids:
        return []
    keep = rng.random(len(ids)) >= p
    if not keep.any():
        keep[rng.integers(len(ids))] = True
    return [t for t, k in zip(ids, keep) if k]


def random_swap(ids, n_swaps, rng):
    """Swap two random positions, ``n_swaps`` times: the same words, another order."""
    out = list(ids)
    for _ in range(n_swaps if len(out) > 1 else 0):
        i, j = rng.integers(len(out), size=2)
        out[i], out[j] = out[j], out[i]
    return out


def random_crop(ids, fraction, rng):
    """The text's version of an image crop: a contiguous run of ceil(fraction * n) words
    starting at a random position."""
    n = len(ids)
    keep = max(1, math.ceil(fraction * n)) if n else 0
    start = int(rng.integers(n - keep + 1)) if n else 0
    return list(ids[start:start + keep])


def augment(sequences, rng, p_delete=0.1, crop=0.9, n_swaps=1):
    """Each text cropped, then words deleted, then swapped (one fresh draw per call)."""
    return [random_swap(random_deletion(random_crop(s, crop, rng), p_delete, rng), n_swaps, rng)
            for s in sequences]


def smooth(values, k):
    """Moving average over ``k`` steps (for plotting noisy per-step losses)."""
    values = np.asarray(values, dtype=np.float64)
    k = max(1, min(k, len(values)))
    return np.convolve(values, np.ones(k) / k, mode="valid")


@tl.no_grad()
def ensemble_probabilities(models, X):
    """C16's "weighted average" ensemble with equal weights: the mean of the models'
    softmax outputs, (N, C)."""
    probs = []
    for m in models:
        m.eval()
        probs.append(F.softmax(m(tl.Tensor(X)), axis=-1).numpy())
    return np.mean(probs, axis=0)


# %%
ch = Chapter(15, "Optimisation and regularisation: update rules, weight decay, dropout, "
                 "schedules, clipping, augmentation")
quick = ch.quick
epochs = 5 if quick else 10          # epochs of each training run in sections 4-10
torch = None
if not quick:            # the PyTorch cross-check of section 2 (tests/test_optim.py has more)
    try:
        import torch
    except ImportError:  # torch is optional (pip install -e ".[compare]")
        pass

# %% [markdown]
# ## 1. C15 / D3: the training steps, one at a time
#
# C15 lists seven steps; D3 the same ones in four. On our task:
#
# 1. **preprocess**: split the docstrings into train / validation / test (stratified, seeded),
#    build the word vocabulary from the *training* texts only, turn every text into word ids;
# 2. **embed**: each text becomes the mean of its word vectors, `e = x E`, with `x` the mean
#    of the words' one-hot vectors (A10: a one-hot times a matrix selects a row);
# 3. **define** the model: `e -> relu(e W_1^T + b_1) -> h W_2^T + b_2`, 4 logits;
# 4. **loss**: softmax cross-entropy; at the start the logits are small, the softmax near
#    uniform, so the loss is near `log 4 = 1.386`;
# 5. **backpropagation**: `loss.backward()` fills every `.grad` (checked against finite
#    differences below);
# 6. **optimise**: the optimiser moves the weights (Adam here; section 2 derives the rules);
# 7. **evaluate** on the validation split, never on the texts trained on.

# %%
ch.section("1. C15/D3: preprocess, embed, define, loss, backprop, optimise, evaluate")
data = load_docstrings()
tok = data["tokenizer"]
V = tok.vocab_size
X_train, y_train = bag_of_words(data["train"][0], V), data["train"][1]
X_val, y_val = bag_of_words(data["val"][0], V), data["val"][1]
X_test, y_test = bag_of_words(data["test"][0], V), data["test"][1]
ch.show("step 1: texts in train / val / test", [len(y_train), len(y_val), len(y_test)])
ch.show("        vocabulary (train words seen >= 2 times, + specials)", V)
ids0 = data["train"][0][0]
ch.show("        first training text", stdlib_docstrings(split="train")[0][0][:70] + "...")
ch.show("        its first word ids", ids0[:12])
ch.code(bag_of_words)
model = BowClassifier(V, seed=0)
e_layer = (tl.Tensor(X_train[:1]) @ model.embed).numpy()[0]
ch.check("step 2: x E == the mean of the text's word vectors (A10)",
         (e_layer, model.embed.data[ids0].mean(axis=0), 1e-12))
ch.code(BowClassifier)
ch.show("step 3: parameters (E, W_1, b_1, W_2, b_2)",
        [p.size for p in model.parameters()])
loss0, acc0 = evaluate(model, X_train, y_train)
ch.show("step 4: cross-entropy at initialisation", loss0)
ch.check("step 4: the initial loss is near log 4 (near-uniform softmax)",
         abs(loss0 - math.log(4)) < 0.15, f"{loss0:.4f} vs {math.log(4):.4f}")

batch = np.arange(32)
loss = F.cross_entropy(model(tl.Tensor(X_train[batch])), y_train[batch])
loss.backward()


def batch_loss():
    with tl.no_grad():
        return F.cross_entropy(model(tl.Tensor(X_train[batch])), y_train[batch]).item()


checks = []
for p, index in ((model.out.weight, (1, 3)), (model.hidden.bias, (5,)),
                 (model.embed, (ids0[0], 2))):
    saved, h = p.data[index], 1e-6
    p.data[index] = saved + h
    up = batch_loss()
    p.data[index] = saved - h
    down = batch_loss()
    p.data[index] = saved
    checks.append(((up - down) / (2 * h), p.grad[index]))
ch.show("step 5: (finite difference, backprop) for three weights", np.array(checks), 8)
ch.check("step 5: backprop == central finite differences",
         (np.array(checks)[:, 0], np.array(checks)[:, 1], 1e-7))
opt = optim.Adam(model.parameters(), lr=0.01)
before = loss.item()
opt.step()
ch.check("step 6: one Adam step lowers the loss of its batch", batch_loss() < before,
         f"{before:.4f} -> {batch_loss():.4f}")
hist = train_model(model, opt, (X_train, y_train), (X_val, y_val), epochs)
majority = float(np.mean(y_val == np.bincount(y_train).argmax()))
ch.show(f"step 7: validation accuracy after {epochs} epochs", hist["val_acc"][-1])
ch.show("        always answering the largest class", majority)
ch.check("step 7: the model beats the majority class by 30 points on validation",
         hist["val_acc"][-1] > majority + 0.3)

# %% [markdown]
# ## 2. The update rules, derived
#
# Each rule answers one weakness of the one before. To see them, a loss we can draw:
# `f(w) = 1/2 (w_1^2 + 20 w_2^2)`, a valley 20 times steeper across than along
# (curvatures 1 and 20; its gradient is `(w_1, 20 w_2)`).
#
# **SGD** (C8): `w <- w - lr g`. On this f each coordinate is multiplied by `1 - lr c_i`
# per step, so it converges only if `|1 - lr c_i| < 1` for every i: `lr < 2 / c_max = 0.1`.
# The flat direction then shrinks by at best `1 - 0.1 * 1 = 0.9` per step: the steep
# direction dictates the step size, the flat one pays for it.
#
# **Momentum** (heavy ball, Polyak 1964): `b <- mu b + g`, `w <- w - lr b`. The velocity `b`
# adds up gradients that agree (along the valley) and cancels those that flip sign (across
# it). PyTorch's form above equals the "average" form `v <- mu v + (1 - mu) g`,
# `w <- w - lr / (1 - mu) v` exactly (both unroll to `sum_s mu^(t-s) g_s`).
# **Nesterov** steps with `g + mu b`, a look-ahead along the velocity.
#
# **Adagrad** (Duchi et al. 2011): `s <- s + g^2`, `w <- w - lr g / (sqrt(s) + eps)`: every
# coordinate gets its own step size, large where gradients have been small (rare words),
# small where they have been large. But `s` only grows, so the steps only shrink.
#
# **RMSprop** (Hinton 2012): the same with a running mean, `s <- alpha s + (1 - alpha) g^2`:
# it forgets, so the step size tracks the *recent* gradient scale.
#
# **Adam** (Kingma & Ba 2015): momentum on g and RMSprop's `s` together, `m <- b1 m +
# (1 - b1) g`, `v <- b2 v + (1 - b2) g^2`. Both start at 0, so early on they are too small:
# unrolled, `m_t = (1 - b1) sum_s b1^(t-s) g_s`, and for a constant gradient that is
# `(1 - b1^t) g`. Dividing by `1 - b1^t` (and `v` by `1 - b2^t`) removes exactly this
# bias: `m^ = m / (1 - b1^t)`, `v^ = v / (1 - b2^t)`, `w <- w - lr m^ / (sqrt(v^) + eps)`.
# The first step is then `lr * g / |g|`: every coordinate moves by lr.
#
# **AdamW** (Loshchilov & Hutter 2019): weight decay *outside* the adaptive step,
# `w <- w (1 - lr wd)` then Adam on the raw g (section 5 shows why that matters).
#
# Each rule below is written in NumPy and run beside tinylm's optimiser on the same
# gradients (and beside PyTorch's, where it is installed).

# %%
ch.section("2. The update rules, checked against tinylm.optim")
rules = {
    "SGD": (sgd_rule, dict(lr=0.09), lambda p: optim.SGD(p, lr=0.09)),
    "momentum": (momentum_rule, dict(lr=0.05, mu=0.7),
                 lambda p: optim.SGD(p, lr=0.05, momentum=0.7)),
    "Nesterov": (momentum_rule, dict(lr=0.05, mu=0.7, nesterov=True),
                 lambda p: optim.SGD(p, lr=0.05, momentum=0.7, nesterov=True)),
    "Adagrad": (adagrad_rule, dict(lr=1.0), lambda p: optim.Adagrad(p, lr=1.0)),
    "RMSprop": (rmsprop_rule, dict(lr=0.1), lambda p: optim.RMSprop(p, lr=0.1)),
    "Adam": (adam_rule, dict(lr=0.3), lambda p: optim.Adam(p, lr=0.3)),
    "AdamW": (adam_rule, dict(lr=0.3, weight_decay=0.1, decoupled=True),
              lambda p: optim.AdamW(p, lr=0.3, weight_decay=0.1)),
}
for fn in (sgd_rule, momentum_rule, adagrad_rule, rmsprop_rule, adam_rule):
    ch.code(fn)
n_steps = 40
paths = {}
for name, (rule, kwargs, make) in rules.items():
    paths[name] = run_rule(rule, QUAD_START, n_steps, **kwargs)
    ch.check(f"{name}: the NumPy rule == tinylm.optim, {n_steps} steps",
             (paths[name], run_optimizer(make, QUAD_START, n_steps), 1e-12))
if torch is not None:
    torch_makers = {
        "SGD": lambda p: torch.optim.SGD(p, lr=0.09),
        "momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.7),
        "Nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.7, nesterov=True),
        "Adagrad": lambda p: torch.optim.Adagrad(p, lr=1.0),
        "RMSprop": lambda p: torch.optim.RMSprop(p, lr=0.1),
        "Adam": lambda p: torch.optim.Adam(p, lr=0.3),
        "AdamW": lambda p: torch.optim.AdamW(p, lr=0.3, weight_decay=0.1),
    }
    worst = 0.0
    for name, make in torch_makers.items():
        w = torch.tensor(QUAD_START, requires_grad=True)
        opt_t = make([w])
        for step in range(n_steps):
            w.grad = torch.from_numpy(quadratic_grad(w.detach().numpy()))
            opt_t.step()
        worst = max(worst, float(np.abs(w.detach().numpy() - paths[name][-1]).max()))
    ch.check("all seven == torch.optim after 40 steps", worst < 1e-12, f"max |diff| {worst:.1e}")

lr_edge = 2 / QUAD_CURVATURE.max()
below = run_rule(sgd_rule, QUAD_START, 60, lr=0.95 * lr_edge)[-1]
above = run_rule(sgd_rule, QUAD_START, 60, lr=1.05 * lr_edge)[-1]
ch.show("SGD, 60 steps, lr = 0.95 * 2/c_max: |w|", np.linalg.norm(below))
ch.show("SGD, 60 steps, lr = 1.05 * 2/c_max: |w|", np.linalg.norm(above))
ch.check("SGD converges below lr = 2 / c_max and diverges above it",
         np.linalg.norm(below) < 1.0 < np.linalg.norm(QUAD_START) < np.linalg.norm(above))

gs = np.random.default_rng(0).normal(size=(20, 3))
b, v, heavy, average = np.zeros(3), np.zeros(3), [], []
for g in gs:
    b = 0.9 * b + g
    v = 0.9 * v + 0.1 * g
    heavy.append(0.05 * b)
    average.append(0.05 / (1 - 0.9) * v)
ch.check("momentum: lr * b (PyTorch) == lr / (1 - mu) * v (running average), every step",
         (np.array(heavy), np.array(average), 1e-12))

g_const = np.array([0.5, -2.0, 1e-3])
state, m_hats, raw_m = {}, [], []
for t in range(1, 11):
    adam_rule(np.zeros(3), g_const, state, lr=0.1)
    raw_m.append(state["m"] / g_const)
    m_hats.append(state["m"] / (1 - 0.9 ** t))
ch.show("Adam, constant g: m_t / g for t = 1..10 (the bias)", np.array(raw_m)[:, 0])
ch.check("Adam: m_t = (1 - b1^t) g for a constant gradient",
         (np.array(raw_m)[:, 0], 1 - 0.9 ** np.arange(1, 11), 1e-12))
ch.check("Adam: the bias-corrected m^_t == g exactly",
         (np.array(m_hats), np.tile(g_const, (10, 1)), 1e-15))
first = adam_rule(np.zeros(3), g_const, {}, lr=0.1)
ch.show("Adam: the first step, for g = (0.5, -2, 0.001)", first)
ch.check("Adam: the first step moves every coordinate by lr against the gradient's sign",
         (first, -0.1 * np.sign(g_const), 1e-4))
w0 = np.array([1.0, -2.0])
decayed = run_rule(adam_rule, w0, 10, grad=lambda w: np.zeros(2), lr=0.1, weight_decay=0.5,
                   decoupled=True)[-1]
ch.check("AdamW with zero gradient: w_t = (1 - lr wd)^t w_0 (pure decay)",
         (decayed, (1 - 0.1 * 0.5) ** 10 * w0, 1e-12))

f_quad = {name: 0.5 * np.sum(QUAD_CURVATURE * p ** 2, axis=1) for name, p in paths.items()}
ch.show("f after 40 steps", {k: float(f"{v[-1]:.2e}") for k, v in f_quad.items()})

fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
g1, g2 = np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-1.6, 1.6, 200))
axes[0].contour(g1, g2, 0.5 * (g1 ** 2 + 20 * g2 ** 2), levels=np.geomspace(0.02, 30, 12),
                colors="0.8", linewidths=0.8)
styles = {"SGD": "C0", "momentum": "C1", "Nesterov": "C1", "Adagrad": "C2", "RMSprop": "C3",
          "Adam": "C4", "AdamW": "C4"}
for name in ("SGD", "momentum", "Adagrad", "RMSprop", "Adam"):
    axes[0].plot(paths[name][:, 0], paths[name][:, 1], ".--" if name == "RMSprop" else ".-",
                 color=styles[name], ms=3, lw=1,
                 label=f"{name} ({', '.join(f'{k}={v}' for k, v in rules[name][1].items())})")
axes[0].plot(*QUAD_START, "ks", label="start")
axes[0].plot(0, 0, "k*", ms=10, label="minimum")
axes[0].set_xlabel("w_1 (curvature 1)")
axes[0].set_ylabel("w_2 (curvature 20)")
axes[0].set_title("40 steps on f(w) = (w_1^2 + 20 w_2^2) / 2")
axes[0].legend(fontsize=7, loc="lower right")
for name in ("SGD", "momentum", "Nesterov", "Adagrad", "RMSprop", "Adam"):
    axes[1].semilogy(np.maximum(f_quad[name], 1e-16), color=styles[name],
                     ls="--" if name == "Nesterov" else "-", label=name)
axes[1].set_xlabel("step")
axes[1].set_ylabel("f(w)  (log scale; minimum 0)")
axes[1].set_title("loss along the path")
axes[1].legend(fontsize=8)
ch.savefig(fig, "15_trajectories.png")

# %% [markdown]
# On the drawn valley SGD zig-zags across the steep direction (its lr is pinned just under
# 2/20) and crawls along the flat one; momentum gathers speed along the valley; Adagrad and
# RMSprop rescale each coordinate by its own gradient size, so the steep and the flat
# direction move at the same pace (this valley is aligned with the axes, which is exactly
# what a per-coordinate rescaling can fix; a rotated valley would not be). Adam with a
# constant lr keeps circling: its steps are about lr long whatever the gradient's size, so
# near the minimum it overshoots; it needs a decaying lr (section 7) to settle.
#
# ## 3. A hyper-parameter sweep: the learning rate of each optimiser
#
# C16 says "tune the hyper-parameters". The one that matters most is the learning rate, and
# its good value depends on the optimiser. Each optimiser trains the same model (same seed,
# same batches) for a few epochs at each learning rate of a grid; we keep, for each, the lr
# with the lowest validation loss. (AdamW without weight decay *is* Adam, so here it decays
# with `weight_decay = 0.5`, a value section 5 finds good.)

# %%
ch.section("3. Hyper-parameter sweep: learning rate x optimiser")
LR_GRID = {
    "SGD": [0.3, 1.0, 3.0, 10.0],
    "momentum": [0.03, 0.1, 0.3, 1.0],
    "Adagrad": [0.03, 0.1, 0.3, 1.0],
    "RMSprop": [1e-3, 3e-3, 1e-2, 3e-2],
    "Adam": [1e-3, 3e-3, 1e-2, 3e-2],
    "AdamW": [1e-3, 3e-3, 1e-2, 3e-2],
}
sweep_epochs = 2 if quick else 5
sweep = {}
for name, lrs in LR_GRID.items():
    for lr in (lrs[1:3] if quick else lrs):
        m = BowClassifier(V, seed=0)
        opt = make_optimizer(name, m, lr, weight_decay=RACE_DECAY.get(name, 0.0))
        h = train_model(m, opt, (X_train, y_train), (X_val, y_val), sweep_epochs)
        sweep[name, lr] = min(h["val_loss"]) if np.all(np.isfinite(h["val_loss"])) else np.inf
best_lr = {name: min((lr for (n, lr) in sweep if n == name), key=lambda lr: sweep[name, lr])
           for name in LR_GRID}
print(f"  best validation loss in {sweep_epochs} epochs, per learning rate:")
for name in LR_GRID:
    cells = [(lr, sweep[name, lr]) for (n, lr) in sweep if n == name]
    print(f"  {name:9}" + "".join(f"  lr {lr:<6g}{loss:6.3f}" for lr, loss in cells)
          + f"   -> best lr {best_lr[name]:g}")
ch.check("the best learning rates differ by over 100x between optimisers (SGD vs Adam)",
         best_lr["SGD"] >= 100 * best_lr["Adam"],
         f"SGD {best_lr['SGD']:g}, Adam {best_lr['Adam']:g}")

fig, ax = plt.subplots(figsize=(7, 4.3))
for i, name in enumerate(LR_GRID):
    lrs = [lr for (n, lr) in sweep if n == name]
    ax.plot(lrs, [sweep[name, lr] for lr in lrs], "o-", color=f"C{i}",
            label=name + (f" (weight decay {RACE_DECAY[name]:g})" if name in RACE_DECAY else ""))
    ax.plot(best_lr[name], sweep[name, best_lr[name]], "*", color=f"C{i}", ms=14)
ax.set_xscale("log")
ax.set_xlabel("learning rate (log scale)")
ax.set_ylabel(f"best validation loss within {sweep_epochs} epochs")
ax.set_title("Learning-rate sweep per optimiser (star: the best lr)")
ax.axhline(math.log(4), color="0.6", ls=":", label="log 4 (chance)")
ax.legend(fontsize=8)
ch.savefig(fig, "15_lr_sweep.png")

# %% [markdown]
# ## 4. The race: same model, same batches, each optimiser at its best learning rate
#
# Now the full training runs. What to expect on *this* model: the inputs are averages of
# one-hot vectors, so the embedding row of a word gets a gradient only when the word is in
# the batch, and then a small one (the word is 1 of ~36). SGD gives every weight the same
# lr, so rare words barely move; Adagrad, RMSprop and Adam divide by each weight's own
# gradient scale, so a rare word's row moves as fast as a frequent one's (section 2). The
# race measures how much that matters, and the last check looks at it directly: how far the
# rows of rare and of frequent words moved.

# %%
ch.section("4. The race: every optimiser at its best learning rate")
race, race_models = {}, {}
for name in OPTIMIZERS:
    m = BowClassifier(V, seed=0)
    opt = make_optimizer(name, m, best_lr[name], weight_decay=RACE_DECAY.get(name, 0.0))
    race[name] = train_model(m, opt, (X_train, y_train), (X_val, y_val), epochs)
    race_models[name] = m
race_label = {n: f"{n} (lr {best_lr[n]:g}" + (f", wd {RACE_DECAY[n]:g})" if n in RACE_DECAY
                                              else ")") for n in OPTIMIZERS}
print(f"  {'optimiser':10}{'lr':>8}{'train loss':>12}{'best val loss':>15}{'val loss':>10}"
      f"{'val acc':>9}")
for name, h in race.items():
    print(f"  {name:10}{best_lr[name]:>8g}{h['train_loss'][-1]:>12.4f}{min(h['val_loss']):>15.4f}"
          f"{h['val_loss'][-1]:>10.4f}{h['val_acc'][-1]:>9.3f}")
adaptive = ("Adagrad", "RMSprop", "Adam", "AdamW")
ch.check("every adaptive optimiser ends with a lower training loss than SGD and momentum",
         max(race[n]["train_loss"][-1] for n in adaptive)
         < min(race[n]["train_loss"][-1] for n in ("SGD", "momentum")))
counts = np.bincount(np.concatenate(data["train"][0]), minlength=V)
embed_start = BowClassifier(V, seed=0).embed.data
moved = {n: np.linalg.norm(race_models[n].embed.data - embed_start, axis=1)
         for n in ("SGD", "Adam")}
rare, frequent = (counts >= 2) & (counts <= 3), counts >= 50
ratio = {n: float(np.median(moved[n][rare]) / np.median(moved[n][frequent])) for n in moved}
ch.show("median distance moved by an embedding row, rare words (2-3 uses) / frequent (50+)",
        {n: round(r, 3) for n, r in ratio.items()})
ch.check("Adam moves rare words' rows relatively more than SGD does (per-weight step sizes)",
         ratio["Adam"] > 2 * ratio["SGD"], f"{ratio['Adam']:.3f} vs {ratio['SGD']:.3f}")

steps_per_epoch = math.ceil(len(y_train) / 32)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
for i, (name, h) in enumerate(race.items()):
    curve = smooth(h["loss"], steps_per_epoch)
    x = np.arange(len(curve)) + steps_per_epoch
    axes[0].semilogy(x / steps_per_epoch, curve, color=f"C{i}", label=race_label[name])
    axes[1].plot(np.arange(1, epochs + 1), h["val_loss"], "o-", color=f"C{i}", label=name)
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("training loss (moving mean over one epoch, log)")
axes[0].set_title("Training loss, same model and batches")
axes[0].legend(fontsize=8)
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("validation loss (cross-entropy)")
axes[1].set_title("Validation loss after each epoch")
axes[1].axhline(math.log(4), color="0.6", ls=":", label="log 4 (chance)")
axes[1].legend(fontsize=8)
ch.savefig(fig, "15_optimizer_race.png")

# %% [markdown]
# The training loss falls fastest with the adaptive optimisers; the validation loss tells a
# second story: after a few epochs it rises again for the ones that fit the training set
# perfectly (overfitting: 812 texts, 60,000 weights). The rest of the chapter is about that
# gap: regularisation (weight decay, dropout), schedules, augmentation, ensembles.
#
# ## 5. Weight decay vs L2 regularisation
#
# L2 regularisation adds `wd/2 ||W||^2` to the loss, so the gradient becomes `g + wd W`.
# With SGD:
#
#     W <- W - lr (g + wd W) = (1 - lr wd) W - lr g
#
# i.e. *exactly* "shrink the weights by the factor (1 - lr wd), then the plain step": L2
# and weight decay are one thing. With Adam they are not: the extra `wd W` goes through
# `m` and `v` and is divided by `sqrt(v^)` like the rest of the gradient. A weight whose
# gradients are large (a frequent word) is decayed *less*; one whose gradients are small
# (a rare word) *more*. AdamW decays every weight by the same `(1 - lr wd)`, outside the
# adaptive step, as the word "decay" promises.

# %%
ch.section("5. Weight decay vs L2: one thing for SGD, two for Adam")
ch.formula("L2:     g <- g + wd W                 (then the optimiser's rule)",
           "decay:  W <- W (1 - lr wd)            (then the rule on the raw g)")
ch.code(l2_penalty)


def five_steps(make, penalty=0.0, decay_by_hand=0.0):
    """Five steps on the first five batches, from the same start; optionally the L2 penalty
    added to the loss (autograd differentiates it) or decay applied by hand."""
    m = BowClassifier(V, seed=1)
    opt = make(m)
    for b in range(5):
        rows = np.arange(32 * b, 32 * b + 32)
        loss = F.cross_entropy(m(tl.Tensor(X_train[rows])), y_train[rows])
        if penalty:
            loss = loss + l2_penalty(m, penalty)
        opt.zero_grad()
        loss.backward()
        if decay_by_hand:
            for p in m.parameters():
                if p.ndim >= 2:
                    p.data *= 1 - opt.param_groups[0]["lr"] * decay_by_hand
        opt.step()
    return np.concatenate([p.data.ravel() for p in m.parameters()])


wd, lr = 0.1, 0.5
sgd_wd = five_steps(lambda m: optim.SGD(optim.decay_groups(m.parameters(), wd), lr=lr))
sgd_pen = five_steps(lambda m: optim.SGD(m.parameters(), lr=lr), penalty=wd)
sgd_dec = five_steps(lambda m: optim.SGD(m.parameters(), lr=lr), decay_by_hand=wd)
ch.check("SGD: weight_decay == L2 penalty in the loss (autograd)", (sgd_wd, sgd_pen, 1e-12))
ch.check("SGD: weight_decay == shrinking W by (1 - lr wd) before the plain step",
         (sgd_wd, sgd_dec, 1e-12))
adam_wd = five_steps(lambda m: optim.Adam(optim.decay_groups(m.parameters(), wd), lr=0.01))
adam_pen = five_steps(lambda m: optim.Adam(m.parameters(), lr=0.01), penalty=wd)
adamw = five_steps(lambda m: optim.AdamW(optim.decay_groups(m.parameters(), wd), lr=0.01))
adam_dec = five_steps(lambda m: optim.Adam(m.parameters(), lr=0.01), decay_by_hand=wd)
ch.check("Adam: weight_decay == L2 penalty in the loss", (adam_wd, adam_pen, 1e-10))
ch.check("AdamW == Adam on the raw gradient after shrinking W by (1 - lr wd)",
         (adamw, adam_dec, 1e-12))
gap = float(np.max(np.abs(adamw - adam_wd)))
ch.check("but AdamW != Adam with L2 after five steps", gap > 1e-3, f"max |diff| {gap:.3g}")

WD_GRID = {"Adam (L2)": [0.0, 1e-4, 1e-3, 1e-2], "AdamW": [0.0, 0.1, 0.5, 2.0]}
wd_results, wd_models = {}, {}
for label, grid in WD_GRID.items():
    for w in (grid[:1] + grid[2:3] if quick else grid):
        m = BowClassifier(V, seed=0)
        opt = make_optimizer("Adam" if label.startswith("Adam (") else "AdamW", m, 0.01,
                             weight_decay=w)
        h = train_model(m, opt, (X_train, y_train), (X_val, y_val), epochs)
        norm = math.sqrt(sum(float(np.sum(p.data ** 2)) for p in m.parameters() if p.ndim >= 2))
        wd_results[label, w] = (h["val_loss"][-1], h["val_acc"][-1], norm)
        wd_models[label, w] = (m, opt)
print(f"  {'':10}{'wd':>8}{'val loss':>10}{'val acc':>9}{'||W||':>9}")
for (label, w), (vl, va, norm) in wd_results.items():
    print(f"  {label:10}{w:>8g}{vl:>10.4f}{va:>9.3f}{norm:>9.1f}")
for label, grid in WD_GRID.items():
    norms = [wd_results[label, w][2] for w in grid if (label, w) in wd_results]
    ch.check(f"{label}: the weight norm falls as the decay grows", np.all(np.diff(norms) < 0))
    losses = {w: wd_results[label, w][0] for w in grid if (label, w) in wd_results}
    ch.check(f"{label}: some decay > 0 ends with a lower validation loss than none",
             min(v for w, v in losses.items() if w > 0) < losses[0.0],
             f"none {losses[0.0]:.3f}, best {min(losses.values()):.3f}")

# the decay each embedding row really received in the last step: lr wd / (sqrt(v^) + eps)
l2_w = WD_GRID["Adam (L2)"][2]
m_l2, opt_l2 = wd_models["Adam (L2)", l2_w]
st = opt_l2.state[id(m_l2.embed)]
v_hat = st["exp_avg_sq"] / (1 - 0.999 ** st["step"])
effective = 0.01 * l2_w / (np.sqrt(v_hat) + 1e-8)
row_decay = np.median(effective, axis=1)
used = counts > 0
ratio_decay = float(np.median(row_decay[rare]) / np.median(row_decay[frequent]))
ch.show(f"Adam + L2 (wd {l2_w:g}): median per-step decay, rare / frequent words' rows",
        ratio_decay)
ch.check("Adam + L2 decays rare words' rows more than frequent ones' (AdamW: equally)",
         ratio_decay > 2.0)

fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
for i, (label, grid) in enumerate(WD_GRID.items()):
    ws = [w for w in grid if w > 0 and (label, w) in wd_results]
    axes[0].semilogx(ws, [wd_results[label, w][0] for w in ws], "o-", color=f"C{i}",
                     label=label)
axes[0].axhline(wd_results["AdamW", 0.0][0], color="k", ls=":",
                label="no decay (Adam = AdamW then)")
axes[0].set_xlabel("weight_decay (log scale; the two methods' scales differ)")
axes[0].set_ylabel(f"validation loss after {epochs} epochs")
axes[0].set_title("Decay strength vs validation loss (lr 0.01)")
axes[0].legend(fontsize=8)
axes[1].loglog(counts[used], 0.01 * l2_w / (np.sqrt(v_hat[used].mean(axis=1)) + 1e-8), ".",
               ms=3, alpha=0.5, color="C0", label=f"Adam + L2 (wd {l2_w:g}): lr wd / sqrt(v^)")
aw = WD_GRID["AdamW"][2]
axes[1].axhline(0.01 * aw, color="C1", label=f"AdamW (wd {aw:g}): lr wd, every row")
axes[1].set_xlabel("uses of the word in the training texts (log)")
axes[1].set_ylabel("decay per step of its embedding row (log)")
axes[1].set_title("Who gets decayed: L2 through Adam vs decoupled")
axes[1].legend(fontsize=8)
ch.savefig(fig, "15_weight_decay.png")

# %% [markdown]
# ## 6. Dropout
#
# Dropout (C14's LSTM uses 0.5; C16 names it) zeroes each entry of a layer's output with
# probability p during training and scales the survivors by `1/(1 - p)`:
#
#     y = m * x / (1 - p),    m_i ~ Bernoulli(1 - p)     =>    E[y] = x
#
# so at evaluation time the layer is simply the identity. Each step trains a different
# random sub-network, so no unit can rely on a particular other one being there; the
# backward pass is `dy/dx = m / (1 - p)`. Here dropout acts on the sentence vector `e`.

# %%
ch.section("6. Dropout: y = m * x / (1 - p)")
ch.code(dropout_by_hand)
x = np.random.default_rng(5).normal(size=(4, 6))
y_hand, keep = dropout_by_hand(x, 0.5, np.random.default_rng(7))
y_lib = F.dropout(tl.Tensor(x), 0.5, training=True, generator=np.random.default_rng(7))
ch.check("by hand == F.dropout with the same generator", (y_hand, y_lib, 0.0))
many = np.mean([dropout_by_hand(x, 0.5, rng_)[0] for rng_ in
                [np.random.default_rng(s) for s in range(4000)]], axis=0)
ch.check("E[y] = x: the mean over 4000 masks is within 4 standard errors of x",
         np.all(np.abs(many - x) < 4 * np.abs(x) / math.sqrt(4000)))
xt = tl.Tensor(x, requires_grad=True)
F.dropout(xt, 0.5, training=True, generator=np.random.default_rng(7)).sum().backward()
ch.check("backward: dy/dx = m / (1 - p)", (xt.grad, keep / 0.5, 0.0))
layer = nn.Dropout(0.5, seed=0)
layer.eval()
ch.check("in eval mode nn.Dropout is the identity", (layer(tl.Tensor(x)), x, 0.0))

drop_ps = [0.0, 0.5] if quick else [0.0, 0.25, 0.5]
drop_hist = {}
for p in drop_ps:
    m = BowClassifier(V, dropout=p, seed=0)
    drop_hist[p] = train_model(m, make_optimizer("Adam", m, 0.01), (X_train, y_train),
                               (X_val, y_val), epochs, track_train=True)
for p, h in drop_hist.items():
    ch.show(f"p = {p}: train loss (eval mode), val loss, gap after {epochs} epochs",
            [h["train_eval_loss"][-1], h["val_loss"][-1],
             h["val_loss"][-1] - h["train_eval_loss"][-1]])
gaps = {p: h["val_loss"][-1] - h["train_eval_loss"][-1] for p, h in drop_hist.items()}
ch.check("dropout 0.5 narrows the gap between validation and training loss",
         gaps[0.5] < gaps[0.0], f"{gaps[0.0]:.3f} -> {gaps[0.5]:.3f}")

fig, ax = plt.subplots(figsize=(7, 4.3))
for i, (p, h) in enumerate(drop_hist.items()):
    ep = np.arange(1, epochs + 1)
    ax.semilogy(ep, h["train_eval_loss"], "--", color=f"C{i}", label=f"p = {p}: training")
    ax.semilogy(ep, h["val_loss"], "o-", color=f"C{i}", label=f"p = {p}: validation")
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy, eval mode (log scale)")
ax.set_title("Dropout on the sentence vector: training vs validation loss (Adam, lr 0.01)")
ax.legend(fontsize=8, ncol=2)
ch.savefig(fig, "15_dropout.png")

# %% [markdown]
# ## 7. Learning-rate schedules
#
# D3's "learning-rate adjustment". A large lr moves fast but cannot settle (Adam circling
# the minimum in section 2); a small one settles but crawls. Schedules start large and
# shrink, per step t of T:
#
# * **step**: `lr_t = lr * gamma^floor(t / s)`, divide by 1/gamma every s steps;
# * **cosine**: `lr_t = lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2`;
# * **warmup + cosine** (nanoGPT): linear from `lr/W` up to lr over W steps, then cosine
#   down to lr_min. Warmup matters for Adam: its first `v` estimates come from very few
#   gradients, so early steps are erratic.
#
# The schedulers of tinylm.optim against these closed forms, then one training run each
# with Adam at a peak lr of 0.1, ten times the best constant lr of the sweep: what a
# schedule buys is the freedom to start that high.

# %%
ch.section("7. Learning-rate schedules")
steps_total = epochs * steps_per_epoch
peak, floor_lr = 0.1, 0.01
warm = max(1, steps_total // 10)
hand_lr = {
    "constant": lambda t: peak,
    "step (x0.3 every T/3)": lambda t: peak * 0.3 ** (t // (steps_total // 3)),
    "cosine": lambda t: floor_lr + (peak - floor_lr) * (1 + math.cos(math.pi * t / steps_total))
    / 2,
    "warmup + cosine": lambda t: peak * (t + 1) / warm if t < warm else floor_lr + (
        peak - floor_lr) * (1 + math.cos(math.pi * (t - warm) / (steps_total - warm))) / 2,
}
makers = {
    "constant": lambda o: None,
    "step (x0.3 every T/3)": lambda o: optim.StepLR(o, step_size=steps_total // 3, gamma=0.3),
    "cosine": lambda o: optim.CosineAnnealingLR(o, T_max=steps_total, eta_min=floor_lr),
    "warmup + cosine": lambda o: optim.WarmupCosineLR(o, warmup_steps=warm,
                                                      decay_steps=steps_total, min_lr=floor_lr),
}
sched_hist = {}
for name, make in makers.items():
    m = BowClassifier(V, seed=0)
    opt = optim.Adam(m.parameters(), lr=peak)
    sched_hist[name] = train_model(m, opt, (X_train, y_train), (X_val, y_val), epochs,
                                   scheduler=make(opt))
    expected = [hand_lr[name](t) for t in range(steps_total)]
    ch.check(f"{name}: the scheduler's lr == the closed form at every step",
             (np.array(sched_hist[name]["lr"]), np.array(expected), 1e-15))
for name, h in sched_hist.items():
    ch.show(f"{name:22}: final train loss, val loss",
            [np.mean(h["loss"][-steps_per_epoch:]), h["val_loss"][-1]])
const = sched_hist["constant"]
for name in ("step (x0.3 every T/3)", "cosine", "warmup + cosine"):
    h = sched_hist[name]
    ch.check(f"{name}: lower final training AND validation loss than the constant lr 0.1",
             np.mean(h["loss"][-steps_per_epoch:]) < np.mean(const["loss"][-steps_per_epoch:])
             and h["val_loss"][-1] < const["val_loss"][-1])

fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
for i, (name, h) in enumerate(sched_hist.items()):
    axes[0].plot(h["lr"], color=f"C{i}", label=name)
    curve = smooth(h["loss"], steps_per_epoch)
    axes[1].semilogy(np.arange(len(curve)) + steps_per_epoch, curve, color=f"C{i}", label=name)
axes[0].set_xlabel("step")
axes[0].set_ylabel("learning rate")
axes[0].set_title("The schedules (Adam, peak lr 0.1, floor 0.01)")
axes[0].legend(fontsize=8)
axes[1].set_xlabel("step")
axes[1].set_ylabel("training loss (moving mean over one epoch, log)")
axes[1].set_title("Training loss under each schedule")
axes[1].legend(fontsize=8)
ch.savefig(fig, "15_schedules.png")

# %% [markdown]
# ## 8. Gradient clipping
#
# One unlucky batch can produce a huge gradient, and one step can undo many (the loss
# spikes of large training runs). Clipping by the global norm caps the length of each
# step's gradient and keeps its direction:
#
#     g <- g * min(1, C / ||g||),   ||g|| over all parameters as one vector
#
# so a plain SGD step can never move the weights further than `lr * C`. (Clipping each
# entry to [-C, C] instead changes the direction.) It matters for recurrent networks
# (chapter 08's exploding gradients) and whenever the gradient noise has heavy tails. The
# demonstration: linear regression whose noise is Student-t with 1.5 degrees of freedom,
# which has infinite variance: most batches are ordinary, a few carry enormous gradients.

# %%
ch.section("8. Gradient clipping: ||g|| capped, direction kept")
ch.code(clip_by_hand)
rng = np.random.default_rng(3)
params = [nn.Parameter(rng.normal(size=s)) for s in ((3, 4), (4,))]
for p in params:
    p.grad = rng.normal(size=p.shape) * 5
raw = [p.grad.copy() for p in params]
hand, total_hand = clip_by_hand(raw, 1.0)
total_lib = optim.clip_grad_norm_(params, 1.0)
ch.check("by hand == optim.clip_grad_norm_ (gradients and the returned norm)",
         (np.concatenate([g.ravel() for g in hand]),
          np.concatenate([p.grad.ravel() for p in params]), 1e-12)
         and abs(total_hand - total_lib) < 1e-12)
flat_raw = np.concatenate([g.ravel() for g in raw])
flat_new = np.concatenate([p.grad.ravel() for p in params])
cos_norm = flat_raw @ flat_new / np.linalg.norm(flat_raw) / np.linalg.norm(flat_new)
ch.check("norm clipping: new norm = C and the direction is unchanged (cosine 1)",
         abs(np.linalg.norm(flat_new) - 1.0) < 1e-5 and abs(cos_norm - 1) < 1e-12,
         f"||g|| {total_lib:.2f} -> {np.linalg.norm(flat_new):.6f}")
for p, g in zip(params, raw):
    p.grad = g.copy()
optim.clip_grad_value_(params, 1.0)
flat_val = np.concatenate([p.grad.ravel() for p in params])
cos_val = flat_raw @ flat_val / np.linalg.norm(flat_raw) / np.linalg.norm(flat_val)
ch.check("value clipping changes the direction (cosine < 0.99)", cos_val < 0.99,
         f"cosine {cos_val:.4f}")

ch.code(heavy_tailed_regression)
clip_levels, clip_seeds = (None, 5.0, 2.0), range(2 if quick else 4)
clip_runs = {c: [heavy_tailed_regression(c, seed, steps=300) for seed in clip_seeds]
             for c in clip_levels}
final_err = {c: [float(np.median(e[-100:])) for e, _ in runs] for c, runs in clip_runs.items()}
for c in clip_levels:
    ch.show(f"clip {c}: median ||w - w*|| over the last 100 steps, per seed",
            np.round(final_err[c], 3))
    ch.show("         longest single step", max(m.max() for _, m in clip_runs[c]))
ch.check("clipping at 5 and at 2 gives a smaller error than no clipping, on every seed",
         all(final_err[c][s] < final_err[None][s] for c in (5.0, 2.0) for s in clip_seeds))
ch.check("with clipping no SGD step is longer than lr * C",
         all(m.max() <= 0.02 * c * (1 + 1e-9) for c in (5.0, 2.0) for _, m in clip_runs[c]))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
for i, c in enumerate(clip_levels):
    errors, moves = clip_runs[c][0]
    label = "no clipping" if c is None else f"clipped at ||g|| <= {c:g}"
    axes[0].semilogy(np.arange(1, len(errors) + 1), errors, color=f"C{i}", lw=1, label=label)
    axes[1].semilogy(np.arange(1, len(moves) + 1), moves, color=f"C{i}", lw=0.7, alpha=0.8,
                     label=label)
    if c is not None:
        axes[1].axhline(0.02 * c, color=f"C{i}", ls=":", label=f"lr * C = {0.02 * c:g}")
axes[0].set_xlabel("step")
axes[0].set_ylabel("||w - w*||, distance to the true weights (log)")
axes[0].set_title("SGD (lr 0.02, batch 8), Student-t noise (1.5 d.o.f.)")
axes[0].legend(fontsize=8)
axes[1].set_xlabel("step")
axes[1].set_ylabel("length of the step ||w_t - w_(t-1)|| (log)")
axes[1].set_title("Step lengths: the spikes, and the caps")
axes[1].legend(fontsize=8, ncol=2)
ch.savefig(fig, "15_clipping.png")

# %% [markdown]
# ## 9. Data augmentation for text (B8, C16)
#
# C16 suggests "random cropping, rotation and scaling". Those are image operations: a
# photo of a cat rotated by 10 degrees is still a photo of a cat, so the rotated copy is a
# free new training example. A sentence has no rotation or scale; what plays their role
# are edits that keep the label (EDA, Wei & Zou 2019):
#
# * **random crop**: a contiguous run of the words (the text's crop);
# * **random deletion**: drop each word with probability p;
# * **random swap**: exchange two words;
# * (synonym replacement and insertion need a thesaurus, which we do not have).
#
# Whether an augmentation can help depends on the model: ours averages word vectors, so it
# cannot see word order, and a swap changes *nothing* it sees. Crop and deletion change
# which words it sees, and teach it not to rely on any single word. Each epoch draws a new
# augmented copy of the training texts.

# %%
ch.section("9. Data augmentation for text: crop, deletion, swap")
for fn in (random_crop, random_deletion, random_swap):
    ch.code(fn)
rng = np.random.default_rng(0)
sample = data["train"][0][3]
ch.show("original ", tok.decode(sample))
ch.show("crop 0.6 ", tok.decode(random_crop(sample, 0.6, rng)))
ch.show("delete .3", tok.decode(random_deletion(sample, 0.3, rng)))
ch.show("swap x2  ", tok.decode(random_swap(sample, 2, rng)))


def is_subsequence(short, long):
    it = iter(long)
    return all(t in it for t in short)


rng = np.random.default_rng(1)
seqs = data["train"][0]
deleted = [random_deletion(s, 0.3, rng) for s in seqs]
cropped = [random_crop(s, 0.6, rng) for s in seqs]
swapped = [random_swap(s, 3, rng) for s in seqs]
ch.check("deletion keeps a subsequence (order kept), never empty",
         all(is_subsequence(d, s) and len(d) >= 1 for d, s in zip(deleted, seqs)))
kept = sum(map(len, deleted)) / sum(map(len, seqs))
ch.check("deletion keeps about 1 - p = 70% of the words", abs(kept - 0.7) < 0.02,
         f"{kept:.3f}")
ch.check("crop keeps a contiguous run of ceil(0.6 n) words",
         all(len(c) == max(1, math.ceil(0.6 * len(s))) and any(
             s[i:i + len(c)] == c for i in range(len(s) - len(c) + 1))
             for c, s in zip(cropped, seqs)))
ch.check("swap keeps the same words (a permutation)",
         all(sorted(w) == sorted(s) for w, s in zip(swapped, seqs)))
ch.check("swap is invisible to a bag-of-words model: identical features",
         (bag_of_words(swapped, V), X_train, 1e-15))

AUGMENTATIONS = {
    "none": None,
    "deletion p=0.3": dict(p_delete=0.3, crop=1.0, n_swaps=0),
    "crop 0.8 + deletion 0.2": dict(p_delete=0.2, crop=0.8, n_swaps=0),
}
aug_seeds = [0] if quick else [0, 1, 2]
aug_hist = {}
for name, cfg in AUGMENTATIONS.items():
    for seed in aug_seeds:
        m = BowClassifier(V, seed=seed)
        if cfg is None:
            train = (X_train, y_train)
        else:
            aug_rng = np.random.default_rng(100 + seed)
            train = (lambda epoch, cfg=cfg, r=aug_rng:
                     (bag_of_words(augment(seqs, r, **cfg), V), y_train))
        aug_hist[name, seed] = train_model(m, make_optimizer("Adam", m, 0.01), train,
                                           (X_val, y_val), epochs, seed=seed)
aug_final = {name: float(np.mean([aug_hist[name, s]["val_loss"][-1] for s in aug_seeds]))
             for name in AUGMENTATIONS}
aug_acc = {name: float(np.mean([aug_hist[name, s]["val_acc"][-1] for s in aug_seeds]))
           for name in AUGMENTATIONS}
for name in AUGMENTATIONS:
    ch.show(f"{name:24}: val loss, val acc ("
            + (f"mean of {len(aug_seeds)} seeds)" if len(aug_seeds) > 1 else "one seed)"),
            [aug_final[name], aug_acc[name]])
ch.check("deletion lowers the final validation loss (mean over seeds)",
         aug_final["deletion p=0.3"] < aug_final["none"],
         f"{aug_final['none']:.3f} -> {aug_final['deletion p=0.3']:.3f}")

fig, ax = plt.subplots(figsize=(7, 4.3))
for i, name in enumerate(AUGMENTATIONS):
    curves = np.array([aug_hist[name, s]["val_loss"] for s in aug_seeds])
    ep = np.arange(1, epochs + 1)
    ax.plot(ep, curves.mean(axis=0), "o-", color=f"C{i}", label=name)
    if len(aug_seeds) > 1:
        ax.fill_between(ep, curves.min(axis=0), curves.max(axis=0), color=f"C{i}", alpha=0.15)
ax.set_xlabel("epoch")
ax.set_ylabel("validation loss (cross-entropy)")
ax.set_title("Text augmentation, Adam lr 0.01 ("
             + (f"mean and range over {len(aug_seeds)} seeds)" if len(aug_seeds) > 1
                else "one seed)"))
ax.legend(fontsize=8)
ch.savefig(fig, "15_augmentation.png")

# %% [markdown]
# ## 10. Ensembling, and the test set
#
# C16's last item: combine several models, "by voting or weighted averaging". Averaging
# the predicted probabilities of models trained from different seeds can never have a
# worse log-loss than the models' average log-loss: `-log` is convex, so
# `-log(mean_k p_k) <= mean_k(-log p_k)` for every example (Jensen's inequality); how much
# better depends on how differently the models err.
#
# The recipe combines what helped above: AdamW (lr 0.01, weight decay 0.5), dropout 0.25,
# deletion augmentation, a cosine schedule. Only now, with every choice made on the
# validation split, is the test split used, once: C15's last step, "evaluate".

# %%
ch.section("10. Ensembling, and the test set used once")
n_models = 2 if quick else 4
members, member_hist = [], []
for seed in range(n_models):
    m = BowClassifier(V, dropout=0.25, seed=10 + seed)
    opt = make_optimizer("AdamW", m, 0.01, weight_decay=0.5)
    aug_rng = np.random.default_rng(200 + seed)
    train = (lambda epoch, r=aug_rng:
             (bag_of_words(augment(seqs, r, p_delete=0.3, crop=1.0, n_swaps=0), V), y_train))
    member_hist.append(train_model(m, opt, train, (X_val, y_val), epochs, seed=seed,
                                   scheduler=optim.CosineAnnealingLR(opt, T_max=steps_total)))
    members.append(m)
singles = [evaluate(m, X_val, y_val) for m in members]
probs = ensemble_probabilities(members, X_val)
ens_nll = float(-np.mean(np.log(probs[np.arange(len(y_val)), y_val])))
ens_acc = float(np.mean(probs.argmax(axis=1) == y_val))
ch.show("single models: val loss", [s[0] for s in singles])
ch.show("single models: val accuracy", [s[1] for s in singles])
ch.show("ensemble of their probabilities: val loss, val accuracy", [ens_nll, ens_acc])
ch.check("ensemble probabilities are distributions (rows sum to 1)",
         (probs.sum(axis=1), np.ones(len(y_val)), 1e-12))
ch.check("ensemble val loss <= the mean of the members' (Jensen: -log is convex)",
         ens_nll <= np.mean([s[0] for s in singles]) + 1e-12)
test_single = evaluate(members[0], X_test, y_test)
test_probs = ensemble_probabilities(members, X_test)
test_acc = float(np.mean(test_probs.argmax(axis=1) == y_test))
test_majority = float(np.mean(y_test == np.bincount(y_train).argmax()))
ch.show("TEST accuracy: first model, ensemble, majority class",
        [test_single[1], test_acc, test_majority])
ch.check("the ensemble's test accuracy is far above the majority class",
         test_acc > test_majority + 0.3)

# %% [markdown]
# What this chapter found on this small task (812 training texts): the optimiser matters
# most when the weights see gradients of very different sizes (rare and frequent words);
# every optimiser needs its own learning rate, found by a sweep; and the validation loss,
# not the training loss, says when regularisation (decay, dropout, augmentation,
# ensembles) is needed. Chapter 17 takes up C16's first item, larger models.

# %%
ch.finish()
