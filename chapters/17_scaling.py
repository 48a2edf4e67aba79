# %% [markdown]
# # Chapter 17: scaling, and what it costs
#
# Three claims of the documents, measured:
#
# * **A16** (document 000 section 3.3), the first drawback of large language models: "training
#   and inference need large amounts of compute". How much, exactly? A model's cost is three
#   numbers: its **parameters** N, the **FLOPs** each token costs (about 2N forward, 6N to
#   train), and the **memory** training holds (weights, gradients, optimiser state,
#   activations).
# * **D8** (document 003 sections 1 and 8): "larger models, stronger abilities", a model with
#   "billions or even hundreds of billions of parameters". We train models of several sizes on
#   the same text for the same number of tokens, and fit Kaplan et al.'s (2020) power law
#   `L(N) = a N^-alpha` to their validation loss.
# * **B8** (document 001 section 8): the compute problem can be eased "by distributed
#   computing, model pruning, quantisation". We prune (zero the smallest weights) and
#   quantise (int8 and fewer bits) the largest trained model and measure what each costs in
#   validation loss and saves in bytes, against simply training a smaller model.
#
# None of the three is an ERRATUM in the catalogue; the numbers below show where each holds
# and what it leaves out (D8's "larger is better" holds at a fixed budget of data, with
# diminishing returns; at a fixed budget of compute there is a best size, and in our range
# it is the smaller model).
#
# Everything runs on the characters of the embedded default corpus with `tinylm.models.GPT`
# (nanoGPT's GPT-2); the counting tools live in `tinylm/scaling.py`, pruning and quantisation
# in `tinylm/compress.py`.

# %%
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinylm import compress, scaling
from tinylm.chapter import Chapter, plt
from tinylm.errors import TinyLMError
from tinylm.models import GPT, GPTConfig
from tinylm.optim import AdamW
from tinylm.text import CharTokenizer, default_text, lm_blocks, load_text, random_windows
from tinylm.train import TrainConfig, Trainer, lm_window_loss

# %% [markdown]
# ## The tools of this chapter
#
# Loading the characters, building a GPT of a given size, training it for a fixed number of
# tokens, scoring it on fixed validation windows, measuring memory with `tracemalloc`, and
# the compression sweeps. The tests (`tests/test_chapter_17.py`, marker `ch17`) use them.

# %%
TRAIN_FRACTION = 0.9
BLOCK = 32                     # context of every model of the chapter (characters)
BATCH = 32                     # windows per training step: BLOCK * BATCH tokens a step
# (n_layer, n_embd, n_head) of the scaling experiment, smallest first: each about 3-8x the
# non-embedding parameters of the one before
SIZES_QUICK = ((1, 4, 1), (1, 8, 2), (1, 16, 2), (1, 32, 4))
SIZES_FULL = SIZES_QUICK[:3] + ((2, 32, 4), (2, 64, 4), (3, 96, 4))
SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
BITS = (8, 6, 4, 3, 2)
PF_DAY = 1e15 * 86400          # one petaFLOP/s for a day, Kaplan et al.'s unit of compute


def load_ids(corpus=None, max_chars=None, fraction=TRAIN_FRACTION):
    """(tokenizer, train ids, validation ids): the characters of the embedded corpus (or of
    ``load_text(corpus)``), cut to ``max_chars``; the first ``fraction`` trains, the rest
    validates (no shuffling, so no neighbouring text leaks across)."""
    text = default_text() if corpus is None else load_text(corpus)
    text = text[:max_chars] if max_chars else text
    if len(text) < 20 * BLOCK:
        raise TinyLMError(f"chapter 17: the corpus needs at least {20 * BLOCK} characters, "
                          f"got {len(text)}")
    cut = int(len(text) * fraction)
    tok = CharTokenizer.train(text[:cut])
    return (tok, np.asarray(tok.encode(text[:cut]), dtype=np.int64),
            np.asarray(tok.encode(text[cut:]), dtype=np.int64))


def make_config(size, vocab_size, block=BLOCK):
    """GPTConfig of one size ``(n_layer, n_embd, n_head)``: nanoGPT's GPT-2 with biases, no
    dropout (the chapter's memory formula is for dropout 0)."""
    n_layer, n_embd, n_head = size
    return GPTConfig(block_size=block, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                     n_embd=n_embd, dropout=0.0, bias=True)


def val_loss(model, ids, block=BLOCK, max_windows=None, batch=64):
    """Mean NLL (nats per character) on consecutive validation windows of ``block``
    characters (the first ``max_windows``), in eval mode without a graph: deterministic, so
    two versions of a model (pruned, quantised) are scored on exactly the same targets."""
    was_training = model.training
    model.eval()
    try:
        if max_windows is not None:           # exactly the first max_windows windows
            ids = ids[:max_windows * block + 1]
        return lm_window_loss(model, ids, block, batch)[0]      # records no graph
    finally:
        model.train(was_training)


def fixed_validation(train_ids, val_ids, block=BLOCK, batch=BATCH, val_windows=256):
    """``get_batch(split, rng)`` for the Trainer: random training windows, and for "val"
    always the same first ``val_windows`` consecutive windows (``val_loss``'s targets), so
    the loss curves of all models are measured on one fixed text, without sampling noise."""
    train_batch = random_windows({"train": train_ids}, block, batch)
    x_val, y_val = lm_blocks(val_ids, block)
    if len(x_val) < val_windows:
        raise TinyLMError(f"fixed_validation: {val_windows} windows of {block} need "
                          f"{val_windows * block + 1} validation ids, got {len(val_ids)}")
    x_val, y_val = x_val[:val_windows], y_val[:val_windows]

    def get_batch(split, rng):
        return (x_val, y_val) if split == "val" else train_batch(split, rng)
    return get_batch


def train_model(config, get_batch, steps, lr, seed=0, evals=6):
    """Train ``GPT(config, seed)`` for ``steps`` steps of BATCH x block tokens (AdamW, weight
    decay 0.1 on matrices, warmup + cosine decay, clipping 1.0), evaluating ``evals`` times.
    Returns (model, history, seconds spent in training steps)."""
    model = GPT(config, seed=seed)
    cfg = TrainConfig(max_iters=steps, lr=lr, min_lr=lr / 10, warmup_iters=max(1, steps // 10),
                      eval_interval=max(1, steps // evals), eval_iters=1, seed=seed,
                      progress=False)
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=lr, betas=(0.9, 0.99))
    trainer = Trainer(model, opt, get_batch, cfg)      # evaluate() records no graph
    history = trainer.fit()
    return model, history, trainer.train_seconds


def counted_training_flops(model, x, y):
    """(forward, backward) matrix-product FLOPs of one training step on (x, y), counted on
    the recorded graph by ``scaling.matmul_flops``."""
    model.train()
    _, loss = model(x, y)
    counted = scaling.matmul_flops(loss)
    return counted["forward"], counted["backward"]


def with_weights_changed(weights, change, score):
    """Apply ``change()`` (which edits ``weights`` in place), return ``score()``, then put the
    original weights back: every pruning or quantisation is scored on the same model."""
    saved = [w.data.copy() for w in weights]
    try:
        change()
        return score()
    finally:
        for w, s in zip(weights, saved):
            w.data[...] = s


def model_bytes(model, weights=(), compressed_bytes=None):
    """Bytes of the whole model: float32 for every parameter, except ``weights`` stored in
    ``compressed_bytes`` instead."""
    total = 4 * model.num_parameters()
    if compressed_bytes is None:
        return total
    return total - 4 * sum(w.size for w in weights) + compressed_bytes


def fmt_bytes(n):
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


# %% [markdown]
# ## 1. Parameters: N = V d + T d + L (12 d^2 + 13 d) + 2 d
#
# A GPT block holds four matrices: `c_attn` (d x 3d, the queries, keys and values), the
# attention's output projection (d x d), and the MLP's two (d x 4d and 4d x d): 12 d^2
# weights, plus 13 d biases and LayerNorm parameters. Around the blocks: the token embedding
# (V x d, which is also the output head: weight tying), the position embedding (T x d), and a
# final LayerNorm. The block term grows with d^2, the embeddings only with d: at GPT-2's sizes
# the blocks are most of the model; in our tiny character models the embeddings are a large
# share. Kaplan et al. count the **non-embedding** parameters (blocks + final norm), whose
# relation to the loss is cleanest.

# %%
ch = Chapter(17, "Scaling: parameters, FLOPs, memory, a scaling law; pruning and quantisation")
ch.section("1. Parameters by formula, checked against GPT and GPT-2's released sizes")
ch.formula("N = V d  +  T d  +  L (12 d^2 + 13 d)  +  2 d          (with biases)",
           "N = V d  +  T d  +  L (12 d^2 +  2 d)  +    d          (bias=False)")
ch.code(scaling.gpt_parameter_count)
configs = [GPTConfig(block_size=T, vocab_size=V, n_layer=L, n_head=H, n_embd=d, bias=b)
           for (L, d, H, V, T, b) in ((1, 16, 2, 104, 32, True), (2, 48, 4, 104, 32, True),
                                      (3, 96, 4, 65, 128, True), (2, 40, 5, 300, 64, False),
                                      (4, 128, 8, 50, 256, False))]
print("   L    d   H     V     T  bias     formula   GPT(config)   non-embedding")
agree = True
for cfg in configs:
    parts = scaling.gpt_parameter_count(cfg)
    actual = GPT(cfg, seed=0).num_parameters()
    agree &= parts["total"] == actual
    print(f"  {cfg.n_layer:2d} {cfg.n_embd:4d} {cfg.n_head:3d} {cfg.vocab_size:5d} "
          f"{cfg.block_size:5d}  {str(cfg.bias):5s} {parts['total']:10,d}   {actual:11,d}"
          f"   {parts['non_embedding']:13,d}")
ch.check("the formula = GPT(config).num_parameters() for every config (with and without bias)",
         agree)

print("\n  GPT-2 (V = 50,257, T = 1,024), the formula with each size's (L, d):")
print("  name           L     d    formula N        released checkpoint   non-embedding  "
      "embedding share")
gpt2_ok = True
for name, size in scaling.GPT2_SIZES.items():
    cfg = GPTConfig(block_size=scaling.GPT2_CONTEXT, vocab_size=scaling.GPT2_VOCAB,
                    n_layer=size["n_layer"], n_head=size["n_head"], n_embd=size["n_embd"])
    parts = scaling.gpt_parameter_count(cfg)
    gpt2_ok &= parts["total"] == size["params"]
    print(f"  {name:12s} {size['n_layer']:3d} {size['n_embd']:5d}  {parts['total']:15,d}  "
          f"{size['params']:20,d}   {parts['non_embedding']:13,d}  "
          f"{1 - parts['non_embedding'] / parts['total']:14.1%}")
ch.check("the formula gives GPT-2's four released parameter counts exactly (124M ... 1.56B)",
         gpt2_ok)
gpt3 = GPTConfig(block_size=2048, vocab_size=scaling.GPT2_VOCAB, n_layer=96, n_head=96,
                 n_embd=12288)
n_gpt3 = scaling.gpt_parameter_count(gpt3)["total"]
ch.show("GPT-3 (L = 96, d = 12,288, T = 2,048): N", f"{n_gpt3:,d} ({n_gpt3 / 1e9:.1f} billion)")
ch.check("D8's 'hundreds of billions': GPT-3's config gives its published 175B (within 1%)",
         abs(n_gpt3 / 175e9 - 1) < 0.01)

# %% [markdown]
# ## 2. FLOPs per token: 2N forward, 6N to train (A16)
#
# A token passes through every weight matrix once: one multiply and one add per weight, so a
# forward pass costs about **2N FLOPs per token**. Attention adds the products with the
# other positions: Q K^T and the weighted sum of V, 2 T d FLOPs each per token and layer. The
# backward pass computes, for each product `a @ b`, both `dL/da = g b^T` and `dL/db = a^T g`:
# two products of the same size, so **backward = 2 x forward** and a training step costs
# **6N per token** (Kaplan et al. 2020, section 2.1).
#
# We check this on the graph a real forward pass records: `scaling.matmul_flops` visits every
# `MatMul` node and adds 2 m k n for it. Here N for "6N" is the parameters that take part in a
# product: the blocks' 12 L d^2 and the head's d V (tied to the embedding; the position
# embedding is only looked up).

# %%
ch.section("2. FLOPs per token: counted on the graph vs L (24 d^2 + 4 T d) + 2 d V")
ch.formula("forward / token  = L (24 d^2 + 4 T d) + 2 d V",
           "backward         = 2 x forward     (dL/da = g b^T and dL/db = a^T g)",
           "training         = 3 x forward  =  6 (12 L d^2 + d V) + 12 L T d  ~  6 N")
ch.code(scaling.matmul_flops)
tok, train_ids, val_ids = load_ids(ch.corpus, 200_000 if ch.quick else 1_000_000)
V = tok.vocab_size
ch.show("characters: train, validation; vocabulary V", np.array([len(train_ids), len(val_ids),
                                                              V]))
ref_cfg = make_config((2, 64, 4), V)
ref = GPT(ref_cfg, seed=0)
rng = np.random.default_rng(0)
B_ref = 8
get_ref = random_windows({"train": train_ids}, BLOCK, B_ref)
x_ref, y_ref = get_ref("train", rng)
fwd, bwd = counted_training_flops(ref, x_ref, y_ref)
formula_fwd = scaling.gpt_forward_flops(ref_cfg, BLOCK)
tokens_ref = B_ref * BLOCK
ch.show("reference model", str(ref_cfg))
ch.show("counted forward FLOPs / token", fwd / tokens_ref)
ch.show("formula: weights, attention, head, total", np.array(
    [formula_fwd[k] for k in ("weights", "attention", "head", "total")]))
ch.check("counted forward FLOPs = the formula x B x T, exactly",
         fwd == formula_fwd["total"] * tokens_ref)
ch.check("counted backward FLOPs = 2 x forward (every product has two gradient products)",
         bwd == 2 * fwd)
n_matmul = 12 * ref_cfg.n_layer * ref_cfg.n_embd ** 2 + ref_cfg.n_embd * V
n_total = ref.num_parameters()
train_per_token = (fwd + bwd) / tokens_ref
ch.show("training FLOPs / token: counted, 6 N_matmul, 6 N_total",
        np.array([train_per_token, 6 * n_matmul, 6 * n_total]))
ch.check("counted training FLOPs = 6 N_matmul + 12 L T d (the attention term) exactly",
         train_per_token == 6 * n_matmul + 12 * ref_cfg.n_layer * BLOCK * ref_cfg.n_embd)

# time a few steps: how many of these FLOPs this machine does per second
opt_ref = AdamW(ref.parameters(), lr=1e-3)
steps_timed = 5 if ch.quick else 20
for step in range(steps_timed + 1):
    if step == 1:                  # the first step allocates the optimiser state: not timed
        start = time.perf_counter()
    x, y = get_ref("train", rng)
    _, loss = ref(x, y)
    opt_ref.zero_grad()
    loss.backward()
    opt_ref.step()
step_seconds = (time.perf_counter() - start) / steps_timed
flops_per_second = (fwd + bwd) / step_seconds
ch.show("one training step of the reference model (ms); achieved GFLOP/s",
        np.array([1e3 * step_seconds, flops_per_second / 1e9]))

print("\n  GPT-2 at T = 1,024: training FLOPs per token, exact formula vs 6N")
print("  name           exact / token    6 N_total     6 N_non-emb   attention share  "
      "300B tokens: PF-days  years here")
for name, size in scaling.GPT2_SIZES.items():
    cfg = GPTConfig(block_size=scaling.GPT2_CONTEXT, vocab_size=scaling.GPT2_VOCAB,
                    n_layer=size["n_layer"], n_head=size["n_head"], n_embd=size["n_embd"])
    fl = scaling.gpt_forward_flops(cfg)
    parts = scaling.gpt_parameter_count(cfg)
    compute = fl["training"] * 300e9
    print(f"  {name:12s} {fl['training']:14.3e}  {6 * parts['total']:11.3e}  "
          f"{6 * parts['non_embedding']:12.3e}   {fl['attention'] / fl['total']:14.1%}  "
          f"{compute / PF_DAY:20.1f}  {compute / flops_per_second / 3.156e7:10.0f}")
small = scaling.GPT2_SIZES["gpt2"]
small_fl = scaling.gpt_forward_flops(GPTConfig(
    block_size=scaling.GPT2_CONTEXT, vocab_size=scaling.GPT2_VOCAB, n_layer=small["n_layer"],
    n_head=small["n_head"], n_embd=small["n_embd"]))
ch.note(f"A16 in numbers: 300 billion tokens (GPT-3's budget) through GPT-2 small is "
        f"{small_fl['training'] * 300e9:.2e} FLOPs; at the {flops_per_second / 1e9:.1f} GFLOP/s "
        f"measured above this CPU would need "
        f"{small_fl['training'] * 300e9 / flops_per_second / 3.156e7:,.0f} years. 6 N misses the attention term 12 L T d "
        f"({small_fl['attention'] / small_fl['total']:.0%} of GPT-2 small's FLOPs at "
        f"T = 1,024) and counts the position embedding, which is only looked up.")

# %% [markdown]
# ## 3. Memory: weights, gradients, Adam's moments, activations
#
# Training with Adam in float32 keeps, per parameter, the weight (4 bytes), its gradient
# (4 bytes) and Adam's two running moments (8 bytes): **16 N bytes** before a single
# activation. (Mixed precision keeps 16-bit weights and gradients but a float32 master copy:
# also 16 N, ZeRO's count.) The **activations** are what the forward pass keeps for the
# backward pass; they grow with the batch B, the context T and the depth L, not with N.
#
# In tinylm every `Function` holds its inputs and what its backward needs, so the graph keeps
# every intermediate array alive until `backward()`. `scaling.graph_bytes` adds up the
# distinct buffers of the graph; `scaling.gpt_activation_bytes` predicts them term by term
# (36 d + H T floats per token and block: the list is in its source); `tracemalloc`, which
# sees NumPy's allocations, measures what the forward pass really left allocated.

# %%
ch.section("3. Memory of training: 16 N bytes of state + activations")
ch.formula("weights 4 N  +  gradients 4 N  +  Adam (m, v) 8 N   bytes, float32",
           "activations / token / block = 4 (36 d + H T + 2) bytes  (this engine; T <= 256)")
ch.code(scaling.gpt_activation_bytes)
measured = {"weights": sum(p.data.nbytes for p in ref.parameters()),
            "gradients": sum(p.grad.nbytes for p in ref.parameters()),
            "optimizer": scaling.optimizer_state_bytes(opt_ref)}
predicted = scaling.training_memory_bytes(ref.num_parameters(), "adamw")
for key in ("weights", "gradients", "optimizer"):
    print(f"  {key:10s} measured {measured[key]:9,d} B   formula {predicted[key]:9,d} B")
ch.check("weights, gradients and AdamW's moments = 4 N, 4 N and 8 N bytes (the tied head "
         "counted once)", all(measured[k] == predicted[k] for k in measured))

retained, _, (logits_ref, loss_ref) = scaling.traced_memory(lambda: ref(x_ref, y_ref))
walked = scaling.graph_bytes(loss_ref, exclude=ref.parameters())
by_op = scaling.graph_bytes(loss_ref, exclude=ref.parameters(), by_op=True)
act = scaling.gpt_activation_bytes(ref_cfg, B_ref, BLOCK)
del logits_ref, loss_ref
print("  activations of one forward pass, by the op that made or saved the buffer:")
for op, nbytes in sorted(by_op.items(), key=lambda kv: -kv[1]):
    print(f"    {op:16s} {nbytes:10,d} B   {nbytes / walked:6.1%}")
ch.show("activations: formula, graph walk, tracemalloc (bytes)",
        np.array([act["total"], walked, retained]))
ch.check("the formula = the bytes the graph holds, exactly", act["total"] == walked)
ch.check("tracemalloc agrees with the graph walk within 5% (the rest: Python objects)",
         abs(retained / walked - 1) < 0.05, f"{retained / walked - 1:+.2%}")

# activations against the context T: per token, 36 d floats per block plus H T for the
# attention weights the fused attention keeps; beyond 256 x 256 scores its streaming path
# (chapter 10) keeps none of them, only a log-sum-exp per query. One model of the reference
# size with a longer block_size, measured at each length.
sweep_T = (16, 32, 64, 128, 192, 256, 320, 512)
sweep_B = 2
long_cfg = make_config((2, 64, 4), V, block=max(sweep_T))
long_ref = GPT(long_cfg, seed=0)
sweep = {}
for T_s in sweep_T:
    xs = rng.integers(0, V, (sweep_B, T_s))
    _, loss_s = long_ref(xs, xs)
    sweep[T_s] = scaling.graph_bytes(loss_s, exclude=long_ref.parameters())
    del loss_s
sweep_formula = {T_s: scaling.gpt_activation_bytes(long_cfg, sweep_B, T_s)["total"]
                 for T_s in sweep_T}
ch.show(f"activation bytes per token at T = {sweep_T} (B = {sweep_B})",
        np.array([sweep[T_s] / (sweep_B * T_s) for T_s in sweep_T]).round(0))
ch.check("the formula holds at every length of the sweep, weights kept and streaming",
         sweep == sweep_formula)

print("\n  GPT-2, float32 training with Adam, one sequence of 1,024 tokens:")
print("  name          weights    gradients   Adam m,v    activations (this engine)")
gpt2_memory = {}
for name, size in scaling.GPT2_SIZES.items():
    cfg = GPTConfig(block_size=scaling.GPT2_CONTEXT, vocab_size=scaling.GPT2_VOCAB,
                    n_layer=size["n_layer"], n_head=size["n_head"], n_embd=size["n_embd"])
    mem = scaling.training_memory_bytes(size["params"], "adam")
    # T = 1,024 runs the streaming attention kernel: no T x T arrays are kept
    mem["activations"] = scaling.gpt_activation_bytes(cfg, 1)["total"]
    gpt2_memory[name] = mem
    print(f"  {name:12s} {fmt_bytes(mem['weights']):>9s}  {fmt_bytes(mem['gradients']):>9s}"
          f"  {fmt_bytes(mem['optimizer']):>9s}   {fmt_bytes(mem['activations']):>9s}")

fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4))
Ts = np.array(sweep_T)
axes[0].plot(Ts, [sweep[t] / (sweep_B * t) / 1e3 for t in sweep_T], "o", color="k",
             label=f"graph walk (B = {sweep_B})", zorder=3)
grid_T = np.arange(Ts.min(), Ts.max() + 1)
per_token = np.array([scaling.gpt_activation_bytes(long_cfg, sweep_B, int(t))["total"]
                      / (sweep_B * t) / 1e3 for t in grid_T])
axes[0].plot(grid_T, per_token, "-", color="C0", label="formula")
d_part = 4 * long_cfg.n_layer * 36 * long_cfg.n_embd / 1e3
axes[0].axhline(d_part, color="C1", ls="--", lw=1,
                label=f"36 d floats per block ({d_part:.1f} kB)")
axes[0].axvline(256, color="gray", ls=":", lw=1)
axes[0].set_ylim(top=per_token.max() * 1.04)
axes[0].text(270, (per_token.min() + per_token.max()) / 2,       # right of the dotted line
             "beyond 256 x 256 scores (dotted line):\nstreaming attention keeps\n"
             "no T x T weights", fontsize=8, va="center")
axes[0].set_xlabel("context length T (tokens)")
axes[0].set_ylabel("activation memory per token (kB)")
axes[0].set_title(f"activations kept for backward, GPT L={long_cfg.n_layer}, "
                  f"d={long_cfg.n_embd}, H={long_cfg.n_head}", fontsize=10)
axes[0].legend(fontsize=8, loc="upper right")
axes[0].grid(alpha=0.3)
names = list(gpt2_memory)
bottom = np.zeros(len(names))
for key, color in (("weights", "C0"), ("gradients", "C1"), ("optimizer", "C2"),
                   ("activations", "C3")):
    vals = np.array([gpt2_memory[n][key] / 1e9 for n in names])
    label = {"optimizer": "Adam m, v",
             "activations": "activations, one sequence of 1,024 tokens"}.get(key, key)
    axes[1].bar(names, vals, bottom=bottom, color=color, label=label)
    bottom += vals
axes[1].set_ylabel("GB (float32)")
axes[1].set_title("training memory of GPT-2 with Adam: 16 N bytes + activations",
                  fontsize=10)
axes[1].legend(fontsize=8)
axes[1].grid(alpha=0.3, axis="y")
ch.savefig(fig, "17_memory.png")

# %% [markdown]
# ## 4. D8: a scaling experiment
#
# "Larger models are more capable" is a claim about a curve. We train GPTs of
# several sizes on the same characters, each for **the same number of tokens** (same steps,
# same batch, same learning-rate schedule, same seed), and score each on the same held-out
# windows. Kaplan et al. found the loss falls as a power law of the non-embedding parameters,
# `L(N) = (N_c / N)^alpha_N`, a straight line on log-log axes; with a finite budget the line
# bends towards an irreducible loss, so we also fit `a N^-alpha + c`. Least squares on log
# axes: the residuals of the line are orthogonal to (1, log N), which we check.
#
# The curves of loss against training compute (about 6 N FLOPs per token, counted) show the
# other half of the story: where two curves share a compute value, the smaller model is
# ahead. Every model here saw the same tokens, so the small ones got hundreds of tokens per
# parameter and the large ones a few: Hoffmann et al. (2022, "Chinchilla") found that for a
# fixed compute budget the best model sees about 20 tokens per parameter. "Larger is better"
# holds at a fixed amount of data; at a fixed amount of compute there is a best size.

# %%
ch.section("4. D8: loss vs parameters at a fixed token budget, and a power-law fit")
sizes = SIZES_QUICK if ch.quick else SIZES_FULL
steps = 300 if ch.quick else 500
lr = 1e-2
val_windows = 256                # 8,192 validation characters, the same for every score
get_batch = fixed_validation(train_ids, val_ids, BLOCK, BATCH, val_windows)
tokens_budget = steps * BATCH * BLOCK
ch.show("tokens seen by every model (steps x batch x block)",
        f"{steps} x {BATCH} x {BLOCK} = {tokens_budget:,d}")
runs = []
print("   L    d   H    N total   N non-emb   tokens/N   train FLOPs/token   ms/step   "
      "GFLOP/s   val loss")
for size in sizes:
    cfg = make_config(size, V)
    model, history, seconds = train_model(cfg, get_batch, steps, lr, evals=4 if ch.quick else 6)
    xb, yb = get_batch("train", np.random.default_rng(1))
    f_fwd, f_bwd = counted_training_flops(model, xb, yb)
    per_token = (f_fwd + f_bwd) / (BATCH * BLOCK)
    run = {"size": size, "config": cfg, "model": model, "history": history,
           "n_total": model.num_parameters(),
           "n_nonemb": scaling.gpt_parameter_count(cfg)["non_embedding"],
           "flops_per_token": per_token, "seconds": seconds,
           "val": val_loss(model, val_ids, max_windows=val_windows)}
    runs.append(run)
    print(f"  {size[0]:2d} {size[1]:4d} {size[2]:3d} {run['n_total']:10,d}  "
          f"{run['n_nonemb']:10,d}  {tokens_budget / run['n_nonemb']:9,.0f}   "
          f"{per_token:17,.0f}  {1e3 * seconds / steps:8.1f}  "
          f"{per_token * tokens_budget / seconds / 1e9:8.2f}   {run['val']:.4f}")
ch.check("each loss curve ends at the table's loss (the same fixed validation windows)",
         (np.array([r["history"]["eval"][-1]["val_loss"] for r in runs]),
          np.array([r["val"] for r in runs]), 1e-4))

n_arr = np.array([r["n_nonemb"] for r in runs], dtype=float)
loss_arr = np.array([r["val"] for r in runs])
ch.code(scaling.fit_power_law)
law = scaling.fit_power_law(n_arr, loss_arr)
law_c = scaling.fit_power_law(n_arr, loss_arr, offset=True)
ch.formula(f"L(N) = {law.a:.3f} N^-{law.alpha:.4f}                 R^2 (log L) = {law.r2:.3f}",
           f"L(N) = {law_c.a:.3f} N^-{law_c.alpha:.4f} + {law_c.c:.3f}         "
           f"R^2 (log L) = {law_c.r2:.3f}")
resid = np.log(loss_arr) - np.log(law(n_arr))
ch.check("least squares on log axes: residuals orthogonal to 1 and to log N",
         (np.array([resid.sum(), resid @ np.log(n_arr)]), np.zeros(2), 1e-9))
ch.check("D8 at a fixed token budget: the loss falls with N (alpha > 0), the largest model "
         "far below the smallest (> 0.3 nats)", law.alpha > 0 and
         loss_arr[0] - loss_arr[-1] > 0.3, f"losses {np.round(loss_arr, 3)}")
ch.check("the offset fit is at least as close (it has one more parameter)",
         law_c.r2 >= law.r2 - 1e-12)
gain = loss_arr[0] - loss_arr[-1]
ch.note(f"From {n_arr[0]:,.0f} to {n_arr[-1]:,.0f} non-embedding parameters "
        f"({n_arr[-1] / n_arr[0]:.0f}x) the validation loss falls by {gain:.3f} nats per "
        f"character; each doubling of N buys a factor 2^-alpha = {2 ** -law.alpha:.3f} of "
        f"the loss: diminishing returns, as D8 does not say. The loss of one size also "
        f"varies between training seeds (by about 0.1 nats at this budget), so neighbouring "
        f"sizes can swap places; the trend over the whole range is what the fit measures.")

fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.6))
grid_n = np.geomspace(n_arr.min() / 1.5, n_arr.max() * 1.5, 100)
axes[0].plot(n_arr, loss_arr, "o", color="k", label="trained models (validation)", zorder=3)
axes[0].plot(grid_n, law(grid_n), "-", color="C0",
             label=f"fit: {law.a:.2f} N^-{law.alpha:.3f}")
axes[0].plot(grid_n, law_c(grid_n), "--", color="C1",
             label=f"fit: {law_c.a:.2f} N^-{law_c.alpha:.3f} + {law_c.c:.2f}")
for r in runs:
    axes[0].annotate(f"L={r['size'][0]}, d={r['size'][1]}", (r["n_nonemb"], r["val"]),
                     textcoords="offset points", xytext=(5, 5), fontsize=8)
axes[0].set_xscale("log")
axes[0].set_yscale("log")
ticks = np.geomspace(loss_arr.min(), loss_arr.max(), 5)          # plain numbers, log spacing
axes[0].set_yticks(ticks, [f"{t:.2f}" for t in ticks])
axes[0].yaxis.set_minor_formatter(NullFormatter())
axes[0].set_xlabel("non-embedding parameters N (log)")
axes[0].set_ylabel("validation loss (nats / character, log)")
axes[0].set_title(f"D8: loss vs size, {tokens_budget:,d} training tokens each", fontsize=10)
axes[0].legend(fontsize=8)
axes[0].grid(alpha=0.3, which="both")
for r, color in zip(runs, [f"C{i}" for i in range(len(runs))]):
    evals = r["history"]["eval"]
    compute = np.array([e["iter"] for e in evals]) * BATCH * BLOCK * r["flops_per_token"]
    axes[1].plot(compute[1:], [e["val_loss"] for e in evals][1:], "o-", color=color,
                 label=f"L={r['size'][0]}, d={r['size'][1]} ({r['n_nonemb']:,d})")
axes[1].set_xscale("log")
axes[1].set_xlabel("training compute so far (FLOPs, counted: ~6 N per token; log)")
axes[1].set_ylabel("validation loss (nats / character)")
axes[1].set_title("loss vs compute: at equal compute the smaller model is ahead here",
                  fontsize=10)
axes[1].legend(fontsize=8, title="model (non-embedding N)", title_fontsize=8)
axes[1].grid(alpha=0.3, which="both")
ch.savefig(fig, "17_scaling.png")

# %% [markdown]
# ## 5. B8: magnitude pruning
#
# Pruning sets weights to zero. Which ones? The usual first answer (LeCun et al.'s "optimal
# brain damage" simplified; Han et al. 2015) is the smallest in magnitude: a weight near
# zero contributes little to any output. **Global** magnitude pruning ranks the weights of
# all matrices together, so a matrix of small weights loses more of them; **per-layer**
# pruning takes the same share from each matrix; **random** pruning is the baseline that
# shows the magnitude matters. We prune the `Linear` weights of the largest trained model
# (the blocks: 12 L d^2 weights; the tied embedding/head stays dense) with no retraining,
# and score each on the same validation windows.
#
# A pruned matrix saves memory only if it is stored sparsely: here a bitmask (1 bit per
# position) plus the kept float32 values, which pays once more than 1/32 of the weights are
# gone. Saving compute needs sparse kernels, which dense BLAS is not.

# %%
ch.section("5. B8: global magnitude pruning (vs per-layer and random), no retraining")
ch.formula("keep w_ij  iff  |w_ij| >= t,   t = the (s n)-th smallest |w| over all pruned "
           "matrices")
ch.code(compress.magnitude_masks)
big = runs[-1]["model"]
named = compress.prunable_weights(big)
weights = [w for _, w in named]
n_pruned = sum(w.size for w in weights)
ch.show("pruned matrices", ", ".join(name for name, _ in named))
ch.show("their weights; share of the model", f"{n_pruned:,d} of {big.num_parameters():,d} "
        f"({n_pruned / big.num_parameters():.1%})")
dense_loss = val_loss(big, val_ids, max_windows=val_windows)


def score():
    return val_loss(big, val_ids, max_windows=val_windows)


prune_loss = {"global": [], "per layer": [], "random": []}
prune_bytes = []
for s in SPARSITIES:
    masks = {"global": compress.magnitude_masks(weights, s),
             "per layer": compress.magnitude_masks(weights, s, scope="layer"),
             "random": compress.random_masks(weights, s, seed=0)}
    for kind, m in masks.items():
        prune_loss[kind].append(with_weights_changed(
            weights, lambda m=m: compress.apply_masks_(weights, m), score))
    prune_bytes.append(model_bytes(big, weights, sum(compress.sparse_bytes(k)
                                                     for k in masks["global"])))
print("  sparsity   global     per layer   random     model bytes (bitmask + values)")
for i, s in enumerate(SPARSITIES):
    print(f"  {s:8.0%}  {prune_loss['global'][i]:8.4f}  {prune_loss['per layer'][i]:10.4f}  "
          f"{prune_loss['random'][i]:8.4f}   {fmt_bytes(prune_bytes[i])}")
masks_half = compress.magnitude_masks(weights, 0.5)
flat_w = np.concatenate([w.data.ravel() for w in weights])
flat_k = np.concatenate([m.ravel() for m in masks_half])
ch.check("sparsity 0 leaves the loss exactly as it was", prune_loss["global"][0] == dense_loss)
ch.check("50%: exactly half the weights are zeroed, and every kept |w| >= every pruned |w|",
         flat_k.sum() == n_pruned - round(0.5 * n_pruned)
         and np.abs(flat_w[flat_k]).min() >= np.abs(flat_w[~flat_k]).max())
i50 = SPARSITIES.index(0.5)
ch.check("at 50% sparsity magnitude pruning hurts less than random pruning",
         prune_loss["global"][i50] < prune_loss["random"][i50],
         f"{prune_loss['global'][i50]:.3f} < {prune_loss['random'][i50]:.3f}")
ch.check("the weights are restored after each trial (the model scores as before)",
         score() == dense_loss)

# %% [markdown]
# ## 6. B8: int8 quantisation
#
# Symmetric quantisation stores each weight as an integer `q = round(w / s)` in [-127, 127]
# and a float scale `s = max|w| / 127`, one per output row (**per channel**) or one per matrix
# (**per tensor**): 1 byte a weight instead of 4. The rounding error of each weight is at most
# s / 2, so a row with one large weight spoils the precision of its small ones; per-channel
# scales keep that damage to the row. We quantise and dequantise ("fake quantisation": the
# same numbers an int8 kernel would multiply), then score. Fewer bits (6, 4, 3, 2) show where
# rounding starts to hurt.

# %%
ch.section("6. B8: symmetric int8 quantisation of the Linear weights (and fewer bits)")
ch.formula("s = max|w| / Q,  Q = 2^(b-1) - 1 = 127 for int8;   q = round(w / s);   "
           "w^ = q s;   |w - w^| <= s/2")
ch.code(compress.quantize_symmetric)
bound_ok = True
for w in weights:
    for per_channel in (True, False):
        q, s_ = compress.quantize_symmetric(w, 8, per_channel)
        bound_ok &= bool(np.all(np.abs(w.data - compress.dequantize(q, s_))
                                <= s_ / 2 * (1 + 1e-6)))
ch.check("every int8 weight is within s/2 of the float weight (per channel and per tensor)",
         bound_ok)
quant_loss = {"per channel": [], "per tensor": []}
quant_bytes = {"per channel": [], "per tensor": []}
for bits in BITS:
    for kind in quant_loss:
        pc = kind == "per channel"
        nbytes = sum(compress.quantized_bytes(w.shape, bits, pc) for w in weights)
        quant_loss[kind].append(with_weights_changed(
            weights, lambda b=bits, pc=pc: compress.fake_quantize_(weights, b, pc), score))
        quant_bytes[kind].append(model_bytes(big, weights, nbytes))
print(f"  float32: loss {dense_loss:.4f}, model {fmt_bytes(model_bytes(big))}")
print("  bits   per channel   per tensor   model bytes (per channel)")
for i, bits in enumerate(BITS):
    print(f"  {bits:4d}  {quant_loss['per channel'][i]:11.4f}  {quant_loss['per tensor'][i]:11.4f}"
          f"   {fmt_bytes(quant_bytes['per channel'][i])}")
int8 = quant_loss["per channel"][0]
ch.check("int8 per channel costs less than 1% of the validation loss",
         abs(int8 / dense_loss - 1) < 0.01, f"{dense_loss:.4f} -> {int8:.4f}")
int8_matrices = sum(compress.quantized_bytes(w.shape, 8) for w in weights)
ch.check("int8 stores the Linear weights in 1/4 of their float32 bytes, plus one float "
         "scale per row", 0.25 < int8_matrices / (4 * n_pruned) < 0.3,
         f"{int8_matrices / (4 * n_pruned):.3f}")
ch.check("2 bits per weight is far worse than 8 (rounding error becomes the signal)",
         quant_loss["per channel"][-1] > int8 + 0.1)

# pruning and quantisation together: 50% magnitude pruning, then int8 per channel
combo_loss = with_weights_changed(
    weights, lambda: (compress.apply_masks_(weights, masks_half),
                      compress.fake_quantize_(weights, 8)), score)
combo_bytes = model_bytes(big, weights, sum(compress.sparse_bytes(m, value_bits=8)
                                            + 4 * m.shape[0] for m in masks_half))
ch.show("50% pruned + int8: validation loss, model bytes",
        f"{combo_loss:.4f}, {fmt_bytes(combo_bytes)}")

# %% [markdown]
# ## 7. Compress a large model, or train a small one?
#
# The last figure puts every model of the chapter on one axis, bytes: the trained sizes of
# section 4 in float32, and the compressed versions of the largest. A compression is worth it
# where its point lies below the curve of the trained models: the same loss in fewer bytes.

# %%
ch.section("7. Validation loss against model bytes")
sizes_bytes = np.array([model_bytes(r["model"]) for r in runs])
fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
for kind, style in (("global", "o-"), ("per layer", "s--"), ("random", "^:")):
    axes[0].plot(100 * np.array(SPARSITIES), prune_loss[kind], style, label=kind)
axes[0].axhline(dense_loss, color="gray", lw=0.8, label="unpruned")
axes[0].set_xlabel("sparsity: share of the Linear weights zeroed (%)")
axes[0].set_ylabel("validation loss (nats / character)")
axes[0].set_title("B8: magnitude pruning, no retraining", fontsize=10)
axes[0].legend(fontsize=8, loc="upper left")
axes[0].grid(alpha=0.3)
for kind, style in (("per channel", "o-"), ("per tensor", "s--")):
    axes[1].plot(BITS, quant_loss[kind], style, label=kind)
axes[1].axhline(dense_loss, color="gray", lw=0.8, label="float32")
axes[1].set_xlabel("bits per weight")
axes[1].set_ylabel("validation loss (nats / character)")
axes[1].set_title("B8: symmetric quantisation (scales per row or per matrix)", fontsize=10)
axes[1].invert_xaxis()
axes[1].legend(fontsize=8)
axes[1].grid(alpha=0.3)
axes[2].plot(sizes_bytes / 1e3, loss_arr, "ko-", label="trained sizes (float32)")
axes[2].plot(np.array(prune_bytes[1:]) / 1e3, prune_loss["global"][1:], "o-", color="C0",
             label="largest, pruned (global)")
axes[2].plot(np.array(quant_bytes["per channel"]) / 1e3, quant_loss["per channel"], "s-",
             color="C2", label="largest, quantised (8 to 2 bits)")
axes[2].plot([combo_bytes / 1e3], [combo_loss], "*", color="C3", markersize=12,
             label="largest, 50% pruned + int8")
axes[2].set_xscale("log")
axes[2].xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
axes[2].xaxis.set_major_formatter(FormatStrFormatter("%g"))
axes[2].xaxis.set_minor_formatter(NullFormatter())
axes[2].set_xlabel("model size (kB, log): float32 except the compressed Linear weights")
axes[2].set_ylabel("validation loss (nats / character)")
axes[2].set_title("compress a large model, or train a small one?", fontsize=10)
axes[2].legend(fontsize=8)
axes[2].grid(alpha=0.3, which="both")
ch.savefig(fig, "17_compression.png")
int8_bytes = quant_bytes["per channel"][0]
fits = [i for i in range(len(runs) - 1) if sizes_bytes[i] <= int8_bytes]
for i in fits[-1:]:                # the largest trained model no bigger than the int8 one
    ch.note(f"The largest model in int8 ({fmt_bytes(int8_bytes)}) scores {int8:.3f}; the "
            f"largest trained model that fits in as many bytes (L={runs[i]['size'][0]}, "
            f"d={runs[i]['size'][1]}, {fmt_bytes(sizes_bytes[i])} in float32) scores "
            f"{loss_arr[i]:.3f}.")

# %% [markdown]
# ## What the numbers say
#
# * **A16, the cost**: N, FLOPs and memory follow from the shape of the model. A GPT costs
#   2N FLOPs per token forward and 6N to train (plus 12 L T d for attention), counted here
#   product by product; training holds 16 N bytes of weights, gradients and Adam state plus
#   activations that grow with batch x context x depth. For GPT-2 small at a 300-billion-
#   token budget that is about 3 petaFLOP/s-days, centuries on this CPU.
# * **D8, scaling**: at a fixed budget of tokens, the validation loss falls with the number of
#   parameters along a power law with a small exponent: each doubling of N buys a few per
#   cent. "Larger is more capable" holds at a fixed amount of data, with diminishing returns;
#   at equal compute the smaller of two models was ahead wherever their curves overlapped.
# * **B8, pruning and quantisation**: int8 per-channel quantisation cuts the Linear weights to
#   a quarter for almost no loss; magnitude pruning removes a good share of the weights
#   cheaply and random pruning does far worse; both break down at the extremes (2 bits, 90%
#   sparsity) without retraining.

# %%
ch.finish()
