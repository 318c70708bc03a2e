"""A conv stack's probe time against its matrix-product floor, measured in one run (medians).

    python benchmarks/conv.py [--runs 5] [--depth 10] [--channels 64] [--batch 64] [--size 32]

The stack: ``depth`` conv2d layers of ``channels`` 3x3 filters, padding same, relu, He normal, on a
batch of (batch, 3, size, size), then global average pooling and a dense layer of 10 (issue 4's
example: 10 layers of 64 channels, batch 64, 3x32x32).

Floor: the three matrix products every conv layer needs as im2col GEMMs, on operands that already
exist (float32): forward (N*H*W, C*9) @ (C*9, O), and backward dW = dz^T cols and dcols = dz W. No
padding, no window gathering (im2col), no col2im, no activations, no weight sampling, no statistics:
the part no implementation can skip. initdiag does all of those. Target: "a few seconds" on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import initdiag
from initdiag.network.kinds import LayerSpec
from initdiag.network.settings import ProbeSettings
from initdiag.network.stack import StackSpec


def stack(depth: int, channels: int, size: int) -> StackSpec:
    convs = tuple(LayerSpec(kind="conv2d", channels=channels) for _ in range(depth))
    layers = (*convs, LayerSpec(kind="global_avgpool"), LayerSpec(units=10))
    return StackSpec((3, size, size), layers, init="he_normal").resolve()


def make_floor(depth: int, channels: int, batch: int, size: int):
    rng = np.random.default_rng(0)
    rows = batch * size * size
    operands = []
    for i in range(depth):
        fan_in = (3 if i == 0 else channels) * 9
        cols = rng.standard_normal((rows, fan_in), dtype=np.float32)
        W = rng.standard_normal((fan_in, channels), dtype=np.float32)
        dz = rng.standard_normal((rows, channels), dtype=np.float32)
        operands.append((cols, W, dz))

    def floor() -> None:
        for cols, W, _dz in operands:
            _ = cols @ W
        for cols, W, dz in reversed(operands):
            _ = dz.T @ cols
            _ = dz @ W.T

    return floor


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    spec = stack(args.depth, args.channels, args.size)
    settings = ProbeSettings(batch=args.batch)
    floor = make_floor(args.depth, args.channels, args.batch, args.size)
    cases = {"floor (3 GEMMs per layer)": floor, "initdiag probe": lambda: initdiag.run_probe(spec, settings)}
    for fn in cases.values():  # warm up: BLAS threads, caches, lazy imports
        fn()
    times = {name: [] for name in cases}
    for _ in range(args.runs):  # interleaved, so drift hits every case alike
        for name, fn in cases.items():
            times[name].append(timed(fn))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["floor (3 GEMMs per layer)"]
    shape = f"3x{args.size}x{args.size}"
    print(f"{args.depth} conv layers x {args.channels} channels, batch {args.batch} x {shape}, ", end="")
    print(f"median of {args.runs} interleaved runs")
    for name, value in medians.items():
        print(f"  {name:28} {value:7.3f} s   {value / base:5.2f}x the floor")


if __name__ == "__main__":
    main()
