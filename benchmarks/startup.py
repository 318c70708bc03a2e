"""Start-up time of the CLI against the import floor, measured in one run (medians).

    python benchmarks/startup.py [--runs 31]

Floor: ``python -c "import numpy, typer, rich.table"``, the imports no numpy+typer+rich CLI can
avoid. Targets (issue 2): the main probe at most 1.5x the floor, ``initdiag --help`` at most 1.3x.
Runs are interleaved (floor, case, floor, case, ...) so that drift in the machine's speed affects
both sides of each ratio alike; the ratio reported is the median of the per-pair ratios.
Measure an installed copy (``pip install .``), not an editable one: its import finder adds ~10 ms.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    args = parser.parse_args()
    # the console script of this interpreter's environment, whatever PATH says: the floor runs here too
    sibling = Path(sys.executable).with_name("initdiag")
    exe = str(sibling) if sibling.exists() else shutil.which("initdiag") or "initdiag"
    floor_cmd = [sys.executable, "-c", "import numpy, typer, rich.table"]
    cases = {
        "initdiag probe --layers 784,256,256,10 --act relu --init he": (
            [exe, "probe", "--layers", "784,256,256,10", "--act", "relu", "--init", "he"],
            1.5,
        ),
        "initdiag --help": ([exe, "--help"], 1.3),
        "initdiag probe -h": ([exe, "probe", "-h"], 1.3),
    }
    seconds(floor_cmd)  # warm the file cache
    print(f"python {sys.version.split()[0]}, {args.runs} interleaved pairs per case")
    for name, (cmd, target) in cases.items():
        seconds(cmd)
        floors, times = [], []
        for _ in range(args.runs):
            floors.append(seconds(floor_cmd))
            times.append(seconds(cmd))
        ratio = statistics.median(t / f for t, f in zip(times, floors, strict=True))
        mark = "ok" if ratio <= target else "OVER"
        print(
            f"{name:60s} {statistics.median(times) * 1000:5.0f} ms vs floor "
            f"{statistics.median(floors) * 1000:4.0f} ms: {ratio:4.2f}x (target <= {target}x: {mark})"
        )


if __name__ == "__main__":
    main()
