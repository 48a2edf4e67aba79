"""Engine speed: one forward + backward of a linear layer and one MLP training step,
tinylm beside PyTorch (when installed) on the same machine. Prints JSON; asserts nothing.

    python benchmarks/engine_step.py [--repeats 10]
"""
import argparse
import json
import platform
import time

import numpy as np

import tinylm as tl
from tinylm import functional as F
from tinylm import nn, optim


def median_ms(step, repeats):
    step()                                   # warm-up: compile, allocate
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return round(1e3 * float(np.median(times)), 2)


def tinylm_cases(x, w, y):
    weight = tl.Tensor(w, requires_grad=True)
    data = tl.Tensor(x)

    def linear():
        weight.grad = None
        F.linear(data, weight).sum().backward()

    model = nn.Sequential(nn.Linear(512, 1024, seed=0), nn.GELU(approximate="tanh"),
                          nn.Linear(1024, 512, seed=1))
    opt = optim.AdamW(model.parameters(), lr=1e-3)

    def mlp_step():
        loss = F.cross_entropy(model(data), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return {"linear fwd+bwd": linear, "MLP AdamW step": mlp_step}


def torch_cases(x, w, y):
    import torch
    weight = torch.tensor(w, requires_grad=True)
    data, target = torch.tensor(x), torch.tensor(y)

    def linear():
        weight.grad = None
        torch.nn.functional.linear(data, weight).sum().backward()

    model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.GELU(approximate="tanh"),
                                torch.nn.Linear(1024, 512))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def mlp_step():
        loss = torch.nn.functional.cross_entropy(model(data).reshape(-1, 512),
                                                 target.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return {"linear fwd+bwd": linear, "MLP AdamW step": mlp_step}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 128, 512)).astype(np.float32)   # (batch, time, features)
    w = rng.standard_normal((512, 512)).astype(np.float32)
    y = rng.integers(0, 512, (32, 128))
    results = {name: {"tinylm_ms": median_ms(step, args.repeats)}
               for name, step in tinylm_cases(x, w, y).items()}
    try:
        import torch
        torch.set_num_threads(max(1, torch.get_num_threads()))
        for name, step in torch_cases(x, w, y).items():
            results[name]["torch_ms"] = median_ms(step, args.repeats)
            results[name]["tinylm_over_torch"] = round(
                results[name]["tinylm_ms"] / results[name]["torch_ms"], 2)
    except ImportError:
        pass
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "shapes": "x (32, 128, 512) float32; MLP 512-1024-512",
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
