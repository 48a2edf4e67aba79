"""PyTorch twins of tinylm models and of its training loop, for side-by-side benchmarks,
and what those benchmarks share (the optimiser groups, the printed table).

Not a benchmark itself (``make bench`` skips files starting with ``_``):
``bench_shakespeare.py`` and ``bench_lstm_lm.py`` import it. Each twin is built from a
tinylm model's ``state_dict()`` (the parameter names are the same by design: nanoGPT's for
``GPT``, PyTorch's ``word_language_model`` example's for ``RNNLM``), so both frameworks start
from identical weights. ``train_like_tinylm`` repeats ``tinylm.train.Trainer``'s loop step
for step: the same learning-rate schedule (``TrainConfig.lr_at``), the same batches (one NumPy
generator seeded with the run's seed), gradient clipping, and evaluation on the same seeded
batches at the same iterations. What differs is only the framework doing the arithmetic.
"""
import argparse
import math
import time

import numpy as np


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_gpt(state, config, sdpa=True):
    """nanoGPT's model (pre-LN blocks, causal self-attention, GELU MLP, tied head) holding
    ``state`` (a tinylm ``GPT.state_dict()``); ``config`` a ``GPTConfig``. ``sdpa=False``
    writes the attention out (scores, mask, softmax, weighted sum) as nanoGPT's fallback."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    E, H = config.n_embd, config.n_head

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(E, 3 * E, bias=config.bias)
            self.c_proj = nn.Linear(E, E, bias=config.bias)
            self.register_buffer("causal", torch.tril(torch.ones(config.block_size,
                                                                 config.block_size)),
                                 persistent=False)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.c_attn(x).split(E, dim=2)
            q, k, v = (t.view(B, T, H, E // H).transpose(1, 2) for t in (q, k, v))
            if sdpa:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
                att = att.masked_fill(self.causal[:T, :T] == 0, float("-inf"))
                y = F.softmax(att, dim=-1) @ v
            return self.c_proj(y.transpose(1, 2).reshape(B, T, E))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(E, 4 * E, bias=config.bias)
            self.c_proj = nn.Linear(4 * E, E, bias=config.bias)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = nn.LayerNorm(E, bias=config.bias), SelfAttention()
            self.ln_2, self.mlp = nn.LayerNorm(E, bias=config.bias), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, E), wpe=nn.Embedding(config.block_size, E),
                h=nn.ModuleList([Block() for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(E, bias=config.bias)))
            self.lm_head = nn.Linear(E, config.vocab_size, bias=False)
            self.lm_head.weight = self.transformer.wte.weight

        def forward(self, idx, targets):
            t = self.transformer
            x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1]))
            for block in t.h:
                x = block(x)
            logits = self.lm_head(t.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1),
                                   ignore_index=-1)

    model = GPT()
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return model


def torch_rnnlm(state, config):
    """PyTorch's ``word_language_model`` (embedding -> LSTM/GRU/RNN -> linear decoder) holding
    ``state`` (a tinylm ``RNNLM.state_dict()``); ``config`` the RNNLM's keyword arguments."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    cells = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}
    extra = {"rnn_relu": {"nonlinearity": "relu"}}.get(config["cell"], {})

    class RNNLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(config["vocab_size"], config["embed_size"])
            self.rnn = cells[config["cell"]](config["embed_size"], config["hidden_size"],
                                             config["num_layers"], batch_first=True, **extra)
            self.decoder = nn.Linear(config["hidden_size"], config["vocab_size"])
            if config.get("tie_weights"):
                self.decoder.weight = self.encoder.weight

        def forward(self, idx, targets):
            out, _ = self.rnn(self.encoder(idx))
            logits = self.decoder(out)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=-1)

    model = RNNLM()
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return model


def tinylm_adamw(model, lr, betas, weight_decay):
    """nanoGPT's groups: decay on matrices (ndim >= 2) only, as tinylm's CLI trains."""
    from tinylm.optim import AdamW
    params = list(model.parameters())
    return AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                 lr=lr, betas=betas)


def torch_adamw(model, lr, betas, weight_decay):
    """The same groups for a PyTorch twin."""
    import torch
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2],
                               "weight_decay": weight_decay},
                              {"params": [p for p in params if p.dim() < 2],
                               "weight_decay": 0.0}], lr=lr, betas=betas, foreach=False)


def torch_training_step(model, x, y, device="cpu"):
    """A closure running one AdamW step of a twin on the batch (x, y), clipped at 1.0, on
    ``device`` ("cpu" or "cuda")."""
    import torch
    model.to(device)
    opt = torch_adamw(model, 1e-3, (0.9, 0.99), 0.1)
    tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def step():
        loss = model(tx, ty)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def median_ms_alternating(steps, repeats, sync=None):
    """``{name: median ms}`` of the closures in ``steps``, one warm-up call each, then
    ``repeats`` rounds calling each once in turn (a busy moment hits them all alike).
    ``sync`` (on a GPU) waits for the queued work before and after each timed call."""
    import statistics
    sync = sync or (lambda: None)
    for step in steps.values():
        step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def device_or_skip(device, benchmark):
    """True when ``device`` can run; for "cuda" without CuPy or a GPU, prints
    "skipped: <reason>" and the benchmark's JSON line saying so, and returns False (the
    benchmark then exits 0: a missing GPU is not a failure)."""
    import json
    if device == "cpu":
        return True
    from tinylm import cuda
    if cuda.is_available():
        return True
    print(f"skipped: --device {device}: {cuda.reason()}")
    print(json.dumps({"benchmark": benchmark, "device": device, "skipped": cuda.reason()}))
    return False


def gpu_sync():
    """Wait for both frameworks' queued GPU work (CuPy's stream and PyTorch's)."""
    from tinylm import cuda
    cuda.synchronize()
    torch = torch_or_none()
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def gpu_name():
    """The GPU's name as CuPy reports it."""
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def train_like_tinylm(model, optimizer, get_batch, config):
    """``tinylm.train.Trainer.fit`` in PyTorch: returns ``{"eval": rows, "train": losses,
    "train_seconds": s, "best_val_loss": v}`` with the Trainer's row format."""
    import torch
    data_rng = np.random.default_rng(config.seed)
    history = {"train": [], "eval": []}
    seconds = 0.0

    def evaluate(it):
        model.eval()
        rng = np.random.default_rng([config.seed, it, 1])
        out = {}
        with torch.no_grad():
            for split in ("train", "val"):
                out[split] = float(np.mean([
                    model(*map(torch.from_numpy, get_batch(split, rng))).item()
                    for _ in range(config.eval_iters)]))
        model.train()
        history["eval"].append({"iter": it, "train_loss": out["train"], "val_loss": out["val"]})

    model.train()
    for it in range(config.max_iters):
        if it % config.eval_interval == 0:
            evaluate(it)
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(it)
        x, y = get_batch("train", data_rng)
        loss = model(torch.from_numpy(x), torch.from_numpy(y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        history["train"].append(loss.item())
        seconds += time.perf_counter() - start
    evaluate(config.max_iters)
    history["train_seconds"] = seconds
    history["best_val_loss"] = min(row["val_loss"] for row in history["eval"])
    return history


def torch_window_loss(model, ids, block_size, batch_size):
    """``tinylm.train.lm_window_loss`` for a twin: the mean loss over consecutive windows."""
    import torch
    from tinylm.text import lm_blocks
    x, y = lm_blocks(ids, block_size)
    total = 0.0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            total += model(torch.from_numpy(xb), torch.from_numpy(yb)).item() * len(xb)
    return total / len(x)


def summary(history):
    """The figures the benchmarks print for one run of either framework."""
    evals = history["eval"]
    return {"best_val_loss": round(min(r["val_loss"] for r in evals), 4),
            "final_val_loss": round(evals[-1]["val_loss"], 4),
            "final_train_loss": round(evals[-1]["train_loss"], 4),
            "train_seconds": round(history["train_seconds"], 1),
            "ms_per_iter": round(1e3 * history["train_seconds"] / max(len(history["train"]), 1),
                                 1),
            "val_curve": [round(r["val_loss"], 4) for r in evals]}


def run_side_by_side(model, make_twin, get_batch, train_config, adamw, val_ids, block_size,
                     use_torch=True):
    """Train ``model`` with tinylm's ``Trainer``, then its PyTorch twin
    (``make_twin(initial_state)``) from the same initial weights with
    ``train_like_tinylm``; ``adamw = (lr, betas, weight_decay)``. Each is then scored on every
    window of ``val_ids`` (``lm_window_loss``). Returns ``{"tinylm": ..., "pytorch": ...}``
    (``summary`` rows, plus ``val_loss_all_windows`` and wall time)."""
    from tinylm.train import Trainer, lm_window_loss
    initial = {k: v.copy() for k, v in model.state_dict().items()}
    trainer = Trainer(model, tinylm_adamw(model, *adamw), get_batch, train_config)
    wall = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - wall
    mine = summary({**trainer.history, "train_seconds": trainer.train_seconds})
    model.eval()
    mine |= {"wall_seconds": round(wall, 1), "val_loss_all_windows": round(
        lm_window_loss(model, val_ids, block_size, 100)[0], 4)}
    results = {"tinylm": mine}
    torch = torch_or_none() if use_torch else None
    if torch is None:
        results["pytorch"] = {"skipped": "PyTorch is not installed" if use_torch
                              else "--no-torch"}
        return results
    twin = make_twin(initial)
    wall = time.perf_counter()
    history = train_like_tinylm(twin, torch_adamw(twin, *adamw), get_batch, train_config)
    wall = time.perf_counter() - wall
    results["pytorch"] = summary(history) | {
        "wall_seconds": round(wall, 1), "version": torch.__version__,
        "val_loss_all_windows": round(torch_window_loss(twin, val_ids, block_size, 100), 4)}
    return results


def print_table(results, extra_column, extra_title):
    """One row per framework: best/final val loss, ``extra_column`` of each result, time."""
    print(f"{'':10} {'best val':>9} {'final val':>10} {extra_title:>12} {'train s':>8} "
          f"{'ms/iter':>8}")
    for name, r in results.items():
        if "skipped" in r:
            print(f"{name:10} skipped: {r['skipped']}")
            continue
        print(f"{name:10} {r['best_val_loss']:9.4f} {r['final_val_loss']:10.4f} "
              f"{r[extra_column]:12.4f} {r['train_seconds']:8.1f} {r['ms_per_iter']:8.1f}")


def benchmark_parser(doc, repeats):
    """The options the step benchmarks share: ``--repeats``, ``--threads`` (both frameworks
    pinned to it, default 2) and ``--device cpu|cuda``; a script adds its own to it."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    return p


def parse_and_pin(parser, argv):
    """Parse the command line and pin both frameworks to ``--threads``."""
    args = parser.parse_args(argv)
    set_threads(args.threads)
    return args


def set_threads(n):
    """Pin both frameworks to ``n`` threads (BLAS for NumPy, intra-op for PyTorch)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(n)
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(n)
