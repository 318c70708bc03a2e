"""initdiag's probe of a Pre-LN transformer, end to end, against a plain PyTorch script doing the same
forward and backward with hooks (issue 14's benchmark), each in its own process on the same threads.

    python benchmarks/transformer_probe.py [--blocks 12] [--d 768] [--heads 12] [--seq 256] [--batch 8]
                                           [--runs 3]

The stack: `--layers "transformer:d=768,heads=12,blocks=12,seq=256"` (a (seq, d) input of N(0, 1)
vectors, Pre-LN blocks of causal attention with biases and a 4d GELU MLP, a final LayerNorm), GPT-2's
init, float32. initdiag: `initdiag.probe(...)`, with every statistic of the table and the blocks
table. PyTorch: the same blocks (nn.LayerNorm, a fused qkv nn.Linear, F.scaled_dot_product_attention,
nn.Linear, nn.GELU), a forward hook on every leaf module taking its output's mean and variance and a
full backward hook taking its input gradient's, the unit loss sum(Y * G) / batch, backward. Both
sides' times start at the weights' draw (PyTorch's: building the modules, GPT-2's init) and end
after the backward pass; neither includes its imports. Each side
runs `--runs` times in a fresh process, the two sides interleaved, and reports its peak resident
memory; the ratios are medians over the interleaved pairs. Target (issue 14): initdiag within 1.5x
of PyTorch's time, and its peak memory not above PyTorch's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def run_initdiag(args) -> float:
    import initdiag

    text = f"transformer:d={args.d},heads={args.heads},blocks={args.blocks},seq={args.seq}"
    start = time.perf_counter()
    initdiag.probe(text, init="gpt2", batch=args.batch)
    return time.perf_counter() - start


def run_torch(args) -> tuple[float, float]:
    import torch
    from torch import nn
    from vs_torch_transformer import Attention  # this folder: vs_torch.py's transformer script

    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(d), Attention(d, heads), nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    start = time.perf_counter()  # from the weights' draw, as initdiag's probe
    torch.manual_seed(0)
    model = nn.Sequential(*(Block(args.d, args.heads) for _ in range(args.blocks)), nn.LayerNorm(args.d))
    for name, p in model.named_parameters():
        if p.dim() == 2:
            std = (
                0.02 / (2 * args.blocks) ** 0.5
                if name.endswith(("attn.out.weight", "mlp.2.weight"))
                else 0.02
            )
            nn.init.normal_(p, 0.0, std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    stats = []

    def forward_hook(module, inputs, output):
        stats.append((output.detach().mean().item(), output.detach().var().item()))

    def backward_hook(module, grad_input, grad_output):
        if grad_input and grad_input[0] is not None:
            stats.append((grad_input[0].mean().item(), grad_input[0].var().item()))

    for module in model.modules():
        if not list(module.children()) or isinstance(module, Attention):
            module.register_forward_hook(forward_hook)
            module.register_full_backward_hook(backward_hook)
    built = time.perf_counter()
    x = torch.randn(args.batch, args.seq, args.d, requires_grad=True)
    g = torch.randn(args.batch, args.seq, args.d)
    loss = (model(x) * g).sum() / args.batch
    loss.backward()
    end = time.perf_counter()
    return end - start, end - built


def child(args) -> None:
    if args.side == "initdiag":
        seconds = passes = run_initdiag(args)
    else:
        seconds, passes = run_torch(args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"seconds": seconds, "passes": passes, "peak": peak}))


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, dict | None]:
    """(seconds from start to exit, peak resident bytes, the JSON the child printed if a side child)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: a probe whose verdict fails
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode().strip()}")
    proc.returncode = 0  # reaped by wait4
    last = out.decode().strip().splitlines()[-1] if "--side" in cmd else None
    return elapsed, usage.ru_maxrss * 1024, json.loads(last) if last else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, default in (("blocks", 12), ("d", 768), ("heads", 12), ("seq", 256), ("batch", 8), ("runs", 3)):
        parser.add_argument(f"--{key}", type=int, default=default)
    parser.add_argument("--side", choices=("initdiag", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return child(args)
    sizes = [f"--{k}={getattr(args, k)}" for k in ("blocks", "d", "heads", "seq", "batch")]
    text = f"transformer:d={args.d},heads={args.heads},blocks={args.blocks},seq={args.seq}"
    cmds = {
        "command": [sys.executable, "-m", "initdiag", "probe", "--layers", text, "--init", "gpt2",
                    "--batch", str(args.batch), "--format", "json"],
        "torch": [sys.executable, __file__, *sizes, "--side", "torch"],
        "library": [sys.executable, __file__, *sizes, "--side", "initdiag"],
        "library, the command's BLAS setting": [sys.executable, __file__, *sizes, "--side", "initdiag"],
    }  # fmt: skip
    # the command sets OPENBLAS_THREAD_TIMEOUT=4 for itself (initdiag.cli); a library caller does not
    plain = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    envs = {name: plain for name in cmds} | {
        "library, the command's BLAS setting": plain | {"OPENBLAS_THREAD_TIMEOUT": "4"}
    }
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    runs: dict[str, list] = {name: [] for name in cmds}
    for _ in range(args.runs):  # interleaved rounds, each process fresh
        for name, cmd in cmds.items():
            runs[name].append(timed(cmd, envs[name]))
    median = statistics.median
    tuned = "library, the command's BLAS setting"
    rounds = list(zip(runs["command"], runs["torch"], runs["library"], runs[tuned], strict=True))
    print(f"Pre-LN transformer, {args.blocks} blocks, d {args.d}, {args.heads} heads, seq {args.seq}, "
          f"batch {args.batch}, float32, forward + backward with statistics; medians of {len(rounds)} "
          f"interleaved rounds (load average after: {os.getloadavg()[0]:.2f})")  # fmt: skip
    gib = 2**30
    print(f"  initdiag probe command  whole process {median(r[0] for r in runs['command']):6.2f} s, "
          f"peak {median(r[1] for r in runs['command']) / gib:.2f} GiB")  # fmt: skip
    inside = median(r[2]["seconds"] for r in runs["library"])
    print(
        f"  initdiag.probe()        in process    {inside:6.2f} s (OpenBLAS's defaults), "
        f"{median(r[2]['seconds'] for r in runs[tuned]):.2f} s (OPENBLAS_THREAD_TIMEOUT=4, as the command)"
    )
    print(f"  PyTorch script          whole process {median(r[0] for r in runs['torch']):6.2f} s, "
          f"peak {median(r[1] for r in runs['torch']) / gib:.2f} GiB; in process "
          f"{median(r[2]['seconds'] for r in runs['torch']):.2f} s, its passes alone "
          f"{median(r[2]['passes'] for r in runs['torch']):.2f} s")  # fmt: skip
    whole = median(c[0] / t[0] for c, t, _, _ in rounds)
    peak = median(c[1] / t[1] for c, t, _, _ in rounds)
    ratio = median(lib[2]["seconds"] / t[2]["seconds"] for _, t, lib, _ in rounds)
    tuned_ratio = median(lib[2]["seconds"] / t[2]["seconds"] for _, t, _, lib in rounds)
    passes = median(lib[2]["seconds"] / t[2]["passes"] for _, t, _, lib in rounds)
    print(f"  initdiag / PyTorch: whole processes (as benchmarks/vs_torch.py) time {whole:.2f}, peak "
          f"memory {peak:.2f} (targets <= 1.5 and <= 1); in process {tuned_ratio:.2f} with the command's "
          f"BLAS setting ({passes:.2f} against torch's passes alone), {ratio:.2f} with OpenBLAS's "
          "defaults")  # fmt: skip


if __name__ == "__main__":
    main()
