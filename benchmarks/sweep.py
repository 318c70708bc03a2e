"""A sweep on a process pool against the same cells run one after another, in one run (medians).

    python benchmarks/sweep.py [--runs 5] [--jobs N]

The sweep of issue 5: width 256, depths 2,4,8,16,32,64, act relu, init he,xavier,lecun,normal:0.01
(24 cells, batch 256). Serial: ``--jobs 1`` (numpy free to use its BLAS threads). Parallel: one
worker process per core, each with one BLAS thread. The time includes starting the workers.
Target (issue 5): parallel at least 1.6x faster than serial on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from initdiag.analysis.compare import sweep

CELLS = {"width": 256, "depths": [2, 4, 8, 16, 32, 64], "inits": ["he", "xavier", "lecun", "normal:0.01"],
         "acts": ["relu"]}  # fmt: skip


def timed(jobs: int) -> float:
    start = time.perf_counter()
    sweep(**CELLS, jobs=jobs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    cases = {"serial (--jobs 1)": 1, f"parallel (--jobs {args.jobs})": args.jobs}
    for jobs in cases.values():  # warm up: imports, BLAS threads, file caches
        timed(jobs)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        for name, jobs in cases.items():
            times[name].append(timed(jobs))
    medians = {name: statistics.median(values) for name, values in times.items()}
    serial = medians["serial (--jobs 1)"]
    print(f"sweep of 24 cells (width 256, depths 2..64, 4 inits), median of {args.runs} interleaved runs, "
          f"{os.cpu_count()} cores")  # fmt: skip
    for name, value in medians.items():
        print(f"  {name:22} {value:6.2f} s   {serial / value:4.2f}x faster than serial")


if __name__ == "__main__":
    main()
