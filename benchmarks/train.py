"""``initdiag train``'s batching: 60 runs trained together against one run, in one run (medians).

    python benchmarks/train.py [--runs 3] [--iters 15000]

Issue 6's case: circles, 2,10,5,1, relu, sgd, 15,000 iterations; one run (he, 1 trial) against
6 initializers x 10 trials = 60 runs in one batched computation (float32, stacked weights, batched matrix
products, the runs split over one process per core, start-up included). Run one after another, 60 runs
would take 60x one run; the target is a small multiple.
"""

from __future__ import annotations

import argparse
import statistics
import time

from initdiag.train import CLASSIC_INITS, TrainSettings, train


def timed(inits: list[str], trials: int, iters: int) -> float:
    start = time.perf_counter()
    train(inits, TrainSettings(iters=iters, trials=trials))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--iters", type=int, default=15000)
    args = parser.parse_args()
    cases = {
        "1 run (he, 1 trial)": (["he"], 1),
        "60 runs (6 inits x 10 trials)": (CLASSIC_INITS.split(","), 10),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    timed(["he"], 1, 100)  # warm up
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        for name, (inits, trials) in cases.items():
            times[name].append(timed(inits, trials, args.iters))
    medians = {name: statistics.median(values) for name, values in times.items()}
    one = medians["1 run (he, 1 trial)"]
    print(f"train, {args.iters} iterations, median of {args.runs} interleaved runs")
    for name, value in medians.items():
        print(f"  {name:30} {value:6.2f} s   {value / one:5.1f}x one run")
    many = medians["60 runs (6 inits x 10 trials)"]
    print(f"  one after another, 60 runs would take ~{60 * one:.0f} s: ", end="")
    print(f"batching is {60 * one / many:.1f}x faster")


if __name__ == "__main__":
    main()
