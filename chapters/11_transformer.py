# %% [markdown]
# # Chapter 11: the Transformer
#
# Chapter 10 built attention. A Transformer (B4: "multi-head attention + positional
# encoding") wraps it with three more pieces: **positional encodings** (attention alone
# cannot see word order), **layer normalisation** with **residual connections** (so deep
# stacks train), and a position-wise **feed-forward network**. An **encoder** stacks such
# layers over the source; a **decoder** (D2) adds causal self-attention and cross-attention
# to the encoder's output.
#
# The documents write these layers in several ways, and three of them are not the
# Transformer of the literature (Vaswani et al. 2017):
#
# * A9 (000, 4.1.4): `EncoderLayer(h) = LayerNorm(h) + AttentionLayer(h) + LayerNorm(h) +
#   FFNLayer(h)`. **Erratum**: a sum of four branches that all read h; the FFN never sees
#   the attention's output. Standard post-LN: `h' = LN(h + MHA(h))`, `out = LN(h' + FFN(h'))`;
#   pre-LN (GPT-2): `h' = h + MHA(LN(h))`, `out = h' + FFN(LN(h'))`.
# * D5 (003, 4.2): `Encoder(X) = LayerNorm(X + MultiHeadAttention(X, X, X))`: the first
#   sub-layer of post-LN only (no FFN).
# * D6 (003, 4.2): `Decoder(X) = LayerNorm(X + MaskedMultiHeadAttention(X, X, X) +
#   Encoder(X))`. **Erratum**: there is no cross-attention; the encoder's output is *added*
#   position by position. The standard decoder: masked self-attention, cross-attention with
#   the encoder output as keys and values, FFN, each with residual + LayerNorm.
# * E5 (004, 4): `P = E + p`, and E2 (004, 3), the Transformer in seven steps.
#
# This chapter
#
# 1. draws the sinusoidal positional encoding (E5) and proves that `PE(t + k)` is a fixed
#    linear (rotation) function of `PE(t)`;
# 2. derives layer normalisation's backward pass (A11 for A9) and checks it;
# 3. writes the encoder layers by hand (A9, D5, post-LN, pre-LN), checks them against
#    `tinylm.nn.TransformerEncoderLayer`, and trains all four on the same toy task;
# 4. measures gradient norms per layer at initialisation in a 6-layer stack, post-LN vs
#    pre-LN;
# 5. compares D6's decoder with the real one on a copy-from-source task;
# 6. traces E2's seven steps on one sentence, with the shape at every step.

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

# %% [markdown]
# ## The tools of this chapter
#
# Formulas in NumPy, the layers written by hand from tinylm ops (their parameters carry
# PyTorch's names, so the same state dict loads into `tinylm.nn`'s layers), the toy tasks
# and the training loop. The tests (`tests/test_chapters_10_11.py`, marker `ch11`) use them.

# %%
VARIANTS = ("post-LN", "pre-LN", "A9", "D5")


def sinusoidal_pe(T, d):
    """E5's p: p[t, 2i] = sin(t / 10000^(2i/d)), p[t, 2i+1] = cos(t / 10000^(2i/d))."""
    t = np.arange(T)[:, None]
    omega = 1.0 / 10000.0 ** (np.arange(0, d, 2) / d)        # one frequency per pair
    pe = np.zeros((T, d))
    pe[:, 0::2] = np.sin(t * omega)
    pe[:, 1::2] = np.cos(t * omega)
    return pe


def relative_shift_matrix(k, d):
    """M_k with PE(t + k) = PE(t) M_k for every t: block-diagonal 2 x 2 rotations, one per
    frequency w_i, since sin(w(t+k)) = sin(wt) cos(wk) + cos(wt) sin(wk) and
    cos(w(t+k)) = cos(wt) cos(wk) - sin(wt) sin(wk)."""
    omega = 1.0 / 10000.0 ** (np.arange(0, d, 2) / d)
    M = np.zeros((d, d))
    for i, w in enumerate(omega):
        c, s = math.cos(w * k), math.sin(w * k)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, -s], [s, c]]
    return M


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis; the cache for
    the backward pass."""
    mu = x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    x_hat = (x - mu) / sigma
    return gamma * x_hat + beta, (x_hat, sigma, gamma)


def layer_norm_backward(dy, cache):
    """Derived in section 2:
        dbeta = sum over rows of dy,   dgamma = sum over rows of dy * x_hat,
        dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sigma,   g = dy * gamma."""
    x_hat, sigma, gamma = cache
    rows = tuple(range(dy.ndim - 1))
    g = dy * gamma
    dx = (g - g.mean(axis=-1, keepdims=True)
          - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)) / sigma
    return dx, (dy * x_hat).sum(axis=rows), dy.sum(axis=rows)


class AttentionByHand(nn.Module):
    """Multi-head attention from tinylm ops, with PyTorch's parameter names
    (``in_proj_weight`` (3d, d) = [W_Q; W_K; W_V], ``in_proj_bias``, ``out_proj``).
    ``causal=True`` hides later keys. Inputs (B, T, d)."""

    def __init__(self, d, heads, rng):
        super().__init__()
        self.d, self.heads = d, heads
        bound = math.sqrt(6 / (4 * d))                          # Xavier for (3d, d)
        self.in_proj_weight = nn.Parameter(rng.uniform(-bound, bound, (3 * d, d)))
        self.in_proj_bias = nn.Parameter(np.zeros(3 * d))
        self.out_proj = nn.Linear(d, d, seed=rng, dtype=np.float64)

    def forward(self, query, key_value, causal=False):
        d, h = self.d, self.heads
        W, b = self.in_proj_weight, self.in_proj_bias
        q = F.linear(query, W[:d], b[:d])
        k = F.linear(key_value, W[d:2 * d], b[d:2 * d])
        v = F.linear(key_value, W[2 * d:], b[2 * d:])
        B, L, S = query.shape[0], query.shape[1], key_value.shape[1]
        q, k, v = (t.reshape(B, n, h, d // h).transpose(1, 2)
                   for t, n in ((q, L), (k, S), (v, S)))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)   # (B, h, L, d/h)
        return self.out_proj(o.transpose(1, 2).reshape(B, L, d))


class EncoderLayerByHand(nn.Module):
    """One encoder layer, in four forms (``variant``), written as the formulas read:

        post-LN: h' = LN1(h + MHA(h)),      out = LN2(h' + FFN(h'))     (Vaswani 2017)
        pre-LN:  h' = h + MHA(LN1(h)),      out = h' + FFN(LN2(h'))     (GPT-2)
        A9:      out = LN1(h) + MHA(h) + LN2(h) + FFN(h)                (as written)
        D5:      out = LN1(h + MHA(h))                                  (as written)

    FFN(x) = W_2 relu(W_1 x + b_1) + b_2. No dropout (these are small deterministic runs)."""

    def __init__(self, d, heads, d_ff, variant, seed=0):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        rng = np.random.default_rng(seed)
        self.variant = variant
        self.self_attn = AttentionByHand(d, heads, rng)
        if variant != "D5":
            self.linear1 = nn.Linear(d, d_ff, seed=rng, dtype=np.float64)
            self.linear2 = nn.Linear(d_ff, d, seed=rng, dtype=np.float64)
        self.norm1 = nn.LayerNorm(d, dtype=np.float64)
        if variant != "D5":
            self.norm2 = nn.LayerNorm(d, dtype=np.float64)

    def ffn(self, x):
        return self.linear2(F.relu(self.linear1(x)))

    def forward(self, h):
        if self.variant == "post-LN":
            h = self.norm1(h + self.self_attn(h, h))
            return self.norm2(h + self.ffn(h))
        if self.variant == "pre-LN":
            x = self.norm1(h)
            h = h + self.self_attn(x, x)
            return h + self.ffn(self.norm2(h))
        if self.variant == "A9":
            return self.norm1(h) + self.self_attn(h, h) + self.norm2(h) + self.ffn(h)
        return self.norm1(h + self.self_attn(h, h))                         # D5


class DecoderLayerByHand(nn.Module):
    """The standard (post-LN) decoder layer, or D6 as written (``variant="D6"``):

        standard: x = LN1(y + MaskedMHA(y)),  x = LN2(x + MHA(x, memory)),
                  out = LN3(x + FFN(x))
        D6:       out = LN1(y + MaskedMHA(y) + memory)      (memory ADDED, no cross-attention)
    """

    def __init__(self, d, heads, d_ff, variant="standard", seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.variant = variant
        self.self_attn = AttentionByHand(d, heads, rng)
        if variant == "standard":
            self.multihead_attn = AttentionByHand(d, heads, rng)
            self.linear1 = nn.Linear(d, d_ff, seed=rng, dtype=np.float64)
            self.linear2 = nn.Linear(d_ff, d, seed=rng, dtype=np.float64)
        self.norm1 = nn.LayerNorm(d, dtype=np.float64)
        if variant == "standard":
            self.norm2 = nn.LayerNorm(d, dtype=np.float64)
            self.norm3 = nn.LayerNorm(d, dtype=np.float64)

    def forward(self, y, memory):
        if self.variant == "D6":
            return self.norm1(y + self.self_attn(y, y, causal=True) + memory)
        x = self.norm1(y + self.self_attn(y, y, causal=True))
        x = self.norm2(x + self.multihead_attn(x, memory))
        return self.norm3(x + self.linear2(F.relu(self.linear1(x))))


class Stack(nn.Module):
    """Layers applied in turn (children "0", "1", ...)."""

    def __init__(self, layers):
        super().__init__()
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


class SequenceModel(nn.Module):
    """Embedding * sqrt(d) + sinusoidal pe_table (E5), ``n_layers`` encoder layers of one variant
    (plus a final LayerNorm for pre-LN, as GPT-2), a linear head per position."""

    def __init__(self, vocab, length, d, heads, d_ff, n_layers, variant, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.d = d
        self.embed = nn.Embedding(vocab, d, seed=rng, dtype=np.float64)
        self.embed.weight.data /= math.sqrt(d)                  # so embed * sqrt(d) ~ N(0, 1)
        self.register_buffer("pe", sinusoidal_pe(length, d))
        self.layers = Stack([EncoderLayerByHand(d, heads, d_ff, variant, seed=seed * 100 + i)
                             for i in range(n_layers)])
        self.final_norm = nn.LayerNorm(d, dtype=np.float64) if variant == "pre-LN" else None
        self.head = nn.Linear(d, vocab, seed=rng, dtype=np.float64)

    def forward(self, ids):
        x = self.embed(ids) * math.sqrt(self.d) + tl.Tensor(self.pe[:ids.shape[1]])
        x = self.layers(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.head(x)


def make_sort_batch(rng, batch, length, vocab):
    """The toy task of section 3: output the input sequence sorted."""
    x = rng.integers(0, vocab, size=(batch, length))
    return x, np.sort(x, axis=1)


def sort_batch_fn(batch, length, vocab):
    """A function rng -> ((inputs,), target) drawing one sorting batch."""
    def draw(rng):
        x, y = make_sort_batch(rng, batch, length, vocab)
        return (x,), y
    return draw


def train(model, batch_fn, steps, vocab, lr=3e-3, seed=0):
    """Adam on the per-position cross-entropy; the loss of every step."""
    opt = optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        inputs, target = batch_fn(rng)
        logits = model(*inputs)
        loss = F.cross_entropy(logits.reshape(-1, vocab), target.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def layer_grad_norms(variant, n_layers=6, d=32, heads=4, d_ff=64, T=8, batch=16, seed=0):
    """||dL/dtheta|| of each layer's parameters at initialisation, for a random input and
    a cross-entropy on random targets through a linear head."""
    rng = np.random.default_rng(seed)
    layers = [EncoderLayerByHand(d, heads, d_ff, variant, seed=seed * 100 + i)
              for i in range(n_layers)]
    for layer in layers:        # Xavier-uniform matrices, as nn.Transformer initialises them
        for p in layer.parameters():
            if p.ndim > 1:
                bound = math.sqrt(6 / (p.shape[0] + p.shape[1]))
                p.data = rng.uniform(-bound, bound, p.shape)
    final = nn.LayerNorm(d, dtype=np.float64)
    head = nn.Linear(d, 10, seed=rng, dtype=np.float64)
    x = tl.Tensor(rng.standard_normal((batch, T, d)))
    for layer in layers:
        x = layer(x)
    if variant == "pre-LN":
        x = final(x)
    F.cross_entropy(head(x).reshape(-1, 10), rng.integers(0, 10, batch * T)).backward()
    return np.array([math.sqrt(sum(float(np.sum(p.grad ** 2)) for p in layer.parameters()))
                     for layer in layers])


class Seq2Seq(nn.Module):
    """Encoder (one post-LN layer) + decoder (one layer: ``standard``, ``D6`` with the
    encoder output added position by position, or ``D6-literal``: the document's
    ``Encoder(X)`` applied to the decoder's own input X, which never reads the source)."""

    def __init__(self, vocab, length, d, heads, d_ff, decoder, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.d, self.decoder_kind = d, decoder
        self.src_embed = nn.Embedding(vocab, d, seed=rng, dtype=np.float64)
        self.tgt_embed = nn.Embedding(vocab + 1, d, seed=rng, dtype=np.float64)   # + BOS
        self.register_buffer("pe", sinusoidal_pe(length + 1, d))
        self.encoder = EncoderLayerByHand(d, heads, d_ff, "post-LN", seed=seed + 1)
        self.decoder = DecoderLayerByHand(d, heads, d_ff, "standard" if decoder == "standard"
                                          else "D6", seed=seed + 2)
        self.head = nn.Linear(d, vocab, seed=rng, dtype=np.float64)

    def forward(self, src, tgt_in):
        pe = tl.Tensor(self.pe)
        y = self.tgt_embed(tgt_in) + pe[:tgt_in.shape[1]]
        if self.decoder_kind == "D6-literal":
            memory = self.encoder(y)                       # Encoder(X), X = decoder input
        else:
            memory = self.encoder(self.src_embed(src) + pe[:src.shape[1]])
        return self.head(self.decoder(y, memory))


def make_copy_batch(rng, batch, length, vocab):
    """Copy-from-source: the target is the source reversed; the decoder reads BOS (id
    ``vocab``) + the target shifted right (teacher forcing)."""
    src = rng.integers(0, vocab, size=(batch, length))
    tgt = src[:, ::-1].copy()
    tgt_in = np.concatenate([np.full((batch, 1), vocab), tgt[:, :-1]], axis=1)
    return (src, tgt_in), tgt


def accuracy(model, batch_fn, seed=123):
    inputs, target = batch_fn(np.random.default_rng(seed))
    with tl.no_grad():
        pred = model(*inputs).numpy().argmax(-1)
    return float(np.mean(pred == target))


def accuracy_per_position(model, batch_fn, seed=123):
    """Token accuracy at each target position, on a held-out batch."""
    inputs, target = batch_fn(np.random.default_rng(seed))
    with tl.no_grad():
        pred = model(*inputs).numpy().argmax(-1)
    return np.mean(pred == target, axis=0)


# %%
ch = Chapter(11, "The Transformer")

# %% [markdown]
# ## 1. E5: positional encoding, `P = E + p`
#
# Self-attention is blind to order: permute the words and the outputs are permuted the same
# way (we check it in section 6). E5 adds a position vector `p_t` to each word vector `E_t`.
# The sinusoidal choice (Vaswani et al.) uses pairs of coordinates, one frequency per pair:
#
#     p[t, 2i] = sin(t w_i),   p[t, 2i+1] = cos(t w_i),   w_i = 1 / 10000^(2i/d)
#
# from one turn per 6.3 positions (i = 0) to one per ~60,000 (the last pair): a binary
# counter's bits, made smooth. **Relative positions.** By the angle-addition formulas each
# pair at `t + k` is the pair at `t` turned by the angle `k w_i`:
#
#     [sin w(t+k), cos w(t+k)] = [sin wt, cos wt] [[cos wk, -sin wk], [sin wk, cos wk]]
#
# so `PE(t + k) = PE(t) M_k` with one block-diagonal matrix `M_k` that depends on the
# offset k only, not on t. A layer can therefore learn "look k words back" once, for every
# position. We check it, and we also *fit* a linear map from `PE(t)` to `PE(t + k)` by
# least squares over all t, to see it recovers `M_k` with zero residual.

# %%
ch.section("1. E5: sinusoidal positional encoding, P = E + p")
ch.code(sinusoidal_pe)
T_pe, d_pe = (50, 32) if ch.quick else (100, 64)
pe_table = sinusoidal_pe(T_pe, d_pe)
ch.show("pe_table[:4, :6]", pe_table[:4, :6])
PositionalEncoding = nn.PositionalEncoding
lib_pe = PositionalEncoding(d_pe, max_len=T_pe, batch_first=True, dtype=np.float64)
ch.check("== the table in nn.PositionalEncoding", (lib_pe.pe, pe_table, 1e-12))
E_demo = np.random.default_rng(0).standard_normal((2, 10, d_pe))
ch.check("E5: nn.PositionalEncoding(E) == E + p",
         (lib_pe(tl.Tensor(E_demo)), E_demo + pe_table[:10], 1e-12))
ch.check("every p_t has norm sqrt(d/2) (each sin/cos pair has norm 1)",
         np.allclose(np.linalg.norm(pe_table, axis=1), math.sqrt(d_pe / 2)))

ch.code(relative_shift_matrix)
errs = []
for k in (1, 3, 10):
    M = relative_shift_matrix(k, d_pe)
    errs.append(np.max(np.abs(pe_table[:-k] @ M - pe_table[k:])))
    fitted, *_ = np.linalg.lstsq(pe_table[:-k], pe_table[k:], rcond=None)
    if k == 3:
        fit_residual = np.max(np.abs(pe_table[:-k] @ fitted - pe_table[k:]))
ch.show("max |PE(t) M_k - PE(t+k)| for k = 1, 3, 10", np.array(errs))
ch.check("PE(t + k) = PE(t) M_k for every t, k in {1, 3, 10}", max(errs) < 1e-10)
ch.check("a least-squares linear map from PE(t) to PE(t + 3) fits every t exactly",
         fit_residual < 1e-8, f"residual {fit_residual:.1e}")
ch.check("M_k is orthogonal (a rotation: it keeps norms)",
         np.allclose(M @ M.T, np.eye(d_pe)))
dots = pe_table @ pe_table[T_pe // 2]
ch.check("p_t . p_s depends only on t - s (symmetric around s)",
         np.allclose(dots[T_pe // 2 - 5:T_pe // 2], dots[T_pe // 2 + 5:T_pe // 2:-1]))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
im = axes[0].imshow(pe_table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
axes[0].set_xlabel("position t")
axes[0].set_ylabel("dimension")
axes[0].set_title("sinusoidal positional encoding p[t, :]")
fig.colorbar(im, ax=axes[0])
dims = [0, 2 * round(d_pe / 16), 2 * round(d_pe / 8)]       # periods ~6, ~20, ~63 positions
for j in dims:
    w_j = 1 / 10000 ** (j / d_pe)
    axes[1].plot(pe_table[:, j], label=f"dim {j}: sin(t w), period {2 * math.pi / w_j:.0f}")
axes[1].plot(pe_table[:, dims[-1] + 1], "k--", label=f"dim {dims[-1] + 1}: cos, same w as "
             f"dim {dims[-1]}")
axes[1].set_xlabel("position t")
axes[1].set_title("a few dimensions: lower dims turn faster")
axes[1].legend(fontsize=8, loc="lower left", framealpha=0.9)
ch.savefig(fig, "11_positional_encoding.png")

# %% [markdown]
# ## 2. Layer normalisation and its backward pass (A11 for A9)
#
# LayerNorm normalises each position's feature vector (not the batch): with
# `mu = mean(x)`, `sigma = sqrt(var(x) + eps)` over the d features,
#
#     x_hat = (x - mu) / sigma,        y = gamma * x_hat + beta.
#
# Backward. `beta` and `gamma` are per-feature, shared by every position:
# `dbeta = sum_rows dy`, `dgamma = sum_rows dy * x_hat`. For x, write `g = dy * gamma`
# (= dL/dx_hat). Each `x_j` reaches the loss three ways: directly through `x_hat_j`, through
# `mu` and through `sigma`. With `d mu / d x_j = 1/d` and `d sigma / d x_j = x_hat_j / d`:
#
#     dx_j = (1/sigma) [ g_j - (1/d) sum_i g_i - x_hat_j (1/d) sum_i g_i x_hat_i ]
#
# The two subtracted terms remove from g its mean and its component along `x_hat`: the
# directions in which moving x does not change `x_hat` at all (shifting every feature,
# scaling all of them). So `dx` is orthogonal to `1` and to `x_hat`; we check that too.

# %%
ch.section("2. Layer norm: forward, backward by hand, two checks")
ch.code(layer_norm_backward)
rng = np.random.default_rng(1)
xn = rng.standard_normal((3, 5, 8)) * 2 + 1
gamma, beta = rng.standard_normal(8), rng.standard_normal(8)
dy = rng.standard_normal((3, 5, 8))
yn, cache = layer_norm_forward(xn, gamma, beta)
dx, dgamma, dbeta = layer_norm_backward(dy, cache)
leaves = [tl.Tensor(a.copy(), requires_grad=True) for a in (xn, gamma, beta)]
F.layer_norm(leaves[0], 8, leaves[1], leaves[2]).backward(dy)
ch.check("forward == F.layer_norm", (yn, F.layer_norm(xn, 8, gamma, beta), 1e-12))
err_auto = max(np.max(np.abs(a - t.grad)) for a, t in zip((dx, dgamma, dbeta), leaves))
ch.check("hand dx, dgamma, dbeta == tinylm autograd", err_auto < 1e-12, f"{err_auto:.1e}")


def numeric(arr):
    g = np.zeros_like(arr)
    flat, gf = arr.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        saved = flat[j]
        flat[j] = saved + 1e-6
        up = np.sum(layer_norm_forward(xn, gamma, beta)[0] * dy)
        flat[j] = saved - 1e-6
        down = np.sum(layer_norm_forward(xn, gamma, beta)[0] * dy)
        flat[j] = saved
        gf[j] = (up - down) / 2e-6
    return g


err_fd = max(np.max(np.abs(a - numeric(b))) for a, b in ((dx, xn), (dgamma, gamma), (dbeta, beta)))
ch.check("hand dx, dgamma, dbeta == finite differences", err_fd < 1e-7, f"{err_fd:.1e}")
ch.check("dx is orthogonal to 1, and to x_hat up to the eps inside sigma, in every row",
         np.allclose(dx.sum(-1), 0, atol=1e-12) and
         np.allclose((dx * cache[0]).sum(-1), 0, atol=1e-3))

# %% [markdown]
# ## 3. Four encoder layers: A9, D5, post-LN, pre-LN
#
# The four formulas, written as code (`EncoderLayerByHand`; their parameters carry PyTorch's
# names). First we load the *same* weights into `tinylm.nn.TransformerEncoderLayer`
# (`norm_first=False` / `True`, `variant="A9"` / `"D5"`, dropout 0) and check the outputs
# agree. Then we train a two-layer model of each kind on one toy task, **sorting** a
# sequence of 6 tokens from a vocabulary of 8 (each output position must find the k-th
# smallest input: it needs content *and* position), with the same data, seed and steps.

# %%
ch.section("3. Encoder layers: A9 vs D5 vs post-LN vs pre-LN")
ch.code(EncoderLayerByHand)
d, heads, d_ff = 16, 2, 32
xl = np.random.default_rng(2).standard_normal((2, 5, d))
lib_kwargs = {"post-LN": {}, "pre-LN": {"norm_first": True}, "A9": {"variant": "A9"},
              "D5": {"variant": "D5"}}
for variant in VARIANTS:
    mine = EncoderLayerByHand(d, heads, d_ff, variant, seed=3)
    lib = nn.TransformerEncoderLayer(d, heads, d_ff, dropout=0.0, batch_first=True,
                                     dtype=np.float64, **lib_kwargs[variant])
    lib.load_state_dict(mine.state_dict())   # same names as PyTorch
    ch.check(f"{variant}: by hand == nn.TransformerEncoderLayer({lib_kwargs[variant] or ''})",
             (mine(tl.Tensor(xl)), lib(tl.Tensor(xl)), 1e-12))
n_params = {v: EncoderLayerByHand(d, heads, d_ff, v).num_parameters() for v in VARIANTS}
ch.show("parameters per layer", str(n_params))

vocab, length = 8, 6
steps = 80 if ch.quick else 600
curves, accs = {}, {}
for variant in VARIANTS:
    model = SequenceModel(vocab, length, 32, 4, 64, 2, variant, seed=0)
    curves[variant] = train(model, sort_batch_fn(32, length, vocab), steps, vocab)
    accs[variant] = accuracy(model, sort_batch_fn(500, length, vocab))
    print(f"  {variant:8s} loss {curves[variant][0]:.3f} -> "
          f"{np.mean(curves[variant][-20:]):.3f}   held-out token accuracy {accs[variant]:.3f}")
ch.check("every variant's loss falls (mean of the last 20 steps < first step)",
         all(np.mean(c[-20:]) < c[0] for c in curves.values()))

fig, ax = plt.subplots(figsize=(7, 4.3))
for variant in VARIANTS:
    c = np.convolve(curves[variant], np.ones(10) / 10, mode="valid")
    ax.plot(c, label=f"{variant} (acc {accs[variant]:.2f})")
ax.set_xlabel("Adam step")
ax.set_ylabel("cross-entropy (10-step mean)")
ax.set_yscale("log")
ax.set_title("sorting 6 tokens, 2 layers, d_model 32: four encoder layers")
ax.legend()
ch.savefig(fig, "11_encoder_variants.png")

# %% [markdown]
# What we see (full run, 600 steps): on this small task, with only two layers, all four
# forms learn to sort; the differences are in speed and smoothness, not in what is
# possible. A9 starts higher (its output adds two LayerNorm branches and two sub-layers,
# so its scale is larger than the others') and ends a little behind; D5 has no FFN and
# half the parameters, and is the slowest early on. The document's forms are not useless,
# they are simply not the Transformer: A9 has no residual chain (the FFN never reads the
# attention's output within a layer), so in a deep stack nothing plays the role of the
# identity path that section 4 is about. (The loss spikes are Adam at a constant learning
# rate on a task near zero loss.)

# %% [markdown]
# ## 4. Gradient norms at initialisation: post-LN vs pre-LN
#
# In post-LN every sub-layer's output passes through a LayerNorm *on the residual path*, so
# the gradient reaching layer 1 has gone through all the later LayerNorms. In pre-LN the
# residual path `h + f(LN(h))` is an identity from the output back to every layer: each
# layer gets a gradient of similar size. (Xiong et al. 2020 derive that post-LN's gradients
# near the output are large at initialisation, which is why post-LN needs a learning-rate
# warm-up and pre-LN does not.) We measure `||dL/dtheta_l||` for each of 6 layers at
# initialisation, averaged over a few random seeds.

# %%
ch.section("4. Gradient norm per layer at initialisation, 6 layers")
seeds = range(2) if ch.quick else range(5)
norms = {v: np.mean([layer_grad_norms(v, seed=s) for s in seeds], axis=0)
         for v in ("post-LN", "pre-LN")}
for v, g in norms.items():
    print(f"  {v:8s} " + "  ".join(f"{x:.4f}" for x in g) + f"   last/first {g[-1] / g[0]:.2f}")
spread = {v: g.max() / g.min() for v, g in norms.items()}
ch.show("max/min over layers", str({v: round(float(s), 2) for v, s in spread.items()}))
ratio = {v: g[-1] / g[0] for v, g in norms.items()}
ch.check("pre-LN: the gradient norm falls from layer 1 to layer 6 (last/first < 1)",
         ratio["pre-LN"] < 1, f"{ratio['pre-LN']:.2f}")
ch.check("post-LN puts relatively more gradient on the last layer than pre-LN",
         ratio["post-LN"] > ratio["pre-LN"],
         f"last/first {ratio['post-LN']:.2f} vs {ratio['pre-LN']:.2f}")

fig, ax = plt.subplots(figsize=(6.5, 4))
for v, g in norms.items():
    ax.plot(range(1, 7), g, "o-", label=v)
ax.set_xlabel("layer (1 = nearest the input)")
ax.set_ylabel("||dL/dtheta|| of the layer")
ax.set_title("gradient norms at initialisation, 6-layer encoder")
ax.legend()
ch.savefig(fig, "11_grad_norms.png")

# %% [markdown]
# ## 5. D6's decoder vs the real decoder (D2)
#
# The standard decoder reads the source through **cross-attention**: each target position
# forms a query and attends over *all* encoder outputs, wherever the needed word is. D6
# adds the encoder output position by position instead. Read literally,
# `Decoder(X) = LN(X + MaskedMHA(X) + Encoder(X))` applies the encoder to the decoder's
# own input X, so the source never enters at all ("D6-literal"). Read generously (as
# `tinylm.nn.TransformerDecoderLayer(variant="D6")` does), the encoder's output of the
# source is added at the same positions, which needs the source and the target to have the
# same length.
#
# Task: the target is the source reversed (length 6, vocabulary 8), teacher forcing.
# Position t needs the source word at 5 - t: cross-attention can fetch it, the added
# memory only if the encoder has already moved it there.

# %%
ch.section("5. D6 (no cross-attention) vs the standard decoder: copying the source")
ch.code(DecoderLayerByHand)
mine = DecoderLayerByHand(d, heads, d_ff, "standard", seed=4)
lib = nn.TransformerDecoderLayer(d, heads, d_ff, dropout=0.0, batch_first=True, dtype=np.float64)
lib.load_state_dict(mine.state_dict())
mem = np.random.default_rng(5).standard_normal((2, 7, d))
causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=np.float64)
ch.check("standard: by hand == nn.TransformerDecoderLayer (causal tgt_mask)",
         (mine(tl.Tensor(xl), tl.Tensor(mem)), lib(tl.Tensor(xl), tl.Tensor(mem), tgt_mask=causal),
          1e-12))
mine6 = DecoderLayerByHand(d, heads, d_ff, "D6", seed=4)
lib6 = nn.TransformerDecoderLayer(d, heads, d_ff, dropout=0.0, batch_first=True,
                                  dtype=np.float64, variant="D6")
lib6.load_state_dict(mine6.state_dict())
ch.check("D6: by hand == nn.TransformerDecoderLayer(variant='D6')",
         (mine6(tl.Tensor(xl), tl.Tensor(mem[:, :5])), lib6(tl.Tensor(xl), tl.Tensor(mem[:, :5])),
          1e-12))
try:
    lib6(tl.Tensor(xl), tl.Tensor(mem))          # source of 7 words, target of 5
    d6_error = ""
except tl.ShapeError as err:
    d6_error = str(err)
ch.check("D6 cannot take a source of another length (7 source, 5 target words)",
         bool(d6_error), d6_error[:70] + "...")
out_std = lib(tl.Tensor(xl), tl.Tensor(mem), tgt_mask=causal)
ch.check("the standard decoder can (cross-attention: any source length)",
         out_std.shape == xl.shape)

seq_steps = 100 if ch.quick else 500
copy_fn = (lambda batch: lambda r: make_copy_batch(r, batch, 6, 8))
results = {}
for kind in ("standard", "D6", "D6-literal"):
    model = Seq2Seq(8, 6, 32, 4, 64, kind, seed=0)
    loss_curve = train(model, copy_fn(32), seq_steps, 8)
    results[kind] = accuracy_per_position(model, copy_fn(500))
    print(f"  {kind:11s} loss {loss_curve[0]:.3f} -> {np.mean(loss_curve[-20:]):.3f}   "
          f"accuracy {results[kind].mean():.3f}, per target position "
          + " ".join(f"{a:.2f}" for a in results[kind]))
ch.check("the standard decoder learns to copy (held-out accuracy > 0.9)",
         results["standard"].mean() > 0.9, f"{results['standard'].mean():.3f}")
ch.check("D6-literal at the last position, whose answer (source word 0) is nowhere in the "
         "decoder input: near chance (< 0.35; chance 1/8)", results["D6-literal"][-1] < 0.35,
         f"{results['D6-literal'][-1]:.3f}")
ch.check("... where the standard decoder is right (> 0.8)", results["standard"][-1] > 0.8,
         f"{results['standard'][-1]:.3f}")

# %% [markdown]
# What the numbers show. The **standard decoder** copies the source at every position.
# **D6** (the encoder output of the source added position by position) learns too, on
# this task: the encoder is itself a full self-attention layer, so it learns to move
# source word 5 - t to position t before the addition. It works here because source and
# target have the same length and a fixed alignment; it cannot run at all when the
# lengths differ (the ShapeError above), and every target position gets exactly one
# source-side vector, chosen before the decoder knows what it has generated so far.
#
# **D6-literal** is worse than blind, it *cheats*: `Encoder(X)` is an unmasked
# self-attention over the decoder's own input, and under teacher forcing the input at
# t + 1 is the answer at t. So it scores well at positions 0..4 by reading the future,
# and is at chance at the last position, the only one whose answer is not in the input.
# At generation time there is no future input to read, and it would fail everywhere:
# exactly why the decoder's self-attention is masked, and why the source must come in
# through cross-attention.

# %%
# %% [markdown]
# ## 6. E2's seven steps, traced on one sentence (and B4)
#
# E2 lists the Transformer as: 1 input encoding, 2 fixed-length sub-sequences processed in
# parallel, 3 self-attention, 4 weighted sum, 5 positional encoding, 6 feed-forward
# network, 7 output layer. We run them on one short text with tinylm's layers and print the
# shape after each step. One correction on the order: the position vectors must be added
# **before** attention (as E5 and the documents' code do), because attention without them
# is permutation-equivariant: reorder the words and the outputs are just reordered. We check
# that below, which is exactly why B4 names the two ingredients together.

# %%
ch.section("6. E2: the seven steps, with shapes")
text = "the cat sat on the mat and the dog sat on logs".split()
vocab_words = sorted(set(text))
ids = np.array([vocab_words.index(w) for w in text])
d, heads, window = 16, 2, 4
rng = np.random.default_rng(6)
emb = nn.Embedding(len(vocab_words), d, seed=rng, dtype=np.float64)
pos = nn.PositionalEncoding(d, max_len=window, batch_first=True, dtype=np.float64)
mha = nn.MultiheadAttention(d, heads, batch_first=True, seed=rng, dtype=np.float64)
ffn = nn.Sequential(nn.Linear(d, 4 * d, seed=rng, dtype=np.float64), nn.ReLU(),
                    nn.Linear(4 * d, d, seed=rng, dtype=np.float64))
head = nn.Linear(d, len(vocab_words), seed=rng, dtype=np.float64)
print(f"  text: {len(text)} words, vocabulary {len(vocab_words)}: {' '.join(text)}")
x1 = emb(ids)
print(f"  1 input encoding     ids {ids.shape} -> embeddings {x1.shape}")
x2 = x1.reshape(len(text) // window, window, d)
print(f"  2 sub-sequences      {x1.shape} -> {x2.shape} (batch of {x2.shape[0]} windows of "
      f"{window}, processed in parallel)")
x5 = pos(x2)
print(f"  5 positional enc.    P = E + p: {x2.shape} + p {pos.pe[:window].shape} -> {x5.shape}"
      f"   (applied here, before attention)")
x4, w3 = mha(x5, x5, x5, average_attn_weights=False)
print(f"  3 self-attention     weights {w3.shape} (batch, heads, query, key)")
print(f"  4 weighted sum       sum_j a_ij v_j, heads concatenated, W_O -> {x4.shape}")
x6 = x5 + x4
x6 = x6 + ffn(x6)
print(f"  6 feed-forward       {x4.shape} -> hidden {(x2.shape[0], window, 4 * d)} -> {x6.shape}")
logits = head(x6)
probs = F.softmax(logits, axis=-1)
print(f"  7 output layer       logits {logits.shape}, softmax over the {len(vocab_words)}-word "
      f"vocabulary")
ch.check("each step has the expected shape",
         x2.shape == (3, 4, d) and w3.shape == (3, heads, 4, 4) and x4.shape == (3, 4, d)
         and logits.shape == (3, 4, len(vocab_words)))
ch.check("step 7 gives a distribution at every position", np.allclose(probs.numpy().sum(-1), 1))

perm = np.array([2, 0, 3, 1])
no_pe, _ = mha(x2, x2, x2)
no_pe_perm, _ = mha(x2[:, perm], x2[:, perm], x2[:, perm])
ch.check("without positions, attention is permutation-equivariant: f(x[perm]) == f(x)[perm]",
         (no_pe_perm, no_pe.numpy()[:, perm], 1e-12))
with_pe, _ = mha(pos(x2), pos(x2), pos(x2))
xp = x2[:, perm]
with_pe_perm, _ = mha(pos(xp), pos(xp), pos(xp))
gap = float(np.max(np.abs(with_pe_perm.numpy() - with_pe.numpy()[:, perm])))
ch.check("with P = E + p added first, word order changes the outputs", gap > 1e-3,
         f"max |difference| {gap:.3f}")

# %% [markdown]
# Chapter 12 stacks these layers, with a causal mask, into a language model (E1, E6).

# %%
ch.finish()
