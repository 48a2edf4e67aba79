"""Sequence layers: forward + backward of LSTM, GRU, MultiheadAttention and a Transformer
encoder layer, tinylm beside PyTorch (when installed) on the same machine, float32.

The LSTM is also timed as a step-by-step composition of tinylm ops (the cell written with
matmul, split, sigmoid, tanh), which is what the fused ``LSTMSequence`` Function with its
hand-written backward through time replaces. Prints JSON; asserts nothing.

    python benchmarks/sequence_layers.py [--repeats 5] [--threads N]
"""
import argparse
import json
import platform
import time

import numpy as np

import tinylm as tl
from tinylm import functional as F
from tinylm import nn

T, B, D, H = 64, 32, 128, 256          # time, batch, input features, hidden units
L, E, HEADS = 128, 256, 8              # attention: sequence length, model width, heads


def median_ms(step, repeats):
    step()                                   # warm-up: compile, allocate
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return round(1e3 * float(np.median(times)), 2)


def fwd_bwd(module, *inputs, pick=lambda out: out[0]):
    def step():
        module.zero_grad()
        pick(module(*inputs)).sum().backward()
    return step


def lstm_by_composition(lstm, x):
    """The same LSTM, one cell step at a time with differentiable tinylm ops."""
    W, U = lstm.weight_ih_l0, lstm.weight_hh_l0
    b = lstm.bias_ih_l0 + lstm.bias_hh_l0
    h = c = tl.Tensor(np.zeros((x.shape[1], H), np.float32))
    outputs = []
    for t in range(x.shape[0]):
        i, f, g, o = F.split(x[t] @ W.T + h @ U.T + b, 4, axis=-1)
        c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
        h = F.sigmoid(o) * F.tanh(c)
        outputs.append(h)
    return F.stack(outputs)


def tinylm_cases(x_seq, x_attn):
    lstm, gru = nn.LSTM(D, H, seed=0), nn.GRU(D, H, seed=0)
    mha = nn.MultiheadAttention(E, HEADS, batch_first=True, seed=0)
    enc = nn.TransformerEncoderLayer(E, HEADS, 4 * E, dropout=0.0, batch_first=True, seed=0)
    xs, xa = tl.Tensor(x_seq), tl.Tensor(x_attn)

    def composed():
        lstm.zero_grad()
        lstm_by_composition(lstm, xs).sum().backward()

    def causal_attention():
        mha.zero_grad()
        mha(xa, xa, xa, need_weights=False, is_causal=True)[0].sum().backward()

    return {"LSTM fwd+bwd": fwd_bwd(lstm, xs),
            "LSTM fwd+bwd, step-by-step ops": composed,
            "GRU fwd+bwd": fwd_bwd(gru, xs),
            "MHA self, causal, fwd+bwd": causal_attention,
            "TransformerEncoderLayer fwd+bwd": fwd_bwd(enc, xa, pick=lambda out: out)}


def torch_cases(x_seq, x_attn):
    import torch
    torch.manual_seed(0)
    lstm, gru = torch.nn.LSTM(D, H), torch.nn.GRU(D, H)
    mha = torch.nn.MultiheadAttention(E, HEADS, batch_first=True)
    enc = torch.nn.TransformerEncoderLayer(E, HEADS, 4 * E, dropout=0.0, batch_first=True)
    xs, xa = torch.from_numpy(x_seq), torch.from_numpy(x_attn)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(L)

    def run(module, call):
        def step():
            module.zero_grad()
            call().sum().backward()
        return step

    return {"LSTM fwd+bwd": run(lstm, lambda: lstm(xs)[0]),
            "GRU fwd+bwd": run(gru, lambda: gru(xs)[0]),
            "MHA self, causal, fwd+bwd": run(mha, lambda: mha(
                xa, xa, xa, need_weights=False, attn_mask=causal, is_causal=True)[0]),
            "TransformerEncoderLayer fwd+bwd": run(enc, lambda: enc(xa))}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x_seq = rng.standard_normal((T, B, D)).astype(np.float32)
    x_attn = rng.standard_normal((B, L, E)).astype(np.float32)
    results = {name: {"tinylm_ms": median_ms(step, args.repeats)}
               for name, step in tinylm_cases(x_seq, x_attn).items()}
    try:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
        for name, step in torch_cases(x_seq, x_attn).items():
            results[name]["torch_ms"] = median_ms(step, args.repeats)
            results[name]["tinylm_over_torch"] = round(
                results[name]["tinylm_ms"] / results[name]["torch_ms"], 2)
    except ImportError:
        pass
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "shapes": f"RNNs: x (T={T}, B={B}, D={D}), H={H}; attention: "
                                f"x (B={B}, L={L}, E={E}), {HEADS} heads; float32",
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
