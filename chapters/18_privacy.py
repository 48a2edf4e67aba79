# %% [markdown]
# # Chapter 18: privacy: differential privacy and federated learning
#
# C17 (document 002, 9.5) answers "how are a large model's security and privacy
# guaranteed?" with five points: **differential privacy, "such as adding noise and
# sampling"**; encryption of data and parameters; a **privacy budget** that limits how
# much the model may reveal; **federated learning**, "training while the users' data stays
# private"; and following the law. Encryption and the law are not formulas; the other
# three are, and this chapter runs them:
#
# 1. what differential privacy promises, on the simplest mechanism: one number plus
#    Gaussian noise; the privacy loss, the exact (epsilon, delta) curve, and the Renyi
#    divergence the accountant uses;
# 2. why training needs it: one example's gradient reveals which words its text contains;
#    per-example gradients, by a loop and by the batch trick;
# 3. DP-SGD's step (Abadi et al. 2016): clip every example's gradient, add noise, divide;
# 4. the privacy budget: the RDP accountant of the sampled Gaussian mechanism (noise AND
#    sampling), checked against its closed form, numerical integration and a published
#    value;
# 5. DP-SGD on a real classifier: accuracy against epsilon;
# 6. federated averaging over simulated clients, with data spread evenly (IID) and not.
#
# The data are chapter 13's and 15's: docstrings of four standard-library packages (asyncio,
# email, unittest, xml), 812 training texts, 4 classes. The model is softmax regression on
# L2-normalised bag-of-words features, small enough to train a few dozen times, simple
# enough that its per-example gradient has a closed form. No files are needed.

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

import tinylm as tl
from tinylm import functional as F
from tinylm import privacy
from tinylm.chapter import Chapter, plt
from tinylm.datasets import stdlib_docstrings
from tinylm.text import WordTokenizer

# %% [markdown]
# ## The tools of this chapter
#
# The data; softmax regression in NumPy (its loss, its batch gradient, its per-example
# gradients); the Gaussian mechanism's exact privacy curve; DP-SGD's training loop; the
# federated split, local training and FedAvg. The reusable parts (clipping, noise,
# sampling, the accountant, the server average) live in `tinylm.privacy`. The tests
# (`tests/test_chapter_18.py`, marker `ch18`; `tests/test_privacy.py`) use them.

# %%
NUM_CLASSES = 4
DELTA = 1e-4        # delta well below 1/N (N = 812): the chance the guarantee may fail


def load_features(min_count=2, seed=0):
    """The docstrings (seeded stratified train/val/test), a word vocabulary from the
    training texts, and each text as L2-normalised word counts x / ||x|| (so ||x|| = 1:
    every example's gradient is bounded, see ``per_example_grads``).
    Returns {"vocab_size", "train": (X, y, ids), "val": ..., "test": ...}."""
    parts = {s: stdlib_docstrings(split=s, seed=seed) for s in ("train", "val", "test")}
    tok = WordTokenizer.train(parts["train"][0], min_count=min_count, lower=True)
    V = tok.vocab_size
    out = {"vocab_size": V, "tokenizer": tok}
    for split, (texts, labels) in parts.items():
        ids = [tok.encode(t) for t in texts]
        X = np.zeros((len(ids), V))
        for i, s in enumerate(ids):
            np.add.at(X[i], s, 1.0)
        X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        out[split] = (X, np.array(labels), ids)
    return out


def softmax_np(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def init_params(vocab_size, num_classes=NUM_CLASSES):
    """Softmax regression starts at zero: logits 0, every class 1/C."""
    return [np.zeros((num_classes, vocab_size)), np.zeros(num_classes)]


def loss_and_accuracy(params, X, y):
    """Mean cross-entropy of softmax(X W^T + b) and accuracy."""
    W, b = params
    p = softmax_np(X @ W.T + b)
    return (float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-300))),
            float(np.mean(p.argmax(axis=1) == y)))


def per_example_grads(params, X, y):
    """The gradient of each example's cross-entropy, by the batch trick: with
    delta_i = softmax(z_i) - onehot(y_i) (dL_i/dz_i), dW_i = delta_i x_i^T and db_i = delta_i.
    ||dW_i|| = ||delta_i|| ||x_i|| <= sqrt(2) for ||x_i|| = 1. Returns [(B, C, V), (B, C)]."""
    W, b = params
    delta = softmax_np(X @ W.T + b) - np.eye(W.shape[0])[y]
    return list(privacy.per_example_linear_grads(X, delta))


def batch_grad(params, X, y):
    """The mean gradient over the batch: (1/B) sum_i of the per-example ones, without
    forming them: dW = delta^T X / B."""
    W, b = params
    delta = softmax_np(X @ W.T + b) - np.eye(W.shape[0])[y]
    return [delta.T @ X / len(y), delta.mean(axis=0)]


def per_example_grads_by_loop(params, X, y):
    """The same gradients the slow, obvious way: one tinylm backward pass per example."""
    gW, gb = [], []
    for i in range(len(y)):
        W = tl.Tensor(params[0].copy(), requires_grad=True)
        b = tl.Tensor(params[1].copy(), requires_grad=True)
        F.cross_entropy(F.linear(tl.Tensor(X[i:i + 1]), W, b), y[i:i + 1]).backward()
        gW.append(W.grad)
        gb.append(b.grad)
    return [np.array(gW), np.array(gb)]


def words_in_update(grad_W, threshold=1e-12):
    """What an observer learns from one example's gradient dW = delta x^T: the columns that
    are not zero are exactly the words of the text (x_j != 0)."""
    return set(np.flatnonzero(np.abs(grad_W).max(axis=0) > threshold).tolist())


def phi(x):
    """The standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def gaussian_delta(epsilon, noise_multiplier):
    """The exact delta(epsilon) of the Gaussian mechanism, sensitivity 1, noise N(0, s^2)
    (Balle & Wang 2018): with mu = 1/s,
    delta = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu)."""
    mu = 1.0 / noise_multiplier
    return phi(mu / 2 - epsilon / mu) - math.exp(epsilon) * phi(-mu / 2 - epsilon / mu)


def gaussian_epsilon(delta, noise_multiplier):
    """The smallest epsilon with gaussian_delta(epsilon) <= delta (bisection: delta falls
    as epsilon grows)."""
    low, high = 0.0, 1.0
    while gaussian_delta(high, noise_multiplier) > delta:
        low, high = high, 2 * high
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (low, mid) if gaussian_delta(mid, noise_multiplier) <= delta else (mid, high)
    return high


def dp_sgd(X, y, noise_multiplier, max_norm, lr, steps, sample_rate, seed=0, private=True,
           params=None):
    """DP-SGD (Abadi et al. 2016, with Poisson sampling): every step draws each example
    with probability ``sample_rate``, computes per-example gradients, and (``private``)
    clips each to ``max_norm``, adds N(0, (noise_multiplier max_norm)^2), divides by the
    expected batch size; else the plain mean over the expected batch size. Then
    w <- w - lr g. Returns the parameters. The samples and the noise come from two
    generators seeded by ``seed``, so private and non-private runs see the same batches."""
    sample_rng, noise_rng = (np.random.default_rng([seed, k]) for k in (0, 1))
    params = [p.copy() for p in (params or init_params(X.shape[1]))]
    expected = sample_rate * len(y)
    for _ in range(steps):
        rows = privacy.poisson_sample(len(y), sample_rate, sample_rng)
        grads = per_example_grads(params, X[rows], y[rows])
        if private:
            g = privacy.dp_noisy_gradient(grads, max_norm, noise_multiplier, expected,
                                          noise_rng)
        else:
            g = [a.sum(axis=0) / expected for a in grads]
        for p, gp in zip(params, g):
            p -= lr * gp
    return params


def split_clients(y, num_clients, iid, seed=0):
    """Row indices of each client. IID: a random equal split. Non-IID (McMahan et al.
    2017): sort by label, cut into 2 * num_clients shards, give each client two random
    shards, so most clients see one or two classes only."""
    rng = np.random.default_rng(seed)
    if iid:
        return np.array_split(rng.permutation(len(y)), num_clients)
    shards = np.array_split(np.argsort(y, kind="stable"), 2 * num_clients)
    order = rng.permutation(2 * num_clients)
    return [np.concatenate([shards[order[2 * k]], shards[order[2 * k + 1]]])
            for k in range(num_clients)]


def local_sgd(params, X, y, epochs, lr, batch_size, rng):
    """A client's work in one round: ``epochs`` passes of minibatch SGD over its own data,
    starting from the server's weights. Only the resulting weights leave the client."""
    params = [p.copy() for p in params]
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            rows = order[start:start + batch_size]
            for p, g in zip(params, batch_grad(params, X[rows], y[rows])):
                p -= lr * g
    return params


def fedavg(X, y, clients, rounds, local_epochs, lr, batch_size=16, seed=0, val=None):
    """Federated averaging: each round every client runs ``local_sgd`` from the current
    global weights; the server sets w = sum_k (n_k / n) w_k. Returns the final weights and
    the validation accuracy after each round (when ``val`` is given)."""
    rng = np.random.default_rng(seed)
    params, history = init_params(X.shape[1]), []
    for _ in range(rounds):
        updates = [local_sgd(params, X[rows], y[rows], local_epochs, lr, batch_size, rng)
                   for rows in clients]
        params = privacy.federated_average(updates, [len(rows) for rows in clients])
        if val is not None:
            history.append(loss_and_accuracy(params, *val)[1])
    return params, history


# %%
ch = Chapter(18, "Privacy: differential privacy (noise and sampling), the privacy budget, "
                 "federated learning")
quick = ch.quick

# %% [markdown]
# ## 1. What differential privacy promises
#
# A randomised computation M is **(epsilon, delta)-differentially private** if for any two
# datasets D, D' that differ in one example (one added or removed) and any set S of
# outcomes
#
#     P[M(D) in S] <= e^epsilon P[M(D') in S] + delta.
#
# Whatever an observer sees, it is almost as likely with you in the data as without you;
# epsilon says how "almost", delta is a small probability where the bound may fail.
#
# The **Gaussian mechanism** releases `f(D) + N(0, sigma^2)` for a query f whose value
# changes by at most 1 when one example changes (sensitivity 1; e.g. a count). For D, D'
# the outputs are N(c, sigma^2) and N(c - 1, sigma^2). At an outcome o the **privacy loss**
# is `L(o) = log p_D(o) / p_D'(o) = (2 (o - c) + 1) / (2 sigma^2)`; with o drawn from
# M(D) it is normal with mean `1 / (2 sigma^2)` and variance `1 / sigma^2`. The exact
# trade-off between epsilon and delta follows (Balle & Wang 2018):
#
#     delta(eps) = Phi(1/(2 sigma) - eps sigma) - e^eps Phi(-1/(2 sigma) - eps sigma)
#
# The accountant of section 4 works instead with the **Renyi divergence** of order alpha,
# `D_alpha(P || Q) = log E_Q[(p/q)^alpha] / (alpha - 1)`, which for these two Gaussians is
# `alpha / (2 sigma^2)`, and which adds up over repeated steps.

# %%
ch.section("1. The Gaussian mechanism: privacy loss, delta(epsilon), Renyi divergence")
ch.formula("delta(epsilon) = P_D[L > epsilon] - e^epsilon P_D'[L > epsilon]  (the tightest)")
sigma = 2.0
rng = np.random.default_rng(0)
o = 0.0 + sigma * rng.standard_normal(200_000)          # outputs of M(D), c = 0
loss = (2 * (o - 0.0) + 1) / (2 * sigma ** 2)             # log p_D(o) / p_D'(o)
ch.show("privacy loss L(o), o ~ M(D): mean, variance", [loss.mean(), loss.var()])
ch.show("theory: 1 / (2 sigma^2), 1 / sigma^2", [1 / (2 * sigma ** 2), 1 / sigma ** 2])
ch.check("the privacy loss is N(1/(2 sigma^2), 1/sigma^2)",
         abs(loss.mean() - 1 / 8) < 4 * 0.5 / math.sqrt(len(o))
         and abs(loss.var() / 0.25 - 1) < 0.02)
eps_grid = np.array([0.25, 0.5, 1.0])
loss_q = (2 * (o - 1.0) + 1) / (2 * sigma ** 2)          # L at outputs of M(D') = o - 1
mc = [np.mean(loss > e) - math.exp(e) * np.mean(loss_q > e) for e in eps_grid]
exact = [gaussian_delta(e, sigma) for e in eps_grid]
ch.show("delta(epsilon) for epsilon = 0.25, 0.5, 1: Monte Carlo", np.array(mc))
ch.show("                                             formula", np.array(exact))
ch.check("delta(epsilon) formula == Monte Carlo (200,000 draws)",
         (np.array(mc), np.array(exact), 0.005))
orders = np.array([2, 4, 8, 16])
z = np.linspace(-40, 40, 200_001)
log_ratio = (2 * z - 1) / (2 * sigma ** 2)                  # log N(1, s^2) / N(0, s^2)
log_q = -z ** 2 / (2 * sigma ** 2) - 0.5 * math.log(2 * math.pi * sigma ** 2)
renyi = []
for a in orders:
    f = np.exp(a * log_ratio + log_q)
    renyi.append(math.log((z[1] - z[0]) * (f.sum() - (f[0] + f[-1]) / 2)) / (a - 1))
ch.show("Renyi divergence at alpha = 2, 4, 8, 16: numerical", np.array(renyi))
ch.show("                  closed form alpha / (2 sigma^2)", privacy.rdp_gaussian(sigma, orders))
ch.check("D_alpha(N(1, s^2) || N(0, s^2)) = alpha / (2 sigma^2) (numerical integration)",
         (np.array(renyi), privacy.rdp_gaussian(sigma, orders), 1e-8))
ch.code(privacy.rdp_to_epsilon)
sigmas = [0.5, 1.0, 2.0, 4.0]
exact_eps = [gaussian_epsilon(DELTA, s) for s in sigmas]
rdp_eps = [privacy.rdp_to_epsilon(privacy.DEFAULT_ORDERS, privacy.rdp_gaussian(s), DELTA)[0]
           for s in sigmas]
ch.show(f"one release, delta = {DELTA:g}: exact epsilon for sigma = {sigmas}", np.array(exact_eps))
ch.show("                                 RDP bound (classic conversion)", np.array(rdp_eps))
ch.check("the RDP route is an upper bound: never below the exact epsilon",
         all(r >= e - 1e-9 for r, e in zip(rdp_eps, exact_eps)))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
grid = np.linspace(-7, 8, 400)
for i, s in enumerate((1.0, 3.0)):
    pdf = np.exp(-grid ** 2 / (2 * s ** 2)) / math.sqrt(2 * math.pi * s ** 2)
    pdf1 = np.exp(-(grid - 1) ** 2 / (2 * s ** 2)) / math.sqrt(2 * math.pi * s ** 2)
    axes[0].plot(grid, pdf, color=f"C{i}", label=f"M(D'): count 0 + N(0, {s:g}^2)")
    axes[0].plot(grid, pdf1, "--", color=f"C{i}", label=f"M(D): count 1 + N(0, {s:g}^2)")
axes[0].set_xlabel("released value")
axes[0].set_ylabel("probability density")
axes[0].set_title("Gaussian mechanism: one example more or less (sensitivity 1)")
axes[0].legend(fontsize=8)
eps_axis = np.linspace(0.01, 6, 200)
for i, s in enumerate((0.5, 1.0, 2.0)):
    axes[1].semilogy(eps_axis, [max(gaussian_delta(e, s), 1e-12) for e in eps_axis],
                     color=f"C{i}", label=f"sigma = {s:g}")
axes[1].axhline(DELTA, color="k", ls=":", label=f"delta = {DELTA:g}")
axes[1].set_ylim(1e-8, 1)
axes[1].set_xlabel("epsilon")
axes[1].set_ylabel("delta(epsilon), exact (log scale)")
axes[1].set_title("(epsilon, delta) pairs one Gaussian release satisfies")
axes[1].legend(fontsize=8)
ch.savefig(fig, "18_gaussian_mechanism.png")

# %% [markdown]
# ## 2. Why a gradient needs protecting, and per-example gradients
#
# Softmax regression: logits `z = W x + b`, loss `-log softmax(z)_y`. For one example the
# gradient is `dW = delta x^T` with `delta = softmax(z) - onehot(y)`: an outer product,
# whose column j is zero exactly when word j is absent from the text. So **one example's
# gradient lists the words of its text** (and `delta` tells its label). A federated client
# that trains on one document, or an observer who sees one unprotected update, learns them.
#
# DP-SGD must bound each example's influence, so it needs each example's gradient, not only
# their sum. The obvious way is one backward pass per example; the batch trick gets all of
# them at once: the batch gradient `sum_i delta_i x_i^T` is already a sum of per-example
# outer products; keep the terms apart (`tinylm.privacy.per_example_linear_grads`).

# %%
ch.section("2. One gradient reveals the text; per-example gradients two ways")
data = load_features()
V = data["vocab_size"]
X_train, y_train, ids_train = data["train"]
X_val, y_val, _ = data["val"]
X_test, y_test, _ = data["test"]
N = len(y_train)
ch.show("train / val / test texts", [N, len(y_val), len(y_test)])
ch.show("vocabulary size V (features per text)", V)
params0 = init_params(V)
rng = np.random.default_rng(1)
params_rand = [0.1 * rng.standard_normal(p.shape) for p in params0]
one = per_example_grads(params_rand, X_train[:1], y_train[:1])[0][0]
leaked = words_in_update(one)
ch.show("words of text 0", sorted(data["tokenizer"].decode([i]) for i in set(ids_train[0]))[:12])
ch.check("its gradient's non-zero columns are exactly its words",
         leaked == set(ids_train[0]), f"{len(leaked)} words recovered")
noisy = privacy.dp_noisy_gradient(
    [g[:1] for g in per_example_grads(params_rand, X_train[:1], y_train[:1])], 1.0, 1.0, 1.0,
    np.random.default_rng(2))[0]
top = set(np.argsort(-np.abs(noisy).max(axis=0))[:len(leaked)].tolist())
hit = len(top & leaked) / len(leaked)
ch.show("with DP noise (C = 1, sigma = 1): share of the top columns that are real words", hit)
ch.check("after clipping and noise the largest columns no longer name the words (< 30 %)",
         hit < 0.3)

batch = np.arange(16)
ch.code(per_example_grads)
start = time.perf_counter()
trick = per_example_grads(params_rand, X_train[batch], y_train[batch])
t_trick = time.perf_counter() - start
start = time.perf_counter()
loop = per_example_grads_by_loop(params_rand, X_train[batch], y_train[batch])
t_loop = time.perf_counter() - start
ch.check("batch trick == a loop of tinylm backward passes (16 examples)",
         (np.concatenate([trick[0].ravel(), trick[1].ravel()]),
          np.concatenate([loop[0].ravel(), loop[1].ravel()]), 1e-12))
ch.show("time: batch trick, loop (ms)", [1e3 * t_trick, 1e3 * t_loop])
mean = batch_grad(params_rand, X_train[batch], y_train[batch])
ch.check("the mean of the per-example gradients == the batch gradient",
         (np.concatenate([trick[0].mean(0).ravel(), trick[1].mean(0)]),
          np.concatenate([mean[0].ravel(), mean[1]]), 1e-15))
_, norms_all = privacy.clip_per_example(per_example_grads(params0, X_train, y_train), 1.0)
ch.check("every per-example gradient norm is at most sqrt(2) * sqrt(1 + 1) (||x|| = 1)",
         norms_all.max() <= 2.0 + 1e-12, f"max {norms_all.max():.4f}")

# %% [markdown]
# ## 3. DP-SGD's step: clip, add noise, divide
#
# For a Poisson sample B (each example drawn with probability q):
#
#     g_i <- g_i * min(1, C / ||g_i||)                          clip each example
#     g~  = (sum_{i in B} g_i + N(0, sigma^2 C^2 I)) / (q N)     add noise, divide
#
# Clipping gives the sum a sensitivity of C: with one example more or less, it moves by at
# most C. The noise is sigma times that sensitivity, so each step is a Gaussian mechanism
# with noise multiplier sigma, applied to a random sample: the "noise and sampling" of C17.
# Dividing by the *expected* batch size q N, not the drawn one, keeps the batch size itself
# from revealing anything.

# %%
ch.section("3. The DP-SGD step: per-example clipping and Gaussian noise")
ch.code(privacy.clip_per_example)
ch.code(privacy.dp_noisy_gradient)
grads = per_example_grads(params_rand, X_train[:64], y_train[:64])
_, norms = privacy.clip_per_example(grads, 1.0)
C = float(np.median(norms))          # half the examples get clipped
clipped, _ = privacy.clip_per_example(grads, C)
new_norms = np.sqrt((clipped[0] ** 2).sum((1, 2)) + (clipped[1] ** 2).sum(1))
ch.show("per-example norms before clipping: min, median, max",
        [norms.min(), np.median(norms), norms.max()])
ch.check(f"after clipping every norm is <= C = {C:.4f} (the median norm)",
         new_norms.max() <= C + 1e-12)
small = norms <= C
ch.check(f"the {small.sum()} examples already under C are untouched",
         (clipped[0][small], grads[0][small], 0.0))
total = clipped[0].sum(0)
worst = max(np.linalg.norm(total - np.delete(clipped[0], i, 0).sum(0)) for i in range(64))
ch.check("sensitivity: removing any one example moves the clipped sum by <= C",
         worst <= C + 1e-12, f"largest move {worst:.4f}")
few = [g[:8] for g in grads]
draws = np.array([privacy.dp_noisy_gradient(few, C, 1.5, 32.0, np.random.default_rng(s))[0]
                  for s in range(300)])
ch.show("noise std of g~ (each weight over 300 draws, averaged), measured vs sigma C / (q N)",
        [draws.std(axis=0).mean(), 1.5 * C / 32.0])
ch.check("the noise has standard deviation sigma C / (q N) (within 1%)",
         abs(draws.std(axis=0).mean() / (1.5 * C / 32.0) - 1) < 0.01)
# the largest of 7368 mean deviations stays within 6 standard errors
ch.check("and the noisy gradient is centred on the clipped sum / (q N)",
         (draws.mean(axis=0), privacy.clip_per_example(few, C)[0][0].sum(0) / 32.0,
          6 * 1.5 * C / 32.0 / math.sqrt(300)))
sizes = [len(privacy.poisson_sample(N, 64 / N, np.random.default_rng(s))) for s in range(2000)]
ch.show("Poisson batch sizes, q N = 64: mean, std", [np.mean(sizes), np.std(sizes)])
ch.check("Poisson sampling: mean batch size q N, std sqrt(q (1 - q) N)",
         abs(np.mean(sizes) - 64) < 0.5 and abs(np.std(sizes) / math.sqrt(64 * (1 - 64 / N)) - 1)
         < 0.06)

# %% [markdown]
# ## 4. The privacy budget: accounting for T noisy, sampled steps
#
# One DP-SGD step touches a random q-fraction of the data; training repeats it T times.
# The **RDP accountant** (Mironov 2017; Mironov, Talwar & Zhang 2019) adds up the Renyi
# divergence of every step and converts the total to (epsilon, delta) once at the end. For
# the sampled Gaussian mechanism at an integer order alpha:
#
#     A_alpha = sum_k C(alpha, k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2))
#     rdp(alpha) = log(A_alpha) / (alpha - 1)                 (one step)
#     epsilon = min_alpha  T rdp(alpha) + log(1/delta) / (alpha - 1)
#
# Assumptions (all needed): one example added or removed; Poisson sampling (the code above;
# a shuffled pass over the data is a different mechanism); clipping to C; fresh noise every
# step. With q = 1 the sum collapses to the Gaussian mechanism's `alpha / (2 sigma^2)`;
# sampling makes each step far cheaper (the "sampling" of C17 is privacy amplification).
# The **privacy budget** of C17 is then concrete: a fixed epsilon buys a number of steps.

# %%
ch.section("4. The accountant: RDP of the sampled Gaussian mechanism")
ch.code(privacy.rdp_sampled_gaussian)
ch.check("q = 1: the sum == alpha / (2 sigma^2)",
         (privacy.rdp_sampled_gaussian(1 - 1e-12, 1.3, [2, 5, 9]),
          np.array([2, 5, 9]) / (2 * 1.3 ** 2), 1e-8))
q_demo, s_demo = 0.05, 1.0
z = np.linspace(-30, 32, 400_001)
numeric = []
for a in (2, 4, 8):
    ratio = (1 - q_demo) + q_demo * np.exp((2 * z - 1) / 2)   # mixture / N(0, 1)
    f = ratio ** a * np.exp(-z ** 2 / 2) / math.sqrt(2 * math.pi)
    numeric.append(math.log((z[1] - z[0]) * (f.sum() - (f[0] + f[-1]) / 2)) / (a - 1))
closed = privacy.rdp_sampled_gaussian(q_demo, s_demo, [2, 4, 8])
ch.show("q = 0.05, sigma = 1, alpha = 2, 4, 8: closed form", closed)
ch.show("                       numerical integration", np.array(numeric))
ch.check("the binomial sum == D_alpha((1-q) N(0,1) + q N(1,1) || N(0,1)), integrated",
         (closed, np.array(numeric), 1e-8))
abadi, _ = privacy.dp_sgd_epsilon(0.01, 4.0, 10_000, 1e-5)
ch.show("Abadi et al. 2016's example: q = 0.01, sigma = 4, T = 10,000, delta = 1e-5", abadi)
ch.check("reproduces their epsilon ~ 1.26", abs(abadi - 1.26) < 0.01)

q = 64 / N
steps_per_epoch = round(1 / q)
epoch_axis = np.arange(1, 41)
fig, ax = plt.subplots(figsize=(7, 4.3))
curves = {}
for i, s in enumerate((0.6, 1.0, 2.0, 4.0)):
    rdp_step = privacy.rdp_sampled_gaussian(q, s)
    curves[s] = [privacy.rdp_to_epsilon(privacy.DEFAULT_ORDERS, e * steps_per_epoch * rdp_step,
                                        DELTA)[0] for e in epoch_axis]
    ax.semilogy(epoch_axis, curves[s], color=f"C{i}", label=f"sigma = {s:g}, q = 64/{N}")
no_amp = privacy.rdp_gaussian(1.0)
ax.semilogy(epoch_axis, [privacy.rdp_to_epsilon(privacy.DEFAULT_ORDERS, e * steps_per_epoch
                                                * no_amp, DELTA)[0] for e in epoch_axis],
            "--", color="C1", label="sigma = 1 without amplification by sampling (q = 1)")
ax.set_xlabel(f"epochs ({steps_per_epoch} steps each)")
ax.set_ylabel(f"epsilon at delta = {DELTA:g} (log scale)")
ax.set_title(f"The privacy budget spent by DP-SGD on N = {N} examples")
ax.legend(fontsize=8)
ch.savefig(fig, "18_epsilon.png")
ch.check("epsilon grows with the steps and falls with sigma",
         all(np.all(np.diff(c) > 0) for c in curves.values())
         and all(curves[a][-1] > curves[b][-1] for a, b in ((0.6, 1.0), (1.0, 2.0), (2.0, 4.0))))
budget = 3.0
allowed = privacy.max_steps_for_epsilon(q, 1.2, budget, DELTA)
ch.show(f"budget epsilon = {budget:g}: DP-SGD steps allowed at sigma = 1.2", allowed)
ch.check("the budget is exact: T steps fit, T + 1 do not",
         privacy.dp_sgd_epsilon(q, 1.2, allowed, DELTA)[0] <= budget
         < privacy.dp_sgd_epsilon(q, 1.2, allowed + 1, DELTA)[0])
sigma_needed = privacy.noise_multiplier_for_epsilon(budget, q, 20 * steps_per_epoch, DELTA)
ch.show(f"noise multiplier needed for 20 epochs within epsilon = {budget:g}", sigma_needed)

# %% [markdown]
# ## 5. DP-SGD on the classifier: accuracy against epsilon
#
# The same model and learning rate, trained privately at several noise multipliers, and
# non-privately (plain minibatch SGD on the same Poisson samples). Each private run's
# epsilon comes from the accountant. On 812 examples privacy is expensive: q = 64/812 is
# large, so every step costs a lot of budget (a dataset 100 times larger would pay far less
# for the same accuracy, since both q and the needed steps per example shrink).

# %%
ch.section("5. DP-SGD on the docstring classifier: accuracy against epsilon")
ch.code(dp_sgd)
epochs = 10 if quick else 20
T = epochs * steps_per_epoch
lr, C = 3.0, 1.0
noise_levels = [0.8, 2.0, 4.0] if quick else [0.6, 0.8, 1.2, 2.0, 4.0]
seeds = [0] if quick else [0, 1]
results = {}
for s in noise_levels:
    accs = [loss_and_accuracy(dp_sgd(X_train, y_train, s, C, lr, T, q, seed=sd), X_val,
                              y_val)[1] for sd in seeds]
    results[s] = (privacy.dp_sgd_epsilon(q, s, T, DELTA)[0], float(np.mean(accs)))
baseline = float(np.mean([loss_and_accuracy(dp_sgd(X_train, y_train, 0, C, lr, T, q, seed=sd,
                                                   private=False), X_val, y_val)[1]
                          for sd in seeds]))
clip_only = float(np.mean([loss_and_accuracy(dp_sgd(X_train, y_train, 0.0, C, lr, T, q,
                                                    seed=sd), X_val, y_val)[1] for sd in seeds]))
print(f"  {epochs} epochs = {T} steps, q = {q:.4f}, C = {C}, lr = {lr}, delta = {DELTA:g}")
print(f"  {'sigma':>6} {'epsilon':>9} {'val accuracy':>13}")
for s, (eps, acc) in results.items():
    print(f"  {s:>6g} {eps:>9.2f} {acc:>13.3f}")
print(f"  {'clipping only (sigma 0, epsilon infinite)':>41}: {clip_only:.3f}")
print(f"  {'non-private SGD':>41}: {baseline:.3f}")
eps_sorted = [results[s][0] for s in noise_levels]
ch.check("more noise, smaller epsilon", np.all(np.diff(eps_sorted) < 0))
ch.check("the least private run beats the most private one",
         results[noise_levels[0]][1] > results[noise_levels[-1]][1])
ch.check("non-private SGD beats the most private run by more than 10 points",
         baseline > results[noise_levels[-1]][1] + 0.10)
majority = float(np.mean(y_val == np.bincount(y_train).argmax()))
ch.check("every private model beats always answering the largest class",
         all(acc > majority for _, acc in results.values()),
         f"majority class {majority:.3f}")

fig, ax = plt.subplots(figsize=(7, 4.3))
xs = [results[s][0] for s in noise_levels]
ax.semilogx(xs, [results[s][1] for s in noise_levels], "o-", color="C0", label="DP-SGD")
for s in noise_levels:
    ax.annotate(f"sigma {s:g}", (results[s][0], results[s][1]), textcoords="offset points",
                xytext=(4, -12), fontsize=8)
ax.axhline(baseline, color="C2", ls="--", label="non-private SGD")
ax.axhline(clip_only, color="C1", ls="-.", label="clipping only, no noise")
ax.axhline(majority, color="0.5", ls=":", label="always the largest class")
ax.set_xlim(min(xs) / 1.5, max(xs) * 2.0)
ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100) if min(xs) / 1.5 <= t <= max(xs) * 2.0]
ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
ax.minorticks_off()
ax.set_xlabel(f"epsilon at delta = {DELTA:g} (log scale; smaller = more private)")
ax.set_ylabel("validation accuracy")
ax.set_title(f"Privacy vs accuracy: softmax regression, {epochs} epochs, "
             + (f"mean of {len(seeds)} seeds" if len(seeds) > 1 else "one seed"))
ax.legend(fontsize=8, loc="lower right")
ch.savefig(fig, "18_accuracy_vs_epsilon.png")

# %% [markdown]
# ## 6. Federated averaging
#
# Federated learning (McMahan et al. 2017) keeps the data where it is: K clients each hold
# their own examples; every round the server sends the current weights, each client trains
# a few local epochs on its own data, and sends back only its new weights, which the server
# averages weighted by the clients' sizes: `w = sum_k (n_k / n) w_k`.
#
# Two facts to check. With ONE full-batch gradient step per client per round (FedSGD),
# averaging the clients' weights is exactly one full-batch gradient step on all the data,
# because the full gradient is the size-weighted average of the clients' gradients. With
# several local steps the clients drift apart, and how much that hurts depends on how
# differently their data are spread: IID (each client a random sample) or non-IID (each
# client mostly one or two classes, as real users are). And FedAvg alone is not
# differential privacy: section 2 showed what a single update reveals; DP-FedAvg clips each
# client's update and adds noise at the server, the same recipe as DP-SGD with clients in
# place of examples.

# %%
ch.section("6. Federated averaging over 8 simulated clients")
ch.code(fedavg)
K = 8
clients_iid = split_clients(y_train, K, iid=True)
clients_non = split_clients(y_train, K, iid=False)
ch.show("classes present on each client, IID", [len(set(y_train[c])) for c in clients_iid])
ch.show("classes present on each client, non-IID", [len(set(y_train[c])) for c in clients_non])
ch.check("both splits are partitions of the training set",
         all(sorted(np.concatenate(c).tolist()) == list(range(N))
             for c in (clients_iid, clients_non)))
start_params = [0.1 * np.random.default_rng(4).standard_normal(p.shape) for p in params0]
local = [local_sgd(start_params, X_train[c], y_train[c], 1, 0.5, len(c),
                   np.random.default_rng(0)) for c in clients_non]
averaged = privacy.federated_average(local, [len(c) for c in clients_non])
full = [p - 0.5 * g for p, g in zip(start_params, batch_grad(start_params, X_train, y_train))]
ch.check("FedSGD: averaging one full-batch step per client == one full-batch step on all",
         (np.concatenate([a.ravel() for a in averaged]),
          np.concatenate([f.ravel() for f in full]), 1e-12))
rounds = 10 if quick else 25
runs = {
    "IID, 1 local epoch": (clients_iid, 1),
    "IID, 5 local epochs": (clients_iid, 5),
    "non-IID, 5 local epochs": (clients_non, 5),
}
fed = {name: fedavg(X_train, y_train, clients, rounds, e, 3.0, val=(X_val, y_val))[1]
       for name, (clients, e) in runs.items()}
central, central_hist = init_params(V), []
crng = np.random.default_rng(0)
for _ in range(rounds):
    central = local_sgd(central, X_train, y_train, 1, 3.0, 16, crng)
    central_hist.append(loss_and_accuracy(central, X_val, y_val)[1])
for name, hist in fed.items():
    ch.show(f"{name:24}: val accuracy after {rounds} rounds", hist[-1])
ch.show(f"{'centralised, 1 epoch/round':24}: val accuracy after {rounds} epochs",
        central_hist[-1])
ch.check("IID: more local work per round reaches a higher accuracy in the same rounds",
         fed["IID, 5 local epochs"][-1] > fed["IID, 1 local epoch"][-1])
ch.check("non-IID clients hurt: lower accuracy than IID at the same local epochs",
         fed["non-IID, 5 local epochs"][-1] < fed["IID, 5 local epochs"][-1])
ch.show("parameters each client sends per round", sum(p.size for p in params0))

fig, ax = plt.subplots(figsize=(7, 4.3))
r_axis = np.arange(1, rounds + 1)
for i, (name, hist) in enumerate(fed.items()):
    ax.plot(r_axis, hist, "o-", ms=3, color=f"C{i}", label=f"FedAvg, {name}")
ax.plot(r_axis, central_hist, "k--", label="centralised SGD (1 epoch per round)")
ax.axhline(majority, color="0.5", ls=":", label="always the largest class")
ax.set_xlabel("communication round")
ax.set_ylabel("validation accuracy")
ax.set_title(f"Federated averaging, {K} clients, SGD lr 3, batch 16")
ax.legend(fontsize=8, loc="lower right")
ch.savefig(fig, "18_federated.png")

# %% [markdown]
# The test split, once, for the record: the non-private model and the private ones of
# section 5 (the smallest and largest epsilon), trained again with seed 0.

# %%
ch.section("The test set, once")
test_acc = {}
for s in (None, noise_levels[0], noise_levels[-1]):
    p = dp_sgd(X_train, y_train, s or 0.0, C, lr, T, q, seed=0, private=s is not None)
    test_acc[s] = loss_and_accuracy(p, X_test, y_test)[1]
    eps = "infinite" if s is None else f"{privacy.dp_sgd_epsilon(q, s, T, DELTA)[0]:.2f}"
    ch.show(f"TEST accuracy, {'non-private' if s is None else f'sigma {s:g}':12} "
            f"(epsilon {eps})", test_acc[s])
ch.check("on the test set too, the most private model pays: 5+ points below non-private",
         test_acc[None] > test_acc[noise_levels[-1]] + 0.05)

# %%
ch.finish()
