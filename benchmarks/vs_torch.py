"""initdiag against a plain PyTorch script doing the same work, as whole processes side by side.

    python benchmarks/vs_torch.py [--pairs 5] [--cases dense,conv,resnet] [--check-trials 4]

For each case, the same stack (a spec file both sides read) probed by ``initdiag probe --config
SPEC --format json`` and by `vs_torch_script.py` (PyTorch, He-normal weights from ``torch.nn.init``,
the same batch, float32, torch's default threads, i.e. one per core as numpy's BLAS; hooks take the
statistics). Before timing, both sides run ``--check-trials`` seeds and every row's variances (z, a,
dL/dx, dL/dW) must agree within sampling error: |difference of the means| at most 5 standard errors
of it (from the spread over the seeds) plus 0.5% (float32, batch-norm eps). Then ``--pairs`` pairs of
whole processes, interleaved (which side goes first alternates), each timed from start to exit with
its peak resident memory (``ru_maxrss`` of the child, from ``os.wait4``); the ratios are medians of
the pairs' ratios (initdiag / torch: below 1 is initdiag ahead). Needs the torch extra; it is a
benchmark, not a test. Run it on an idle machine (``cat /proc/loadavg`` well below 1).

Cases (issue 17):
  dense   784,4096x8,10, relu, He, batch 1024
  conv    10 conv2d of 64 3x3 filters, relu, He, batch 64 x 3x32x32, global average pool, dense 10
  resnet  a CIFAR ResNet stem and stages: conv 64 + BN + relu, three post-activation residual blocks
          (conv-BN-relu-conv-BN, add, relu) at 64 channels, one at 128 with stride 2 and a 1x1
          projection, global average pool, dense 10; batch 64 x 3x32x32
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = ("preact_var", "act_var", "grad_input_var", "grad_weight_var")


def _block(channels: int, stride: int = 1) -> list[dict]:
    branch = [
        {"kind": "conv2d", "channels": channels, "stride": stride, "act": "linear"},
        {"kind": "batchnorm", "act": "relu"},
        {"kind": "conv2d", "channels": channels, "act": "linear"},
        {"kind": "batchnorm", "act": "linear"},
    ]
    return [{"kind": "residual", "layers": branch}, {"kind": "activation", "act": "relu"}]


CASES = {
    "dense": {
        "input_shape": [784],
        "layers": [{"units": 4096, "repeat": 8}, {"units": 10, "act": "linear"}],
        "probe": {"batch": 1024},
    },
    "conv": {
        "input_shape": [3, 32, 32],
        "layers": [
            {"kind": "conv2d", "channels": 64, "repeat": 10},
            {"kind": "global_avgpool"},
            {"units": 10, "act": "linear"},
        ],
        "probe": {"batch": 64},
    },
    "resnet": {
        "input_shape": [3, 32, 32],
        "layers": [
            {"kind": "conv2d", "channels": 64, "act": "linear"},
            {"kind": "batchnorm", "act": "relu"},
            *_block(64),
            *_block(64),
            *_block(64),
            *_block(128, 2),
            {"kind": "global_avgpool"},
            {"units": 10, "act": "linear"},
        ],
        "probe": {"batch": 64},
    },
}


def write_spec(name: str, folder: Path) -> Path:
    spec = {"name": name, "defaults": {"act": "relu", "init": "he_normal"}, **CASES[name]}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def initdiag_cmd(spec: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "initdiag", "probe", "--config", str(spec), "--format", "json", *extra]


def torch_cmd(spec: Path, *extra: str) -> list[str]:
    return [sys.executable, str(HERE / "vs_torch_script.py"), str(spec), *extra]


def check(spec: Path, trials: int) -> tuple[int, float]:
    """Both sides' row variances agree within sampling error: (rows compared, worst z-score)."""
    out = subprocess.run(initdiag_cmd(spec, "--trials", str(trials)), capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise SystemExit(f"initdiag failed on {spec.name}: {out.stderr.strip()}")
    ours = json.loads(out.stdout)["layers"]
    out = subprocess.run(torch_cmd(spec, "--seeds", str(trials), "--json"), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the torch script failed on {spec.name}: {out.stderr.strip()}")
    theirs = list(json.loads(out.stdout).values())
    if len(ours) != len(theirs):
        raise SystemExit(f"{spec.name}: initdiag has {len(ours)} rows, the torch script {len(theirs)}")
    worst, compared = 0.0, 0
    for row, other in zip(ours, theirs, strict=True):
        for key in KEYS:
            if row.get(key) is None or key not in other:
                continue
            mean, sd = row[key], row.get(f"{key}_sd") or 0.0
            tmean, tsd = other[key]
            error = math.sqrt((sd**2 + tsd**2) / trials)
            z = abs(mean - tmean) / (error + 0.005 * abs(tmean) + 1e-30)
            compared += 1
            worst = max(worst, z)
            if z > 5:
                raise SystemExit(
                    f"{spec.name}: {row['name']} {key}: initdiag {mean:.4g} +- {sd:.2g}, "
                    f"torch {tmean:.4g} +- {tsd:.2g} ({z:.1f} standard errors apart)"
                )
    return compared, worst


def timed(cmd: list[str]) -> tuple[float, float]:
    """(seconds from start to exit, peak resident MiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode().strip()}")
    proc.returncode = 0  # reaped by wait4
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--check-trials", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; {args.pairs} pairs")
    print("| case | initdiag | PyTorch script | wall time | peak memory | statistics |")
    print("|---|---|---|---|---|---|")
    for name in args.cases.split(","):
        spec = write_spec(name, folder)
        compared, worst = check(spec, args.check_trials)
        sides = {"initdiag": initdiag_cmd(spec), "torch": torch_cmd(spec)}
        for cmd in sides.values():  # warm the file cache
            timed(cmd)
        runs: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for pair in range(args.pairs):
            order = list(sides) if pair % 2 == 0 else list(reversed(sides))
            for side in order:
                runs[side].append(timed(sides[side]))
        wall = statistics.median(a[0] / b[0] for a, b in zip(runs["initdiag"], runs["torch"], strict=True))
        rss = statistics.median(a[1] / b[1] for a, b in zip(runs["initdiag"], runs["torch"], strict=True))
        ours = [statistics.median(r[k] for r in runs["initdiag"]) for k in (0, 1)]
        theirs = [statistics.median(r[k] for r in runs["torch"]) for k in (0, 1)]
        print(
            f"| {name} | {ours[0]:.2f} s, {ours[1]:.0f} MiB | {theirs[0]:.2f} s, {theirs[1]:.0f} MiB "
            f"| **{wall:.2f}x** | **{rss:.2f}x** | {compared} variances agree (worst {worst:.1f} s.e.) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
