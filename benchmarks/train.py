"""``initdiag train``'s batching: 60 runs trained together against one run, in one run (medians).

    python benchmarks/train.py [--runs 5] [--iters 15000] [--no-cli]

Issue 6's case: circles, 2,10,5,1, relu, sgd, 15,000 iterations; one run (he, 1 trial) against
6 initializers x 10 trials = 60 runs in one batched computation (float32, stacked weights, batched matrix
products, the runs split over one process per core, start-up included). Run one after another, 60 runs
would take 60x one run; the target is a small multiple. The same pair is then timed as commands
(``initdiag train ...``, interpreter start-up and rendering included).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from initdiag.analysis.train import CLASSIC_INITS, TrainSettings, train

ONE, MANY = "1 run (he, 1 trial)", "60 runs (6 inits x 10 trials)"


def library(inits: list[str], trials: int, iters: int) -> Callable[[], None]:
    return lambda: train(inits, TrainSettings(iters=iters, trials=trials))


def command(args: list[str]) -> Callable[[], None]:
    sibling = Path(sys.executable).with_name("initdiag")  # this environment's, whatever PATH says
    exe = str(sibling) if sibling.exists() else shutil.which("initdiag") or "initdiag"
    return lambda: subprocess.run([exe, "train", *args, "--format", "json"], check=True, capture_output=True)


def medians(cases: dict[str, Callable[[], None]], runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):  # interleaved, so drift hits both alike
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(title: str, result: dict[str, float]) -> None:
    one, many = result[ONE], result[MANY]
    print(title)
    for name, value in result.items():
        print(f"  {name:30} {value:6.2f} s   {value / one:5.1f}x one run")
    print(f"  one after another, 60 runs would take ~{60 * one:.0f} s: ", end="")
    print(f"batching is {60 * one / many:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iters", type=int, default=15000)
    parser.add_argument("--no-cli", action="store_true", help="skip timing the command line")
    args = parser.parse_args()
    library(["he"], 1, 100)()  # warm up
    cases = {ONE: library(["he"], 1, args.iters), MANY: library(CLASSIC_INITS.split(","), 10, args.iters)}
    report(
        f"train (library), {args.iters} iterations, median of {args.runs} interleaved runs",
        medians(cases, args.runs),
    )
    if not args.no_cli:
        iters = ["--iters", str(args.iters)]
        cases = {ONE: command(["--init", "he", *iters]), MANY: command(["--trials", "10", *iters])}
        report(f"initdiag train (command line, start-up included), median of {args.runs} interleaved runs",
               medians(cases, args.runs))  # fmt: skip


if __name__ == "__main__":
    main()
