"""Every value initdiag prints, before and after a change: JSON of a fixed set of commands, compared.

    python benchmarks/values.py save DIR      # before the change
    python benchmarks/values.py compare DIR   # after: exit 1 if any number moved by more than --rtol

The commands: every sample config probed (float32 and float64, one with --trials), conv stacks of
several strides, pads and kernels with each activation family, a conv stack with batch norm and
residual blocks, and `train` with gelu and tanh. Numbers are compared relative to the larger of the
two (default 1e-5: a float32 rounding), a `_sd` spread over trials relative to its value, a mean
relative to its data's root mean square (`_scale`); strings and lists exactly; versions skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "sample_configs").glob("*.*"))

SPECS = {
    # strides, pads, kernels of several shapes, a maxpool, a 1x1 conv, a flatten
    "conv-mixed": {
        "input_shape": [3, 17, 16],
        "layers": [
            {"kind": "conv2d", "channels": 16},
            {"kind": "conv2d", "channels": 16, "stride": 2},
            {"kind": "conv2d", "channels": 8, "kernel": 5, "padding": "valid"},
            {"kind": "maxpool2d"},
            {"kind": "conv2d", "channels": 8, "kernel": 1},
            {"kind": "conv2d", "channels": 6, "kernel": [3, 1], "padding": 1},
            {"kind": "flatten"},
            {"units": 10},
        ],
        "probe": {"batch": 16},
    },
    "conv10": {
        "input_shape": [3, 32, 32],
        "layers": [
            {"kind": "conv2d", "channels": 64, "repeat": 10},
            {"kind": "global_avgpool"},
            {"units": 10},
        ],
        "defaults": {"init": "he_normal"},
        "probe": {"batch": 8},
    },
    "conv-bn-res": {
        "input_shape": [3, 16, 16],
        "layers": [
            {"kind": "conv2d", "channels": 32},
            {"kind": "batchnorm"},
            {
                "kind": "residual",
                "repeat": 3,
                "layers": [
                    {"kind": "conv2d", "channels": 32},
                    {"kind": "batchnorm"},
                    {"kind": "conv2d", "channels": 32},
                    {"kind": "batchnorm"},
                ],
            },
            {
                "kind": "residual",
                "layers": [{"kind": "conv2d", "channels": 48, "stride": 2}, {"kind": "batchnorm"}],
            },
            {"kind": "global_avgpool"},
            {"units": 10},
        ],
        "probe": {"batch": 16},
    },
}


def commands(spec_dir: Path) -> dict[str, list[str]]:
    cases = {}
    for name, spec in SPECS.items():
        path = spec_dir / f"{name}.json"
        path.write_text(json.dumps({"name": name, **spec}))
        cases[f"probe-{name}"] = ["probe", "--config", str(path)]
    for act in ("tanh", "gelu", "selu"):
        cases[f"probe-conv10-{act}"] = ["probe", "--config", str(spec_dir / "conv10.json"), "--act", act]
    cases["probe-conv10-float64"] = ["probe", "--config", str(spec_dir / "conv10.json"), "--dtype", "float64"]
    for path in CONFIGS:
        cases[f"probe-{path.stem}"] = ["probe", "--config", str(path)]
    cases["probe-vgg-float64"] = [
        "probe",
        "--config",
        str(ROOT / "sample_configs/vgg_cifar.toml"),
        "--dtype",
        "float64",
    ]
    cases["probe-resnet-trials"] = [
        "probe",
        "--config",
        str(ROOT / "sample_configs/resnet20_cifar.toml"),
        "--trials",
        "2",
    ]
    cases["probe-mlp-gelu"] = ["probe", "--layers", "784,512x6,10", "--act", "gelu", "--batch", "256"]
    # the transformer's layers each way: norms (post, rmsnorm, sandwich), gated MLPs, qk-norm, a relu MLP
    for variant in (
        "norm=post,norm_type=rmsnorm,act=swiglu,qk_norm=true",
        "norm=pre,act=geglu,sandwich=true",
        "norm=deepnorm,act=relu",
    ):
        text = f"transformer:d=64,heads=4,blocks=2,seq=32,vocab=100,{variant}"
        cases[f"probe-transformer-{variant.split(',')[0]}"] = ["probe", "--layers", text, "--batch", "8"]
    cases["probe-gpt_small-float64"] = [
        "probe",
        "--config",
        str(ROOT / "sample_configs/gpt_small.toml"),
        "--dtype",
        "float64",
    ]
    cases["train-gelu"] = ["train", "--act", "gelu", "--trials", "2", "--iters", "2000"]
    cases["train-tanh"] = ["train", "--act", "tanh", "--trials", "2", "--iters", "2000"]
    return cases


def run(args: list[str]) -> dict | None:
    cmd = [sys.executable, "-m", "initdiag", *args, "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode not in (0, 1):
        print(f"  {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return None
    return json.loads(proc.stdout)


def _scale(row: dict, key: str) -> float | None:
    """The size a number's float32 rounding is relative to, when it is not the number's own: a spread
    over trials (a difference of close values) is rounded at its value's size, and a mean at its
    data's (the root of the second moment: a batch norm's output mean, 1e-11 of its std, is noise)."""
    base = key[:-3] if key.endswith("_sd") else key
    scale = row.get(base) if base != key else None
    if base.endswith("_mean") and isinstance(row.get(f"{base[:-5]}_var"), (int, float)):
        mean = row.get(base)
        mean = mean if isinstance(mean, (int, float)) else 0.0
        scale = math.sqrt(max(row[f"{base[:-5]}_var"], 0.0) + mean * mean)
    return scale if isinstance(scale, (int, float)) else None


def compare(a, b, rtol: float, path: str, out: list[str], scale=None) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if "version" in key:
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'after' if key in b else 'before'}")
                continue
            scale = _scale(a, key)
            compare(a[key], b[key], rtol, f"{path}.{key}", out, scale)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} -> {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            compare(x, y, rtol, f"{path}[{i}]", out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b):
            return
        size = max(abs(a), abs(b), abs(scale) if scale is not None else 0.0)
        if abs(a - b) > rtol * size:
            out.append(f"{path}: {a!r} -> {b!r} ({abs(a - b) / size:.1e} relative)")
    elif a != b:
        out.append(f"{path}: {a!r} -> {b!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("save", "compare"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-5)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    spec_dir = Path(tempfile.mkdtemp())
    cases = commands(spec_dir)
    for name, argv in cases.items():
        result = run(argv)
        stored = args.dir / f"{name}.json"
        if args.action == "save":
            if result is not None:
                stored.write_text(json.dumps(result, indent=1))
            continue
        if not stored.exists():
            print(f"{name}: nothing stored (skipped)")
            continue
        if result is None:
            print(f"{name}: failed")
            failed += 1
            continue
        diffs: list[str] = []
        compare(json.loads(stored.read_text()), result, args.rtol, name, diffs)
        print(f"{name}: {'same' if not diffs else f'{len(diffs)} differences'}")
        for line in diffs[:10]:
            print("   ", line)
        failed += bool(diffs)
    if args.action == "compare":
        print(f"{failed} of {len(cases)} differ")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
