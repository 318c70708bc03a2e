"""The cost of probing a PyTorch model against a plain forward and backward pass of it, in one run.

    python benchmarks/torch_hooks.py [--pairs 5] [--batch 32] [--size 224]

The model is a ResNet-18 written out here (torchvision's layout: 7x7 stem, four stages of two
BasicBlocks, 64-512 channels, 11.7 M parameters; torchvision itself is not needed), at batch 32 on
3x224x224 inputs, on the CPU. Plain: ``loss = (model(x) * g).sum() / batch; loss.backward()``, the
unit loss the probe uses. Probe: ``initdiag.torch.probe_module(model, "3x224x224", batch=32)``,
which adds the hooks and every per-module statistic (moments of each output and gradient, dead
units, distinct units, weight statistics). Pairs are interleaved (plain, probe, plain, probe, ...);
the ratio is the median of the per-pair ratios. Target (issue 13): at most 1.3x.

Also: the start-up of ``initdiag probe --help`` with torch installed, against the import floor
(torch must not be imported by it; benchmarks/startup.py has the full start-up table).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (cin, cout, stride) in enumerate(widths, 1):
            setattr(
                self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))
            )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def plain(model, x, g) -> float:
    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)  # the probe takes dL/dx too
    loss = (model(x) * g).sum() / x.shape[0]
    loss.backward()
    return time.perf_counter() - start


def probed(model, batch: int, size: int) -> float:
    from initdiag.torch import probe_module

    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    probe_module(model, f"3x{size}x{size}", batch=batch)
    return time.perf_counter() - start


def startup(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = ResNet18()
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(args.batch, 3, args.size, args.size)
    g = torch.randn(args.batch, 1000)
    print(f"ResNet-18 ({params / 1e6:.1f} M parameters), batch {args.batch}, 3x{args.size}x{args.size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    plain(model, x, g), probed(model, args.batch, args.size)  # warm up both
    pairs = [(plain(model, x, g), probed(model, args.batch, args.size)) for _ in range(args.pairs)]
    ratio = statistics.median(p / b for b, p in pairs)
    mark = "ok" if ratio <= 1.3 else "OVER"
    base, probe = statistics.median(b for b, _ in pairs), statistics.median(p for _, p in pairs)
    print(
        f"plain forward+backward {base:6.2f} s, probe {probe:6.2f} s: {ratio:.2f}x (target <= 1.3x: {mark})"
    )

    floor = [sys.executable, "-c", "import numpy, typer, rich.table"]
    helpcmd = [sys.executable, "-m", "initdiag", "probe", "--help"]
    startup(floor), startup(helpcmd)
    times = [(startup(floor), startup(helpcmd)) for _ in range(11)]
    ratio = statistics.median(h / f for f, h in times)
    leaked = subprocess.run([sys.executable, "-c", "import initdiag.cli, sys; print('torch' in sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    print(
        f"initdiag probe --help with torch installed: {ratio:.2f}x the import floor; torch imported: {leaked}"
    )


if __name__ == "__main__":
    main()
