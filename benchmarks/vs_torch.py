"""initdiag against a plain PyTorch script doing the same work, as whole processes side by side.

    python benchmarks/vs_torch.py [--pairs 5] [--cases dense,conv,resnet,transformer,train]
                                  [--check-trials 4] [--train-iters 3000]

For dense, conv and resnet, the same stack (a spec file both sides read) probed by ``initdiag
probe --config SPEC --format json`` and by `vs_torch_script.py` (PyTorch, He-normal weights from
``torch.nn.init``, the same batch, float32, torch's default threads, i.e. one per core as numpy's
BLAS; hooks take the statistics). Before timing, both sides run ``--check-trials`` seeds and every
row's variances (z, a, dL/dx, dL/dW) must agree within sampling error: |difference of the means| at
most 5 standard errors of it (from the spread over the seeds) plus 0.5% (float32, batch-norm eps).
Then ``--pairs`` pairs of whole processes, interleaved (which side goes first alternates), each
timed from start to exit with its peak resident memory (``ru_maxrss`` of the child, from
``os.wait4``); the ratios are medians of the pairs' ratios (initdiag / torch: below 1 is initdiag
ahead). Needs the torch extra; it is a benchmark, not a test. Run it on an idle machine (``cat
/proc/loadavg`` well below 1).

The transformer case is ``initdiag probe --layers "transformer:..." --init gpt2 --format json``
against `vs_torch_transformer.py`, checked the same way on every row's output and input-gradient
variance and each projection's gradient norm. The train case is ``initdiag train --trials 10
--format json`` (60 runs, the command's defaults but ``--iters``) against `vs_torch_train.py`, the
same 60 runs stacked and trained at once with ``torch.bmm`` and ``torch.optim.SGD``; the check is
that each initializer's mean final loss and test accuracy over its 10 trials agree within 5
standard errors. ``initdiag train`` splits its runs over worker processes, so the peak memory of
that case is the process tree's summed resident memory, sampled every 50 ms (a page two processes
share counts twice, which can only overstate initdiag's).

Cases (issue 17):
  dense   784,4096x8,10, relu, He, batch 1024
  conv    10 conv2d of 64 3x3 filters, relu, He, batch 64 x 3x32x32, global average pool, dense 10
  resnet  a CIFAR ResNet stem and stages: conv 64 + BN + relu, three post-activation residual blocks
          (conv-BN-relu-conv-BN, add, relu) at 64 channels, one at 128 with stride 2 and a 1x1
          projection, global average pool, dense 10; batch 64 x 3x32x32
  transformer  a Pre-LN GPT stack, d 256, 4 heads, 4 blocks, seq 128 (N(0, 1) vectors in), GPT-2 init,
          batch 8
  train   circles, 2,10,5,1 relu, SGD lr 0.01, 6 initializers x 10 trials, --train-iters full-batch steps
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
TRANSFORMER = {"d": 256, "heads": 4, "blocks": 4, "seq": 128}
TRANSFORMER_BATCH = 8
TRAIN_TRIALS = 10


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


ALL = (*CASES, "transformer", "train")


def write_spec(name: str, folder: Path) -> Path:
    spec = {"name": name, "defaults": {"act": "relu", "init": "he_normal"}, **CASES[name]}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def initdiag_cmd(spec: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "initdiag", "probe", "--config", str(spec), "--format", "json", *extra]


def torch_cmd(spec: Path, *extra: str) -> list[str]:
    return [sys.executable, str(HERE / "vs_torch_script.py"), str(spec), *extra]


def transformer_cmds(*extra: str) -> tuple[list[str], list[str]]:
    layers = "transformer:" + ",".join(f"{k}={v}" for k, v in TRANSFORMER.items())
    batch = ["--batch", str(TRANSFORMER_BATCH)]
    ours = [sys.executable, "-m", "initdiag", "probe", "--layers", layers, "--init", "gpt2", *batch]
    theirs = [sys.executable, str(HERE / "vs_torch_transformer.py"), *batch]
    theirs += [f"--{k}={v}" for k, v in TRANSFORMER.items()]
    return [*ours, "--format", "json", *extra], theirs


def train_cmds(iters: int) -> tuple[list[str], list[str]]:
    steps = ["--iters", str(iters)]
    trials = ["--trials", str(TRAIN_TRIALS)]
    ours = [sys.executable, "-m", "initdiag", "train", *trials, *steps, "--format", "json"]
    return ours, [sys.executable, str(HERE / "vs_torch_train.py"), *trials, *steps]


def outputs(name: str, ours: list[str], theirs: list[str]) -> tuple[dict, dict]:
    """Both sides' JSON."""
    out = subprocess.run(ours, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise SystemExit(f"initdiag failed on {name}: {out.stderr.strip()}")
    mine = json.loads(out.stdout)
    out = subprocess.run(theirs, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the torch script failed on {name}: {out.stderr.strip()}")
    return mine, json.loads(out.stdout)


class Agreement:
    """Numbers from both sides, each a mean over *trials* seeds with its spread: they agree when
    |difference of the means| is at most 5 standard errors of it plus 0.5% (float32, eps)."""

    def __init__(self, name: str, trials: int):
        self.name, self.trials, self.compared, self.worst = name, trials, 0, 0.0

    def add(self, what: str, mean: float, sd: float, tmean: float, tsd: float) -> None:
        error = math.sqrt((sd**2 + tsd**2) / self.trials)
        z = abs(mean - tmean) / (error + 0.005 * abs(tmean) + 1e-30)
        self.compared += 1
        self.worst = max(self.worst, z)
        if z > 5:
            raise SystemExit(
                f"{self.name}: {what}: initdiag {mean:.4g} +- {sd:.2g}, torch {tmean:.4g} +- {tsd:.2g} "
                f"({z:.1f} standard errors apart)"
            )


def check(spec: Path, trials: int) -> str:
    """Both sides' row variances agree within sampling error."""
    seeds = str(trials)
    mine, theirs = outputs(
        spec.name, initdiag_cmd(spec, "--trials", seeds), torch_cmd(spec, "--seeds", seeds, "--json")
    )
    ours, others = mine["layers"], list(theirs.values())
    if len(ours) != len(others):
        raise SystemExit(f"{spec.name}: initdiag has {len(ours)} rows, the torch script {len(others)}")
    agree = Agreement(spec.stem, trials)
    for row, other in zip(ours, others, strict=True):
        for key in KEYS:
            if row.get(key) is not None and key in other:
                agree.add(f"{row['name']} {key}", row[key], row.get(f"{key}_sd") or 0.0, *other[key])
    return f"{agree.compared} variances agree (worst {agree.worst:.1f} s.e.)"


def check_transformer(trials: int) -> str:
    """Every row's output and input-gradient variance and each projection's gradient norm agree
    (initdiag gives no spread for the norms: the script's stands for both)."""
    ours, theirs = transformer_cmds("--trials", str(trials))
    mine, others = outputs("transformer", ours, [*theirs, "--seeds", str(trials), "--json"])
    rows = mine["layers"]
    if [row["name"] for row in rows] != list(others):
        names = [row["name"] for row in rows]
        raise SystemExit(f"transformer: initdiag's rows {names}, the script's {list(others)}")
    agree = Agreement("transformer", trials)
    for row in rows:
        other = others[row["name"]]
        for key in ("preact_var", "grad_input_var"):
            agree.add(f"{row['name']} {key}", row[key], row.get(f"{key}_sd") or 0.0, *other[key])
        for weight, norm in (row.get("grad_weight_norm") or {}).items():
            tmean, tsd = other[f"grad_weight_norm.{weight}"]
            agree.add(f"{row['name']} {weight} gradient norm", norm, tsd, tmean, tsd)
    return f"{agree.compared} variances and norms agree (worst {agree.worst:.1f} s.e.)"


def check_train(iters: int) -> str:
    """Each initializer's mean final loss and test accuracy over its trials agree."""
    ours, theirs = train_cmds(iters)
    mine, others = outputs("train", ours, [*theirs, "--json"])
    results = mine["results"]
    if [r["label"] for r in results] != list(others):
        raise SystemExit(f"train: initdiag trains {[r['label'] for r in results]}, the script {list(others)}")
    agree = Agreement("train", TRAIN_TRIALS)
    for result in results:
        for key in ("final_loss", "test_accuracy"):
            what = f"{result['label']} {key}"
            agree.add(what, result[key], result.get(f"{key}_sd", 0.0), *others[result["label"]][key])
    return f"{len(results)} initializers' final losses and accuracies agree (worst {agree.worst:.1f} s.e.)"


def tree_rss(root: int) -> float:
    """The summed resident MiB of *root* and its descendants now (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += parents.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(cmd: list[str], tree: bool = False) -> tuple[float, float]:
    """(seconds from start to exit, peak resident MiB) of one process; with *tree*, the peak of
    its process tree's summed resident memory, sampled every 50 ms, if that is more."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, 0 if not tree else os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode().strip()}")
    proc.returncode = 0  # reaped by wait4
    return elapsed, max(peak, usage.ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--cases", default=",".join(ALL))
    parser.add_argument("--check-trials", type=int, default=4)
    parser.add_argument("--train-iters", type=int, default=3000, help="train's steps (the command's: 15000)")
    args = parser.parse_args()
    unknown = set(args.cases.split(",")) - set(ALL)
    if unknown:
        raise SystemExit(f"no case {', '.join(sorted(unknown))}: the cases are {', '.join(ALL)}")
    folder = Path(tempfile.mkdtemp())
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; {args.pairs} pairs")
    print("| case | initdiag | PyTorch script | wall time | peak memory | statistics |")
    print("|---|---|---|---|---|---|")
    for name in args.cases.split(","):
        if name == "transformer":
            agreement = check_transformer(args.check_trials)
            cmds = transformer_cmds()
        elif name == "train":
            agreement = check_train(args.train_iters)
            cmds = train_cmds(args.train_iters)
        else:
            spec = write_spec(name, folder)
            agreement = check(spec, args.check_trials)
            cmds = initdiag_cmd(spec), torch_cmd(spec)
        sides = dict(zip(("initdiag", "torch"), cmds, strict=True))
        tree = name == "train"  # its runs go to worker processes
        if not tree:  # warm the file cache (train's check just ran both)
            for cmd in sides.values():
                timed(cmd)
        runs: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for pair in range(args.pairs):
            order = list(sides) if pair % 2 == 0 else list(reversed(sides))
            for side in order:
                runs[side].append(timed(sides[side], tree))
        wall = statistics.median(a[0] / b[0] for a, b in zip(runs["initdiag"], runs["torch"], strict=True))
        rss = statistics.median(a[1] / b[1] for a, b in zip(runs["initdiag"], runs["torch"], strict=True))
        ours = [statistics.median(r[k] for r in runs["initdiag"]) for k in (0, 1)]
        theirs = [statistics.median(r[k] for r in runs["torch"]) for k in (0, 1)]
        print(
            f"| {name} | {ours[0]:.2f} s, {ours[1]:.0f} MiB | {theirs[0]:.2f} s, {theirs[1]:.0f} MiB "
            f"| **{wall:.2f}x** | **{rss:.2f}x** | {agreement} |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
