"""The PyTorch side of `vs_torch.py`: what a user who doubts initdiag writes, a plain script.

    python benchmarks/vs_torch_script.py SPEC.json [--seeds 1] [--json]

It builds the spec's stack (the kinds `vs_torch.py` uses: conv2d, dense, batchnorm, activation,
residual, global_avgpool, flatten) as ``nn.Module`` rows, He-normal weights and zero biases drawn by
``torch.nn.init``, runs one random batch forward and backward in float32 with the unit loss
L = sum(Y * G) / batch, and takes each row's statistics with hooks: the mean and population
variance of its pre-activation z and output a (forward), of dL/dx (a tensor hook on the row's own
view of its input) and of dL/dW (after backward), the dead share of relu units. It imports neither
initdiag nor numpy. ``--json`` prints the rows' variances (the mean and spread over ``--seeds``) for
the check that both sides compute the same thing.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from torch import nn


class Row(nn.Module):
    """One row of the table: z = f(x), a = act(z), with its statistics taken by hooks."""

    def __init__(self, name: str, f, act: str, stats: dict):
        super().__init__()
        self.name, self.f, self.act, self.stats = name, f, act, stats

    def forward(self, x):
        if x.requires_grad:  # the row's own view: its hook sees this row's dL/dx, not a sum of uses
            x = x.view_as(x)
            x.register_hook(lambda g: self.record("grad_input", g))
        z = self.f(x)
        a = torch.relu(z) if self.act == "relu" else z
        self.record("preact", z)
        self.record("act", a)
        if self.act == "relu":
            units = z.detach().movedim(1, -1).reshape(-1, z.shape[1])
            self.stats[self.name]["dead"] = 1.0 - (units > 0).any(dim=0).float().mean().item()
        return a

    def record(self, key: str, t) -> None:
        var, mean = torch.var_mean(t.detach(), correction=0)
        self.stats[self.name][f"{key}_var"] = var.item()
        self.stats[self.name][f"{key}_mean"] = mean.item()


class Residual(nn.Module):
    """shortcut(x) + branch(x), a projection (1x1 conv or linear, no bias) when shapes differ."""

    def __init__(self, branch, projection):
        super().__init__()
        self.branch, self.projection = branch, projection

    def forward(self, x):
        h = self.branch(x)
        return h + (x if self.projection is None else self.projection(x))


def build(layers, shape, defaults, stats, names) -> tuple[list, tuple]:
    """The rows of *layers* on an input of *shape* (C, H, W) or (D,); returns rows and the out shape."""
    rows = []
    for spec in layers:
        for _ in range(spec.get("repeat", 1)):
            kind = spec.get("kind", "dense")
            names[kind] = names.get(kind, 0) + 1
            name = f"{kind}{names[kind]}"
            act = spec.get("act", defaults.get("act", "linear") if kind in ("conv2d", "dense") else "linear")
            if kind == "residual":
                inner = {k: names.get(k, 0) for k in names}
                branch, out = build(spec["layers"], shape, defaults, stats, inner)
                names.update(inner)
                projection = None
                if out != shape:
                    stride = shape[1] // out[1]
                    projection = nn.Conv2d(shape[0], out[0], 1, stride, bias=False)
                    nn.init.kaiming_normal_(projection.weight, nonlinearity="relu")
                f = Residual(nn.Sequential(*branch), projection)
            elif kind == "conv2d":
                stride = spec.get("stride", 1)
                f = nn.Conv2d(shape[0], spec["channels"], 3, stride, 1)
                nn.init.kaiming_normal_(f.weight, nonlinearity="relu")
                nn.init.zeros_(f.bias)
                out = (spec["channels"], shape[1] // stride, shape[2] // stride)
            elif kind == "dense":
                f = nn.Linear(math.prod(shape), spec["units"])
                nn.init.kaiming_normal_(f.weight, nonlinearity="relu")
                nn.init.zeros_(f.bias)
                out = (spec["units"],)
            elif kind == "batchnorm":
                f = nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])
                out = shape
            elif kind == "global_avgpool":
                f = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
                out = (shape[0],)
            elif kind == "flatten":
                f, out = nn.Flatten(), (math.prod(shape),)
            elif kind == "activation":
                f, act = nn.Identity(), spec.get("act", defaults.get("act", "relu"))
                out = shape
            else:
                raise SystemExit(f"vs_torch_script: no {kind}")
            stats[name] = {}
            rows.append(Row(name, f, act, stats))
            shape = out
    return rows, shape


def weight_grads(model, stats) -> None:
    for row in model.modules():
        if not isinstance(row, Row):
            continue
        weight = getattr(row.f, "weight", None)
        if weight is None and isinstance(row.f, Residual) and row.f.projection is not None:
            weight = row.f.projection.weight
        if weight is not None and weight.grad is not None:
            var, _ = torch.var_mean(weight.grad, correction=0)
            stats[row.name]["grad_weight_var"] = var.item()


def probe(spec: dict, seed: int) -> dict:
    torch.manual_seed(seed)
    stats: dict = {}
    rows, _ = build(spec["layers"], tuple(spec["input_shape"]), spec.get("defaults", {}), stats, {})
    model = nn.Sequential(*rows)
    model.train()
    batch = spec["probe"]["batch"]
    x = torch.randn(batch, *spec["input_shape"], requires_grad=True)
    y = model(x)
    g = torch.randn_like(y)
    loss = (y * g).sum() / batch
    loss.backward()
    weight_grads(model, stats)
    return stats


def mean_sd(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))


def summarize(runs: list[dict]) -> dict:
    """{row: {key: (mean, sd)}} over the runs' {row: {key: value}}."""
    return {row: {key: mean_sd([run[row][key] for run in runs]) for key in runs[0][row]} for row in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    runs = [probe(spec, seed) for seed in range(args.seeds)]
    if args.json:
        print(json.dumps(summarize(runs)))


if __name__ == "__main__":
    main()
