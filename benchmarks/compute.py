"""Compute time of a large probe against the bare-numpy floor, measured in one run (medians).

    python benchmarks/compute.py [--runs 5] [--layers 1024,2048x16,10] [--batch 512]

Floor: what any probe of this stack must do, in plain numpy: sample every weight matrix (float32
He-normal, one Generator, one thread, as the obvious script would) and do the same matrix products,
forward (x W) and backward (x^T dz and dz W^T). initdiag additionally applies the activations,
samples in float64 and casts (so float32 and float64 probe the same weights), and computes every
statistic in float64; it samples on a thread pool. Target (issue 2): at most 1.5x the floor.
The second floor samples on the same thread pool as initdiag, to show what the statistics cost.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import initdiag
from initdiag.network.shorthand import parse_widths


def floor(widths: list[int], batch: int, threads: int) -> None:
    pairs = list(itertools.pairwise(widths))

    def sample(i: int) -> np.ndarray:
        rng = np.random.default_rng(i)
        W = rng.standard_normal(pairs[i], dtype=np.float32)
        W *= math.sqrt(2.0 / pairs[i][0])
        return W

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            Ws = list(pool.map(sample, range(len(pairs))))
    else:
        Ws = [sample(i) for i in range(len(pairs))]
    x = np.random.default_rng(99).standard_normal((batch, widths[0]), dtype=np.float32)
    xs = []
    for W in Ws:
        xs.append(x)
        x = x @ W
    dz = np.ones_like(x)
    for W, x in zip(reversed(Ws), reversed(xs), strict=True):
        _ = x.T @ dz
        dz = dz @ W.T


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layers", default="1024,2048x16,10")
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    widths = parse_widths(args.layers)
    threads = os.cpu_count() or 1

    def ours():
        initdiag.probe(args.layers, act="relu", init="he_normal", batch=args.batch)

    cases = {
        "floor (numpy, 1 sampling thread)": lambda: floor(widths, args.batch, 1),
        f"floor (numpy, {threads} sampling threads)": lambda: floor(widths, args.batch, threads),
        "initdiag probe": ours,
    }
    for fn in cases.values():  # warm up: BLAS threads, caches, lazy imports
        fn()
    times = {name: [] for name in cases}
    for _ in range(args.runs):  # interleaved, so drift hits every case alike
        for name, fn in cases.items():
            times[name].append(timed(fn))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    ours_t = medians["initdiag probe"]
    print(f"--layers {args.layers} --batch {args.batch}: median of {args.runs} runs, {threads} cores")
    for name, t in medians.items():
        print(f"  {name:38s} {t * 1000:7.0f} ms   initdiag / this = {ours_t / t:4.2f}x")
    ratio = ours_t / medians["floor (numpy, 1 sampling thread)"]
    print(f"target: initdiag at most 1.5x the floor: {ratio:.2f}x ({'ok' if ratio <= 1.5 else 'OVER'})")


if __name__ == "__main__":
    main()
