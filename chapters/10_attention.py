# %% [markdown]
# # Chapter 10: attention
#
# An RNN (chapters 08-09) reads a sentence one word at a time and squeezes everything it
# has seen into one hidden vector. **Self-attention** lets every word look at every other
# word directly, in one step, and decide how much of each to take. The documents describe it
# three times:
#
# * D1 (document 003, sections 2.2 and 3.2) in words: represent the input as vectors,
#   compute a weight between every pair of elements, take the weighted sum, output it;
# * D4 and E4 (documents 003 section 4.1, 004 section 4) as the formula
#   `Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V`;
# * A8 (document 000, sections 4.1.4 and 4.2.4) writes the *same* formula but calls it
#   `MultiHeadAttention(Q, K, V)`. **An erratum**: that formula is ONE head. Multi-head
#   attention runs h smaller heads side by side and mixes them:
#   `MultiHead(X) = Concat(head_1, ..., head_h) W_O`, `head_i = Attention(X W_i^Q, X W_i^K,
#   X W_i^V)`. Section 7 shows that a single head of width d and h heads of width d/h are
#   different functions, although their projections have exactly the same parameters.
#
# This chapter
#
# 1. walks through D1's four steps on a six-word sentence, with every number printed;
# 2. implements A8/D4/E4 step by step with tinylm ops and checks it against
#    `tinylm.functional.scaled_dot_product_attention`;
# 3. shows WHY the scores are divided by `sqrt(d_k)`: the variance of `q . k` grows like
#    `d_k`, and unscaled scores saturate the softmax and kill its gradient;
# 4. adds masks: causal (a word may not see the future) and padding;
# 5. derives the softmax Jacobian `diag(y) - y y^T` and
# 6. the whole attention backward pass by hand (A11 for A8), checked against tinylm's
#    autograd and finite differences;
# 7. builds multi-head attention by hand (the A8 erratum), compares it with
#    `tinylm.nn.MultiheadAttention` and PyTorch;
# 8. trains a one-head model to reverse a sequence and draws what its head looks at.

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
from tinylm import kernels, nn, optim, scaling
from tinylm.chapter import Chapter, plt

# %% [markdown]
# ## The tools of this chapter
#
# The formulas in plain NumPy (as a reader writes them) and in tinylm ops, the hand-derived
# backward pass, a finite-difference gradient, multi-head attention by hand, and the small
# model trained in section 8. The tests (`tests/test_chapters_10_11.py`, marker `ch10`) use
# them.

# %%
SENTENCE = ["the", "cat", "sat", "on", "the", "mat"]
# hand-made 4-d word vectors: dimensions ~ (article, animal/object, verb, place)
WORD_VECTORS = {
    "the": [1.0, 0.0, 0.0, 0.0],
    "cat": [0.0, 1.0, 0.2, 0.3],
    "sat": [0.0, 0.3, 1.0, 0.2],
    "on": [0.2, 0.0, 0.3, 1.0],
    "mat": [0.0, 0.8, 0.0, 0.6],
}


def softmax_np(z, axis=-1):
    """softmax(z)_j = exp(z_j - max z) / sum_k exp(z_k - max z) (the max cancels)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def self_attention_d1(X):
    """D1's four steps with no learned weights: X (n, d) are the vectors (step 1);
    S = X X^T the pairwise weights (step 2, then a softmax per row so each row sums to 1);
    Y = A X the weighted sums (step 3); Y is the output (step 4)."""
    S = X @ X.T
    A = softmax_np(S)
    Y = A @ X
    return S, A, Y


def attention_np(Q, K, V, mask=None):
    """A8 / D4 / E4 in NumPy: softmax(Q K^T / sqrt(d_k)) V; ``mask`` True = may attend."""
    S = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        S = np.where(mask, S, -np.inf)
    A = softmax_np(S)
    return A @ V, A


def attention_step_by_step(Q, K, V, mask=None):
    """The same formula in tinylm ops (so autograd can differentiate it), step by step:
    scores, scale, mask, softmax over the keys, weighted sum of the values."""
    d_k = Q.shape[-1]
    scores = Q @ K.transpose(-2, -1)              # (..., L, S): every query . every key
    scores = scores / math.sqrt(d_k)              # keep their variance near 1 (section 3)
    if mask is not None:                          # True = may attend
        scores = scores.masked_fill(~np.asarray(mask), -math.inf)
    weights = F.softmax(scores, axis=-1)          # each row: a distribution over the keys
    return weights @ V, weights                   # each output row: a weighted sum of values


def score_statistics(d_k, n_pairs, rng):
    """Variance of q . k and of q . k / sqrt(d_k) for q, k with independent N(0, 1) entries."""
    q = rng.standard_normal((n_pairs, d_k))
    k = rng.standard_normal((n_pairs, d_k))
    dots = np.sum(q * k, axis=1)
    return dots.var(), (dots / math.sqrt(d_k)).var()


def softmax_saturation(d_k, n_keys, n_queries, rng, scaled):
    """Mean largest weight of a query's softmax over ``n_keys`` random keys, and the mean
    Frobenius norm of the softmax Jacobian (how much gradient can flow back to the scores)."""
    q = rng.standard_normal((n_queries, 1, d_k))
    k = rng.standard_normal((n_queries, n_keys, d_k))
    s = np.sum(q * k, axis=-1) / (math.sqrt(d_k) if scaled else 1.0)
    y = softmax_np(s)
    jac = np.array([np.linalg.norm(softmax_jacobian(row)) for row in y])
    return y.max(axis=1).mean(), jac.mean()


def softmax_jacobian(y):
    """dy_i/ds_j for y = softmax(s): y_i (delta_ij - y_j), i.e. diag(y) - y y^T."""
    return np.diag(y) - np.outer(y, y)


def softmax_backward(y, dy):
    """The vector-Jacobian product dS = J^T dy = y * (dy - sum_j dy_j y_j), row by row
    (J is symmetric); never forms the n x n Jacobian."""
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def attention_backward(Q, K, V, dO, mask=None):
    """The backward pass of O = softmax(Q K^T / sqrt(d)) V, derived by hand (section 6):

        dV = A^T dO,   dA = dO V^T,   dS = A * (dA - rowsum(dA * A)),
        dQ = dS K / sqrt(d),   dK = dS^T Q / sqrt(d)

    A masked entry has A = 0, so dS = 0 there: no gradient reaches a hidden key."""
    d = Q.shape[-1]
    _, A = attention_np(Q, K, V, mask)
    dV = np.swapaxes(A, -1, -2) @ dO
    dA = dO @ np.swapaxes(V, -1, -2)
    dS = softmax_backward(A, dA)
    dQ = dS @ K / math.sqrt(d)
    dK = np.swapaxes(dS, -1, -2) @ Q / math.sqrt(d)
    return dQ, dK, dV


def numerical_gradient(f, x, eps=1e-6):
    """Central differences (f(x + eps e_j) - f(x - eps e_j)) / (2 eps) for every entry."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        saved = flat[j]
        flat[j] = saved + eps
        up = f()
        flat[j] = saved - eps
        down = f()
        flat[j] = saved
        gflat[j] = (up - down) / (2 * eps)
    return g


class MultiHeadByHand(nn.Module):
    """Multi-head self-attention written out (the standard form; A8's ERRATUM):

        head_i = Attention(X W_i^Q, X W_i^K, X W_i^V),  W_i^* of size (d, d/h)
        MultiHead(X) = Concat(head_1, ..., head_h) W_O

    The h heads' projections are stored side by side in one (d, d) Linear each, so the
    parameter count, 4 d^2 + 4 d, does not depend on h. With h = 1 this is A8 as written:
    one head of width d. Shapes (batch, T, d).
    """

    def __init__(self, d_model, num_heads, seed=0, dtype=np.float64):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.d_model, self.num_heads = d_model, num_heads
        rng = np.random.default_rng(seed)
        self.q_proj = nn.Linear(d_model, d_model, seed=rng, dtype=dtype)
        self.k_proj = nn.Linear(d_model, d_model, seed=rng, dtype=dtype)
        self.v_proj = nn.Linear(d_model, d_model, seed=rng, dtype=dtype)
        self.out_proj = nn.Linear(d_model, d_model, seed=rng, dtype=dtype)

    def split_heads(self, x):
        """(B, T, d) -> (B, h, T, d/h): head i gets features i*d/h .. (i+1)*d/h - 1."""
        B, T, _ = x.shape
        return x.reshape(B, T, self.num_heads, self.d_model // self.num_heads).transpose(1, 2)

    def forward(self, x, mask=None):
        B, T, _ = x.shape
        q, k, v = (self.split_heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        heads, weights = attention_step_by_step(q, k, v, mask)     # (B, h, T, d/h)
        concat = heads.transpose(1, 2).reshape(B, T, self.d_model)  # Concat(head_1..head_h)
        return self.out_proj(concat), weights                     # ... W_O


def library_layer(name):
    """The class ``name`` from tinylm.nn (or its submodules attention / positional /
    transformer), or None where this version of tinylm does not have it."""
    import importlib
    if hasattr(nn, name):
        return getattr(nn, name)
    for sub in ("attention", "positional", "transformer"):
        try:
            module = importlib.import_module(f"tinylm.nn.{sub}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    return None


def make_reversal_batch(rng, batch, length, vocab):
    """Random token sequences and their reversals (the toy task of section 8)."""
    x = rng.integers(0, vocab, size=(batch, length))
    return x, x[:, ::-1].copy()


class ReverserOneHead(nn.Module):
    """The smallest attention model: token embedding + learned position embedding, ONE
    self-attention head (no feed-forward layer), a linear read-out to the vocabulary.
    The queries and keys read only the positions, the values only the tokens, so the head
    must learn *where* to look; what it reads there is the answer."""

    def __init__(self, vocab, length, d, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.tok = nn.Embedding(vocab, d, seed=rng, dtype=np.float64)
        self.pos = nn.Embedding(length, d, seed=rng, dtype=np.float64)
        self.q = nn.Linear(d, d, seed=rng, dtype=np.float64)
        self.k = nn.Linear(d, d, seed=rng, dtype=np.float64)
        self.v = nn.Linear(d, d, seed=rng, dtype=np.float64)
        self.out = nn.Linear(d, vocab, seed=rng, dtype=np.float64)

    def forward(self, ids):
        p = self.pos(np.arange(ids.shape[1]))[None]          # (1, T, d)
        ctx, weights = attention_step_by_step(self.q(p), self.k(p), self.v(self.tok(ids)))
        return self.out(ctx), weights


def train_reverser(steps, seed=0, vocab=8, length=6, d=16, batch=32, lr=0.03):
    """Adam on the cross-entropy of the reversed sequence; returns the model and the losses."""
    model = ReverserOneHead(vocab, length, d, seed)
    opt = optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed + 1)
    losses = []
    for _ in range(steps):
        x, y = make_reversal_batch(rng, batch, length, vocab)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


# %%
ch = Chapter(10, "Attention")

# %% [markdown]
# ## 1. D1: self-attention in four steps, on a sentence
#
# The document's four steps (003, 3.2): **(1)** write the input as vectors; **(2)** compute
# how strongly each element relates to each other element; **(3)** multiply those weights
# with the vectors and add up; **(4)** the result is the output, one new vector per word.
# The simplest concrete choice, with no learned weights: the relation of words i and j is
# the dot product `x_i . x_j`, a softmax over each row turns relations into weights that sum
# to 1, and the output for word i is `y_i = sum_j a_ij x_j`. Our six words have hand-made
# 4-d vectors (article, thing, verb, place), so the numbers can be read.

# %%
ch.section("1. D1: the four steps of self-attention on 'the cat sat on the mat'")
ch.code(self_attention_d1)
X = np.array([WORD_VECTORS[w] for w in SENTENCE])
ch.show("step 1: the vectors X (one row per word)", X)
S_d1, A_d1, Y_d1 = self_attention_d1(X)
ch.show("step 2: pairwise scores S = X X^T", S_d1, precision=2)
ch.show("        weights A = softmax(S) per row", A_d1, precision=3)
ch.show("step 3/4: outputs Y = A X", Y_d1, precision=3)
most = [SENTENCE[j] for j in np.argsort(-A_d1[1])[:3]]
ch.note(f"'cat' gives its largest weights to {most}: it looks most at itself and at "
        "'mat' (the other 'thing'). The two copies of 'the' have identical rows: "
        "without positions, attention cannot tell them apart (chapter 11 adds positions).")
ch.check("each row of weights is a distribution (>= 0, sums to 1)",
         np.all(A_d1 >= 0) and np.allclose(A_d1.sum(axis=1), 1.0))
ch.check("each output is a convex combination: inside the range of the inputs",
         np.all(Y_d1 <= X.max(axis=0) + 1e-12) and np.all(Y_d1 >= X.min(axis=0) - 1e-12))
ch.check("identical words get identical outputs (no positions yet)", (Y_d1[0], Y_d1[4], 1e-15))

# %% [markdown]
# ## 2. A8 / D4 / E4: scaled dot-product attention, step by step
#
# Learned projections give each word three roles: a **query** `q_i = x_i W_Q` (what it looks
# for), a **key** `k_j = x_j W_K` (what it offers to be found by), and a **value**
# `v_j = x_j W_V` (what it hands over). Stacking the rows:
#
#     S = Q K^T / sqrt(d_k)        (T_q, T_k): query i against key j
#     A = softmax(S)  (each row)   the attention weights
#     O = A V                      (T_q, d_v): each output row a weighted sum of values
#
# That is the formula of D4 and E4 (and of A8, under the wrong name). Below: our
# step-by-step version in tinylm ops, against the library's
# `F.scaled_dot_product_attention`, and against the plain NumPy version.

# %%
ch.section("2. A8/D4/E4: softmax(Q K^T / sqrt(d_k)) V, step by step")
ch.formula("Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V")
ch.code(attention_step_by_step)
rng = np.random.default_rng(0)
d_k = 4
W_Q, W_K, W_V = (rng.standard_normal((4, d_k)) / 2 for _ in range(3))
Q, K, V = X @ W_Q, X @ W_K, X @ W_V
ch.show("Q = X W_Q", Q, precision=3)
scores = Q @ K.T
ch.show("Q K^T", scores, precision=3)
ch.show("Q K^T / sqrt(d_k)  (d_k = 4: halve)", scores / 2, precision=3)
out, weights = attention_step_by_step(tl.Tensor(Q), tl.Tensor(K), tl.Tensor(V))
ch.show("A = softmax(...)", weights, precision=3)
ch.show("O = A V", out, precision=3)
ch.check("step by step (tinylm ops) == plain NumPy", (out, attention_np(Q, K, V)[0], 1e-12))
lib = F.scaled_dot_product_attention(tl.Tensor(Q), tl.Tensor(K), tl.Tensor(V))
ch.check("step by step == F.scaled_dot_product_attention", (out, lib, 1e-12))
try:
    import torch
except ImportError:  # torch is optional (pip install -e ".[compare]")
    torch = None
if torch is not None:
    ref = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a[None]) for a in (Q, K, V)))[0].numpy()
    ch.check("== PyTorch's scaled_dot_product_attention", (out, ref, 1e-12))

# %% [markdown]
# ## 3. Why divide by sqrt(d_k)?
#
# Take a query and a key whose `d_k` entries are independent with mean 0 and variance 1
# (roughly what a freshly initialised layer produces). Their dot product is a sum of `d_k`
# independent terms `q_i k_i`, each of mean 0 and variance `E[q_i^2] E[k_i^2] = 1`. Variances
# of independent terms add, so
#
#     Var(q . k) = d_k,        Var(q . k / sqrt(d_k)) = 1.
#
# With `d_k = 256` the unscaled scores have a standard deviation of 16: the largest score in
# a row is then far above the others, and the softmax puts nearly all its weight on one key,
# as a hard max. A saturated softmax has a Jacobian `diag(y) - y y^T` close to zero (y is
# nearly one-hot), so almost no gradient flows back into the queries and keys: the layer
# cannot learn where to look. Dividing by `sqrt(d_k)` keeps the scores at unit variance
# whatever the width.

# %%
ch.section("3. Why sqrt(d_k): the variance of q . k grows like d_k")
ch.code(score_statistics)
rng = np.random.default_rng(1)
dims = [4, 16, 64, 256] if ch.quick else [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
n_pairs = 20000
rows = []
print(f"  {'d_k':>5} {'Var(q.k)':>10} {'Var/d_k':>8} {'Var(q.k/sqrt d_k)':>18}"
      f" {'max weight raw':>15} {'max weight scaled':>18} {'|J| raw':>8} {'|J| scaled':>10}")
for d in dims:
    v_raw, v_scaled = score_statistics(d, n_pairs, rng)
    m_raw, j_raw = softmax_saturation(d, 16, 400, rng, scaled=False)
    m_scaled, j_scaled = softmax_saturation(d, 16, 400, rng, scaled=True)
    rows.append((d, v_raw, v_scaled, m_raw, m_scaled, j_raw, j_scaled))
    print(f"  {d:>5} {v_raw:>10.2f} {v_raw / d:>8.3f} {v_scaled:>18.3f}"
          f" {m_raw:>15.3f} {m_scaled:>18.3f} {j_raw:>8.3f} {j_scaled:>10.3f}")
rows = np.array(rows)
ch.check("Var(q . k) / d_k is within 5% of 1 for every d_k",
         np.all(np.abs(rows[:, 1] / rows[:, 0] - 1) < 0.05),
         f"ratios {np.round(rows[:, 1] / rows[:, 0], 3).tolist()}")
ch.check("Var(q . k / sqrt(d_k)) is within 5% of 1 for every d_k",
         np.all(np.abs(rows[:, 2] - 1) < 0.05))
big = rows[rows[:, 0] == 256][0]
ch.check("d_k = 256 unscaled: the softmax is nearly one-hot (mean max weight > 0.8), "
         "scaled it is not (< 0.5)", big[3] > 0.8 and big[4] < 0.5,
         f"{big[3]:.3f} vs {big[4]:.3f}")
ch.check("d_k = 256: the softmax Jacobian (gradient to the scores) is over 2x smaller unscaled",
         big[6] > 2 * big[5], f"|J| {big[5]:.3f} unscaled vs {big[6]:.3f} scaled")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].loglog(rows[:, 0], rows[:, 1], "o-", label="Var(q . k)")
axes[0].loglog(rows[:, 0], rows[:, 2], "s-", label="Var(q . k / sqrt(d_k))")
axes[0].loglog(rows[:, 0], rows[:, 0], "k:", label="d_k")
axes[0].set_xlabel("d_k")
axes[0].set_title("score variance, random unit-variance q and k")
axes[0].legend()
axes[1].semilogx(rows[:, 0], rows[:, 3], "o-", label="max weight, unscaled")
axes[1].semilogx(rows[:, 0], rows[:, 4], "s-", label="max weight, scaled")
axes[1].semilogx(rows[:, 0], rows[:, 5], "o--", label="|softmax Jacobian|, unscaled")
axes[1].semilogx(rows[:, 0], rows[:, 6], "s--", label="|softmax Jacobian|, scaled")
axes[1].set_xlabel("d_k")
axes[1].set_title("softmax over 16 keys: saturation and gradient size")
axes[1].legend(fontsize=8)
ch.savefig(fig, "10_scaling.png")

# %% [markdown]
# ## 4. Masks: causal and padding
#
# A mask says which keys a query may see; a forbidden score is set to `-inf` before the
# softmax, so its weight is exactly `exp(-inf) = 0` and the remaining weights still sum to 1.
#
# * **Causal** (a language model predicting the next word must not read it):
#   query i may see keys j <= i, a lower-triangular mask.
# * **Padding**: sentences of different lengths are padded to one length in a batch; no
#   query should attend to the padding keys, so changing what sits in the padding must not
#   change any output.

# %%
ch.section("4. Masks: causal and padding")
causal = np.tril(np.ones((6, 6), dtype=bool))
ch.show("causal mask (True = may attend)", causal.astype(int))
out_c, w_c = attention_step_by_step(tl.Tensor(Q), tl.Tensor(K), tl.Tensor(V), causal)
ch.show("causal weights", w_c, precision=3)
ch.check("causal: every weight above the diagonal is exactly 0",
         np.all(w_c.numpy()[~causal] == 0))
ch.check("causal: the first word can only attend to itself", w_c.numpy()[0, 0] == 1.0)
lib_c = F.scaled_dot_product_attention(tl.Tensor(Q), tl.Tensor(K), tl.Tensor(V), is_causal=True)
ch.check("causal: == F.scaled_dot_product_attention(is_causal=True)", (out_c, lib_c, 1e-12))

valid = np.array([True, True, True, True, False, False])     # two padding positions at the end
pad_mask = np.broadcast_to(valid, (6, 6))
out_p, w_p = attention_step_by_step(tl.Tensor(Q), tl.Tensor(K), tl.Tensor(V), pad_mask)
V_junk = V.copy()
V_junk[~valid] = 1e3                                          # rubbish in the padding
out_junk, _ = attention_step_by_step(tl.Tensor(Q), tl.Tensor(K), tl.Tensor(V_junk), pad_mask)
ch.show("padding weights (last two keys are padding)", w_p, precision=3)
ch.check("padding: no weight on a padding key", np.all(w_p.numpy()[:, ~valid] == 0))
ch.check("padding: rubbish in the padded values changes no output", (out_p, out_junk, 0.0))

# %% [markdown]
# ## 5. The softmax Jacobian
#
# For `y = softmax(s)`, `y_i = exp(s_i) / Z` with `Z = sum_k exp(s_k)`. The quotient rule:
#
#     dy_i/ds_j = (delta_ij exp(s_i) Z - exp(s_i) exp(s_j)) / Z^2 = y_i (delta_ij - y_j)
#
# i.e. `J = diag(y) - y y^T`, symmetric. Backward needs only the product with an incoming
# gradient `g`: `(J^T g)_j = y_j g_j - y_j sum_i y_i g_i = y_j (g_j - y . g)`, an O(n)
# formula that never builds the n x n matrix. Its rows sum to 0 (adding a constant to every
# score changes nothing), and for a one-hot `y` it is exactly zero (section 3's saturation).

# %%
ch.section("5. The softmax Jacobian: diag(y) - y y^T")
ch.code(softmax_jacobian)
ch.code(softmax_backward)
s = np.array([1.0, 2.0, 0.5, -1.0])
y = softmax_np(s)
J = softmax_jacobian(y)
J_fd = np.column_stack([(softmax_np(s + 1e-6 * e) - softmax_np(s - 1e-6 * e)) / 2e-6
                        for e in np.eye(4)])
ch.show("y = softmax([1, 2, 0.5, -1])", y)
ch.show("J = diag(y) - y y^T", J)
ch.check("J == finite differences", (J, J_fd, 1e-9))
ch.check("J is symmetric and its rows sum to 0", np.allclose(J, J.T) and
         np.allclose(J.sum(axis=1), 0))
g = np.array([0.3, -1.0, 2.0, 0.1])
st = tl.Tensor(s, requires_grad=True)
F.softmax(st).backward(g)
ch.check("y * (g - y . g) == J^T g == tinylm's softmax backward",
         np.allclose(softmax_backward(y, g), J.T @ g) and
         np.allclose(st.grad, J.T @ g, atol=1e-15))

# %% [markdown]
# ## 6. The attention backward pass by hand (A11 for A8)
#
# Forward: `S = Q K^T / sqrt(d)`, `A = softmax(S)` (rows), `O = A V`. Given `dO = dL/dO`,
# walk back one line at a time. `O = A V` is a matrix product, whose rule
# (`C = A B` => `dA = dC B^T`, `dB = A^T dC`) gives
#
#     dV = A^T dO,        dA = dO V^T.
#
# Each row of `A` is a softmax of the same row of `S`: section 5's product, row by row,
#
#     dS = A * (dA - rowsum(dA * A))                 (* elementwise).
#
# `S = Q K^T / sqrt(d)` is a product again:
#
#     dQ = dS K / sqrt(d),        dK = dS^T Q / sqrt(d).
#
# A masked score has `A = 0`, so `dS = 0` there: the mask needs no extra backward rule.
# We check the five lines against tinylm's autograd (which differentiates
# `attention_step_by_step` op by op) and against central finite differences of the NumPy
# forward, in float64, with and without a causal mask.

# %%
ch.section("6. Attention backward, derived by hand, checked two ways")
ch.code(attention_backward)
rng = np.random.default_rng(2)
Tq, Tk, d, dv = 5, 5, 4, 3
Qn, Kn = rng.standard_normal((Tq, d)), rng.standard_normal((Tk, d))
Vn = rng.standard_normal((Tk, dv))
dO = rng.standard_normal((Tq, dv))
for label, mask in (("no mask", None), ("causal mask", np.tril(np.ones((Tq, Tk), dtype=bool)))):
    hand = attention_backward(Qn, Kn, Vn, dO, mask)
    leaves = [tl.Tensor(a.copy(), requires_grad=True) for a in (Qn, Kn, Vn)]
    attention_step_by_step(*leaves, mask)[0].backward(dO)
    auto = [t.grad for t in leaves]

    def loss():
        return float(np.sum(attention_np(Qn, Kn, Vn, mask)[0] * dO))

    numeric = [numerical_gradient(loss, a) for a in (Qn, Kn, Vn)]
    err_auto = max(np.max(np.abs(h - a)) for h, a in zip(hand, auto))
    err_fd = max(np.max(np.abs(h - n)) for h, n in zip(hand, numeric))
    ch.check(f"{label}: hand dQ, dK, dV == tinylm autograd", err_auto < 1e-12,
             f"max |diff| {err_auto:.1e}")
    ch.check(f"{label}: hand dQ, dK, dV == finite differences", err_fd < 1e-8,
             f"max |diff| {err_fd:.1e}")
ch.show("dQ (causal)", hand[0])
ch.check("causal: the last key gets gradient only from the last query",
         np.allclose(attention_backward(Qn, Kn, Vn, dO * (np.arange(Tq) < Tq - 1)[:, None],
                                        np.tril(np.ones((Tq, Tk), dtype=bool)))[1][-1], 0))

# %% [markdown]
# ## 7. Multi-head attention, and A8's erratum
#
# A8 calls `softmax(Q K^T / sqrt(d_k)) V` "MultiHeadAttention". Multi-head attention
# (Vaswani et al. 2017) instead projects the d features into h groups of d/h, runs one
# attention per group, concatenates the h results and mixes them with `W_O`:
#
#     head_i = Attention(X W_i^Q, X W_i^K, X W_i^V)       W_i^Q, W_i^K, W_i^V: (d, d/h)
#     MultiHead(X) = Concat(head_1, ..., head_h) W_O      W_O: (d, d)
#
# Stacking the h matrices `W_i^Q` side by side gives one (d, d) matrix, so the projections
# cost `4 d^2 + 4 d` parameters for every h. With h = 1 it is A8's formula (one head of
# width d, plus the projections). The functions differ, though: each head has its own
# attention pattern, computed from only d/h coordinates, and `softmax` does not split across
# groups of coordinates. We take ONE set of weights and evaluate it as 1 head of 16 and as
# 4 heads of 4.

# %%
ch.section("7. Multi-head = Concat(head_1..head_h) W_O, and A8's single head")
ch.code(MultiHeadByHand)
d_model, n_heads, T = 16, 4, 6
rng = np.random.default_rng(3)
Xb = rng.standard_normal((2, T, d_model))
mha4 = MultiHeadByHand(d_model, n_heads, seed=4)
mha1 = MultiHeadByHand(d_model, 1, seed=4)                    # A8 as written: one head
mha1.load_state_dict(mha4.state_dict())
y4, w4 = mha4(tl.Tensor(Xb))
y1, w1 = mha1(tl.Tensor(Xb))
q_heads = mha4.split_heads(mha4.q_proj(tl.Tensor(Xb)))
print(f"  X {Xb.shape} -> Q = X W_Q {(2, T, d_model)} -> split into heads {q_heads.shape}")
print(f"  4 heads: weights {w4.shape} (one {T}x{T} pattern per head), "
      f"output {y4.shape}")
print(f"  1 head:  weights {w1.shape} (one pattern), output {y1.shape}")
ch.show("parameters, 4 heads of 4", mha4.num_parameters())
ch.show("parameters, 1 head of 16 (A8)", mha1.num_parameters())
ch.check("same parameter count 4 d^2 + 4 d for h = 1 and h = 4",
         mha4.num_parameters() == mha1.num_parameters() == 4 * d_model ** 2 + 4 * d_model)
diff = float(np.max(np.abs(y4.numpy() - y1.numpy())))
ch.check("same weights, different functions: 1 head of 16 != 4 heads of 4", diff > 1e-2,
         f"max |difference| {diff:.3f}")
ch.check("each head's weights are a distribution",
         np.allclose(w4.numpy().sum(axis=-1), 1.0))
head0 = attention_np(Xb @ mha4.q_proj.weight.numpy().T[:, :4] + mha4.q_proj.bias.numpy()[:4],
                     Xb @ mha4.k_proj.weight.numpy().T[:, :4] + mha4.k_proj.bias.numpy()[:4],
                     Xb @ mha4.v_proj.weight.numpy().T[:, :4] + mha4.v_proj.bias.numpy()[:4])[1]
ch.check("head 1 == Attention(X W_1^Q, X W_1^K, X W_1^V) with the first d/h columns",
         (w4.numpy()[:, 0], head0, 1e-12))

# %% [markdown]
# **The library's layer, and PyTorch's.** `tinylm.nn.MultiheadAttention` follows PyTorch's
# layout: one `in_proj_weight` of shape (3d, d) holding W_Q, W_K, W_V stacked, an
# `in_proj_bias`, and `out_proj`. Loading our weights into it (and into PyTorch's layer,
# when torch is installed) must give the same outputs and the same head-averaged weights.

# %%
def by_hand_state_as_pytorch(m):
    """Our four Linear layers in PyTorch's MultiheadAttention layout."""
    sd = m.state_dict()
    return {
        "in_proj_weight": np.concatenate([sd[f"{p}_proj.weight"] for p in "qkv"]),
        "in_proj_bias": np.concatenate([sd[f"{p}_proj.bias"] for p in "qkv"]),
        "out_proj.weight": sd["out_proj.weight"],
        "out_proj.bias": sd["out_proj.bias"],
    }


ch.section("7b. By hand == tinylm.nn.MultiheadAttention == torch.nn.MultiheadAttention")
state = by_hand_state_as_pytorch(mha4)
mask_c = np.tril(np.ones((T, T), dtype=bool))
y4c, w4c = mha4(tl.Tensor(Xb), mask_c)
MultiheadAttention = library_layer("MultiheadAttention")
if MultiheadAttention is not None:
    lib_mha = MultiheadAttention(d_model, n_heads, batch_first=True, dtype=np.float64)
    lib_mha.load_state_dict(state)
    y_lib, w_lib = lib_mha(tl.Tensor(Xb), tl.Tensor(Xb), tl.Tensor(Xb),
                           average_attn_weights=False)
    ch.check("by hand == nn.MultiheadAttention (outputs)", (y4, y_lib, 1e-12))
    ch.check("by hand == nn.MultiheadAttention (per-head weights)", (w4, w_lib, 1e-12))
    y_lib_c, _ = lib_mha(tl.Tensor(Xb), tl.Tensor(Xb), tl.Tensor(Xb),
                         attn_mask=~mask_c)                # PyTorch: True = NOT allowed
    ch.check("causal: by hand == nn.MultiheadAttention(attn_mask=~causal)",
             (y4c, y_lib_c, 1e-12))
    keep = np.array([[True] * T, [True] * (T - 2) + [False] * 2])   # sentence 2: 2 pads
    y4p, _ = mha4(tl.Tensor(Xb), keep[:, None, None, :])            # (B, 1, 1, T): keys
    y_lib_p, _ = lib_mha(tl.Tensor(Xb), tl.Tensor(Xb), tl.Tensor(Xb),
                         key_padding_mask=~keep)           # PyTorch: True = padding
    ch.check("padding: by hand == nn.MultiheadAttention(key_padding_mask=~keep)",
             (y4p, y_lib_p, 1e-12))
else:
    ch.note("(tinylm.nn.MultiheadAttention is not available in this version: skipped)")
if torch is not None:
    ref = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True, dtype=torch.float64)
    ref.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    with torch.no_grad():
        y_t, w_t = ref(*(torch.tensor(Xb),) * 3, average_attn_weights=False)
        y_tc, _ = ref(*(torch.tensor(Xb),) * 3, attn_mask=torch.tensor(~mask_c))
    ch.check("by hand == torch.nn.MultiheadAttention (outputs, weights)",
             np.allclose(y4.numpy(), y_t.numpy(), atol=1e-12) and
             np.allclose(w4.numpy(), w_t.numpy(), atol=1e-12))
    ch.check("causal: by hand == torch.nn.MultiheadAttention", (y4c, y_tc.numpy(), 1e-12))

# %% [markdown]
# ## 8. What a trained head looks at
#
# A model with a single attention head and nothing else (no feed-forward layer): the
# queries and keys are computed from learned *position* vectors, the values from the
# *tokens*. Its task: output the input sequence reversed. The only way to solve it is for
# the query at position t to put its weight on key position T-1-t, so after training the
# attention map should be the anti-diagonal. The figure shows three maps side by side:
# D1's weights on the sentence (section 1), the causal head of section 4, and the trained
# reverser's head.

# %%
ch.section("8. A head trained to reverse a sequence: the attention map")
ch.code(ReverserOneHead)
steps = 150 if ch.quick else 300
model, losses = train_reverser(steps)
rng = np.random.default_rng(99)
xt, yt = make_reversal_batch(rng, 500, 6, 8)
with tl.no_grad():
    logits, w_rev = model(xt)
acc = float(np.mean(logits.numpy().argmax(-1) == yt))
w_rev = w_rev.numpy()[0]            # the same map for every sequence: (T, T)
anti = float(np.mean(w_rev[np.arange(6), np.arange(6)[::-1]]))
ch.show(f"loss after 1 / {steps} Adam steps", f"{losses[0]:.3f} / {losses[-1]:.3f}")
ch.show("held-out accuracy (500 sequences)", acc)
ch.show("trained weights (query rows, key columns)", w_rev, precision=2)
ch.check("the reverser learns (held-out token accuracy > 0.9)", acc > 0.9, f"{acc:.3f}")
ch.check("its head looks at position T-1-t (mean anti-diagonal weight > 0.7)", anti > 0.7,
         f"{anti:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
for ax, (mat, title, xl, yl) in zip(axes, [
        (A_d1, "D1: softmax(X X^T), no learned weights", SENTENCE, SENTENCE),
        (w_c.numpy(), "a causal head (random W_Q, W_K)", SENTENCE, SENTENCE),
        (w_rev, f"a head trained to reverse ({steps} steps)",
         [f"k{j}" for j in range(6)], [f"q{i}" for i in range(6)])]):
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(xl)), xl, rotation=45)
    ax.set_yticks(range(len(yl)), yl)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    ax.set_title(title, fontsize=10)
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="w" if mat[i, j] < 0.6 else "k")
fig.subplots_adjust(wspace=0.4)
fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight")
ch.savefig(fig, "10_attention_weights.png")

# %% [markdown]
# ## 9. The online softmax: attention without the T x T matrix
#
# The formula as written builds the (T, T) scores, so its memory grows with T^2: 8 heads at
# T = 2048 hold 128 MiB of float32 scores, and as many again for the weights. The output
# does not need them all at once. Split the keys into blocks B_1, B_2, ... and keep, for
# each query, three running quantities: the largest score seen so far m, the sum of
# exponentials l (taken relative to m), and the weighted sum of values acc (also relative
# to m). A new block with scores s_j and values v_j updates them as
#
#     m' = max(m, max_j s_j)
#     l' = l e^(m - m') + sum_j e^(s_j - m')
#     acc' = acc e^(m - m') + sum_j e^(s_j - m') v_j
#
# Why it is exact: after any number of blocks, l = sum_(j seen) e^(s_j - m) and
# acc = sum_(j seen) e^(s_j - m) v_j, both relative to the current max. Multiplying by
# e^(m - m') re-expresses the old sums relative to the new max (e^(s_j - m) e^(m - m') =
# e^(s_j - m')), and the new block adds its own terms; by induction the invariant holds after
# the last block, where acc / l = sum_j e^(s_j - m) v_j / sum_j e^(s_j - m) = softmax(s) V
# (the e^(-m) cancels). The max is there only so no exponential overflows, exactly as in
# the one-pass softmax. The backward needs the weights again: it rebuilds each block from
# q, k and the saved log-sum-exp m + log l (p_j = e^(s_j - lse)), so nothing of size T x T
# is ever stored. This is FlashAttention's idea; tinylm's `FusedAttention` runs it on tiles
# of 256 queries x 256 keys, the products done by BLAS, once a head has more scores than one
# tile (below, it keeps the small weights matrix for the backward, which is faster).

# %%
ch.section("9. The online softmax: exact, block by block, without the T x T matrix")


def online_softmax_attention(q, K, V, block):
    """One query: softmax(q K^T) V with the keys taken ``block`` at a time (section 9)."""
    m, total, acc = -np.inf, 0.0, np.zeros(V.shape[1])
    for start in range(0, len(K), block):
        s = K[start:start + block] @ q
        m_new = max(m, s.max())
        total = total * np.exp(m - m_new) + np.exp(s - m_new).sum()
        acc = acc * np.exp(m - m_new) + np.exp(s - m_new) @ V[start:start + block]
        m = m_new
    return acc / total


ch.code(online_softmax_attention)
rng = np.random.default_rng(9)
q9, K9, V9 = (rng.standard_normal(8), 3 * rng.standard_normal((50, 8)),
              rng.standard_normal((50, 4)))
whole = softmax_np(K9 @ q9) @ V9
for block in (1, 7, 50):
    ch.check(f"blocks of {block} keys == the softmax over all 50 at once",
             (online_softmax_attention(q9, K9, V9, block), whole, 1e-12))
Tq = 300 if ch.quick else 600                  # more than two tiles of 256
Q9, K9b, V9b = (tl.Tensor(rng.standard_normal((2, Tq, 16)), requires_grad=True)
                for _ in range(3))
fast = F.scaled_dot_product_attention(Q9, K9b, V9b, is_causal=True)
fast.sum().backward()
fast_grads = [t.grad.copy() for t in (Q9, K9b, V9b)]
for t in (Q9, K9b, V9b):
    t.grad = None
with kernels.use("reference"):
    slow = F.scaled_dot_product_attention(Q9, K9b, V9b, is_causal=True)
    slow.sum().backward()
ch.check(f"FusedAttention (streaming) == the naive formula at T = {Tq} (output)",
         (fast, slow, 1e-12))
ch.check("... and dQ, dK, dV", all(np.allclose(a, t.grad, rtol=0, atol=1e-11)
                                   for a, t in zip(fast_grads, (Q9, K9b, V9b))))


def peak_mib(fn):
    """The highest point of NumPy's allocations while ``fn`` runs, in MiB (tracemalloc)."""
    return scaling.traced_memory(fn)[1] / 2 ** 20


lengths = [128, 256, 512, 1024] if ch.quick else [128, 256, 512, 1024, 2048]
memory = {"naive formula": [], "streaming (online softmax)": []}
for T9 in lengths:
    q, k, v, g = (rng.standard_normal((8, T9, 64)).astype(np.float32) for _ in range(4))
    for label, module in (("naive formula", kernels.reference),
                          ("streaming (online softmax)", kernels.cpu)):
        def forward_backward():
            out, lse = module.attention_forward(q, k, v, 0.125, 0)
            module.attention_backward(q, k, v, out, lse, g, 0.125, 0)
        memory[label].append(peak_mib(forward_backward))
ch.show("T", lengths)
for label, values in memory.items():
    ch.show(f"peak extra MiB, {label}", [round(x, 1) for x in values])
growth = {label: values[-1] / values[-2] for label, values in memory.items()}
ch.check("doubling T: the naive formula's memory grows ~4x (T^2), the streaming one's ~2x (T)",
         growth["naive formula"] > 3.0 and growth["streaming (online softmax)"] < 2.5,
         f"x{growth['naive formula']:.2f} and x{growth['streaming (online softmax)']:.2f}")
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for label, values in memory.items():
    ax.plot(lengths, values, "o-", label=label)
ax.set_xscale("log", base=2)
ax.set_yscale("log", base=2)
ax.set_xticks(lengths, [str(t) for t in lengths])
ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{y:g}"))
ax.set_xlabel("sequence length T (8 heads, d = 64, float32)")
ax.set_ylabel("peak extra memory, forward + backward (MiB)")
ax.set_title("Causal attention, memory: naive formula vs online softmax", fontsize=10)
ax.legend()
ch.savefig(fig, "10_attention_memory.png")

# %% [markdown]
# Chapter 11 puts this layer together with positional encodings, layer normalisation and a
# feed-forward network into a Transformer layer, and compares the documents' layer formulas
# (A9, D5, D6) with the standard ones.

# %%
ch.finish()
