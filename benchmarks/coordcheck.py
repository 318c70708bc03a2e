"""``initdiag coordcheck`` on the worker pool against the same runs one after another, and against a
PyTorch script doing the same training steps, in one run (medians).

    python benchmarks/coordcheck.py [--runs 3] [--no-torch]

Issue 15's case: --layers 64,W,W,W,10 --widths 64..2048 --param sp,mup --optimizer adam --lr 1e-3
--steps 5 --seeds 3, batch 64 (2 parametrizations x 6 widths x 3 seeds = 36 runs, float32).

- coordcheck: the library call, as the command makes it (runs batched per width, one task per seed at
  the large widths, largest first, on one worker process per core; workers' start included).
- one after another: the same 36 runs, each alone (one run per task), in this process, numpy free to
  use its BLAS threads: what a loop over the configurations does.
- PyTorch: a loop over the 36 configurations in torch (its default threads, and again with one
  thread, which can be faster at these sizes on a busy machine), each an nn.Sequential
  with muP's per-layer learning rates as parameter groups, torch.optim.Adam, forward hooks recording
  mean |x| of every layer's output at every step (as mup's get_coord_data does), the same batch.

Targets (issue 15): under 20 s on 2 cores; at least 1.6x faster than one after another; within 1.5x
of PyTorch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

import numpy as np

from initdiag.analysis import coordtrain
from initdiag.analysis.coordcheck import CoordSettings, _layout, coordcheck, parse_stack
from initdiag.core.init_parser import get_initializer
from initdiag.core.parametrizations import get_parametrization

SETTINGS = CoordSettings()  # the defaults are issue 15's command
KEYS = ("weight_scale", "bias_scale", "weight_lr", "bias_lr", "weight_eps", "bias_eps")


def pooled() -> None:
    coordcheck(SETTINGS)


def one_after_another() -> None:
    s = SETTINGS
    stack = parse_stack(s.layers)
    params = [get_parametrization(p) for p in s.params]
    init, bias = get_initializer(s.init), get_initializer(s.bias_init)
    X, Y, _ = coordtrain.make_data("random", s.batch, 64, 10, "xent", s.seed, None)
    options = {"steps": s.steps, "dtype": s.dtype, "optimizer": s.optimizer, "loss": s.loss, "seed": s.seed}
    for n in s.widths:
        layout, runs = _layout(stack, n, min(s.widths), params, init, bias, s)
        for r in range(len(runs)):
            one = replace(layout, seeds=[layout.seeds[r]], **{k: getattr(layout, k)[[r]] for k in KEYS})
            coordtrain.run_task(one, init, bias, (X, Y), options)


def torch_loop() -> None:
    import torch
    from torch import nn

    s = SETTINGS
    X = torch.randn(s.batch, 64)
    labels = torch.randint(0, 10, (s.batch,))
    base = min(s.widths)
    for param in s.params:
        for n in s.widths:
            m = n / base
            for seed in range(s.seeds):
                torch.manual_seed(seed)
                net = nn.Sequential(nn.Linear(64, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(), nn.Linear(n, n),
                                    nn.ReLU(), nn.Linear(n, 10))  # fmt: skip
                linears = [net[0], net[2], net[4], net[6]]
                for layer in linears:
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    nn.init.zeros_(layer.bias)
                factors = [1, 1 / m, 1 / m, 1 / m] if param == "mup" else [1, 1, 1, 1]
                if param == "mup":
                    nn.init.zeros_(linears[-1].weight)
                groups = [
                    {"params": [lin.weight], "lr": s.lr * f} for lin, f in zip(linears, factors, strict=True)
                ]
                groups.append({"params": [lin.bias for lin in linears], "lr": s.lr})
                optimizer = torch.optim.Adam(groups)
                records = []

                def record(module, inputs, output, out=records):
                    out.append(output.abs().mean().item())

                hooks = [net[k].register_forward_hook(record) for k in (1, 3, 5, 6)]
                for t in range(s.steps + 1):
                    logits = net(X)
                    if t == s.steps:
                        break
                    loss = nn.functional.cross_entropy(logits, labels)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                for h in hooks:
                    h.remove()


def torch_loop_one_thread() -> None:
    """The same loop with torch.set_num_threads(1): at these sizes, on a busy machine, one thread
    can beat torch's default two (its threads wait for each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch_loop()
    finally:
        torch.set_num_threads(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    cases = {"coordcheck (pool)": pooled, "one after another": one_after_another}
    if not args.no_torch:
        cases["PyTorch loop"] = torch_loop
        cases["PyTorch, 1 thread"] = torch_loop_one_thread
    for fn in cases.values():  # warm up: imports, BLAS threads, file caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):  # interleaved, so drift hits all alike
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ours = medians["coordcheck (pool)"]
    print(f"coordcheck of issue 15 (2 params x 6 widths to 2048 x 3 seeds x 5 steps, batch 64), median of "
          f"{args.runs} interleaved runs, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for name, value in medians.items():
        print(
            f"  {name:20} {value:6.2f} s   {value / ours:4.2f}x coordcheck's time   (all: "
            + ", ".join(f"{v:.2f}" for v in times[name])
            + ")"
        )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
