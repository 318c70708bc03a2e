"""The PyTorch side of `vs_torch.py`'s train case: ``initdiag train --trials 10`` as a plain script.

    python benchmarks/vs_torch_train.py [--iters 15000] [--trials 10] [--seed 0] [--json]

What ``initdiag train --trials 10`` does with its defaults, written as a user would: the circles set
(scikit-learn's ``make_circles``, 300 training and 100 test points, noise 0.05, one set per trial), a
2,10,5,1 relu MLP with a sigmoid output, the six classic initializers (zeros, N(0, 10^2),
N(0, 0.1^2), N(0, 0.333^2), He normal and Xavier uniform from ``torch.nn.init``, zero biases) times
``--trials``: 60 runs trained at once, every layer's weights stacked along a leading run axis
(``torch.baddbmm``), full-batch ``torch.optim.SGD`` at lr 0.01 on the sum over runs of each run's
mean binary cross-entropy (so each run's gradient is its own), float32, torch's default threads.
It records every run's loss at 101 points along the way and, at the end, its train and test accuracy,
and prints each initializer's mean and spread. It imports neither initdiag nor numpy. ``--json``
prints them as numbers for the check that both sides learn the same thing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math

import torch
from torch import nn
from torch.nn import functional
from vs_torch_script import mean_sd  # this folder: the script's own

INITS = ("zeros", "normal:10", "normal:0.1", "normal:0.333", "he", "xavier")
WIDTHS = (2, 10, 5, 1)


def circles(n: int, noise: float, factor: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's make_circles: (2, n) points, (1, n) labels."""
    n_out = n // 2
    t_out = torch.arange(n_out) * (2 * math.pi / n_out)
    t_in = torch.arange(n - n_out) * (2 * math.pi / (n - n_out))
    outer, inner = torch.stack([t_out.cos(), t_out.sin()]), factor * torch.stack([t_in.cos(), t_in.sin()])
    x = torch.cat([outer, inner], 1)
    y = torch.cat([torch.zeros(n_out), torch.ones(n - n_out)])
    order = torch.randperm(n)
    return x[:, order] + noise * torch.randn(2, n), y[order][None, :]


def weight(init: str, fan_in: int, fan_out: int) -> torch.Tensor:
    w = torch.empty(fan_out, fan_in)
    if init == "zeros":
        return nn.init.zeros_(w)
    if init.startswith("normal:"):
        return nn.init.normal_(w, 0.0, float(init.split(":")[1]))
    if init == "he":
        return nn.init.kaiming_normal_(w, nonlinearity="relu")
    return nn.init.xavier_uniform_(w)


def forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = x
    for i in range(0, len(params), 2):
        h = torch.baddbmm(params[i + 1], params[i], h)
        if i + 2 < len(params):
            h = torch.relu(h)
    return h


def train(args) -> dict:
    torch.manual_seed(args.seed)
    data = [(circles(args.n_train, args.noise), circles(args.n_test, args.noise)) for _ in range(args.trials)]
    runs = [(init, t) for init in INITS for t in range(args.trials)]
    x = torch.stack([data[t][0][0] for _, t in runs])  # (runs, 2, n)
    y = torch.stack([data[t][0][1] for _, t in runs])
    params = []
    for fan_in, fan_out in itertools.pairwise(WIDTHS):
        params.append(torch.stack([weight(init, fan_in, fan_out) for init, _ in runs]).requires_grad_())
        params.append(torch.zeros(len(runs), fan_out, 1, requires_grad=True))
    optimizer = torch.optim.SGD(params, lr=args.lr)
    checkpoints = {k * args.iters // 100 for k in range(101)}
    curve = []
    for step in range(args.iters + 1):
        logits = forward(params, x)
        losses = functional.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=(1, 2))
        if step in checkpoints:
            curve.append(losses.detach().tolist())
        if step == args.iters:
            break
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step()
    with torch.no_grad():
        train_acc = ((logits > 0).float() == y).float().mean(dim=(1, 2))
        x_test = torch.stack([data[t][1][0] for _, t in runs])
        y_test = torch.stack([data[t][1][1] for _, t in runs])
        test_acc = ((forward(params, x_test) > 0).float() == y_test).float().mean(dim=(1, 2))
    out = {}
    for i, init in enumerate(INITS):
        own = slice(i * args.trials, (i + 1) * args.trials)
        out[init] = {
            "initial_loss": curve[0][own],
            "final_loss": curve[-1][own],
            "train_accuracy": train_acc[own].tolist(),
            "test_accuracy": test_acc[own].tolist(),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, default in (("iters", 15000), ("trials", 10), ("seed", 0), ("n_train", 300), ("n_test", 100)):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=default)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = {init: {key: mean_sd(v) for key, v in result.items()} for init, result in train(args).items()}
    if args.json:
        print(json.dumps(summary))
    else:
        for init, row in summary.items():
            print(f"{init:14}", "  ".join(f"{key} {m:.4g} +- {s:.2g}" for key, (m, s) in row.items()))


if __name__ == "__main__":
    main()
