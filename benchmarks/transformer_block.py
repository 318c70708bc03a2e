"""One transformer block's forward + backward in numpy (initdiag.core.transformer) against PyTorch.

    python benchmarks/transformer_block.py [--runs 5] [--d 768] [--heads 12] [--seq 256] [--batch 8]
    OPENBLAS_NUM_THREADS=1 python benchmarks/transformer_block.py    # both sides on one thread

The block: GPT-2's, pre-LN, causal attention with biases, MLP d -> 4d -> d with the exact GELU,
float32, weights N(0, 0.02^2). Loss L = sum(out * G), so backward starts from G. PyTorch runs the
same block (nn.LayerNorm, nn.MultiheadAttention(batch_first=True), nn.Linear, nn.GELU) on the same
threads; both sides are timed as forward + backward, interleaved (best and median of --runs, after
one warm-up).
The numpy side also times its parts, to show where the time goes. Needs torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from initdiag.core.transformer import TransformerBlock


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def timed_once(fn) -> list[float]:
    start = time.perf_counter()
    fn()
    return [time.perf_counter() - start]


def numpy_block(d, heads, rng):
    block = TransformerBlock("blk", d, heads, norm="pre", causal=True, dtype=np.float32)
    for key, array in block.params.items():
        if key.rsplit(".", 1)[1].startswith(("W_", "b_")):  # not the norms
            array[...] = 0.02 * rng.standard_normal(array.shape)
    return block


def torch_block(block):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            self.gelu = nn.GELU()

        def forward(self, x, mask):
            h = self.ln_1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)[0]
            return x + self.proj(self.gelu(self.fc(self.ln_2(x))))

    model = Block(block.d, block.attn.heads)
    p = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in block.params.items()}
    with torch.no_grad():
        model.attn.in_proj_weight.copy_(p["attn.W_qkv"].T)
        model.attn.in_proj_bias.copy_(p["attn.b_qkv"])
        model.attn.out_proj.weight.copy_(p["attn.W_o"].T)
        model.attn.out_proj.bias.copy_(p["attn.b_o"])
        model.fc.weight.copy_(p["mlp.W_in"].T)
        model.fc.bias.copy_(p["mlp.b_in"])
        model.proj.weight.copy_(p["mlp.W_out"].T)
        model.proj.bias.copy_(p["mlp.b_out"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    import torch

    if os.environ.get("OPENBLAS_NUM_THREADS"):  # numpy's BLAS threads: torch gets as many
        torch.set_num_threads(int(os.environ["OPENBLAS_NUM_THREADS"]))
    rng = np.random.default_rng(0)
    block = numpy_block(args.d, args.heads, rng)
    X = rng.standard_normal((args.batch, args.seq, args.d)).astype(np.float32)
    G = rng.standard_normal(X.shape).astype(np.float32)

    def numpy_step():
        block.forward(X)
        block.backward(G)

    model = torch_block(block)
    mask = torch.triu(torch.ones(args.seq, args.seq, dtype=torch.bool), 1)
    x_t, g_t = torch.from_numpy(X).requires_grad_(True), torch.from_numpy(G)

    def torch_step():
        model.zero_grad(set_to_none=True)
        x_t.grad = None
        (model(x_t, mask) * g_t).sum().backward()

    # the two agree (float32): the same block
    out = block.forward(X)
    dx = block.backward(G)
    torch_step()
    with torch.no_grad():
        out_t = model(x_t, mask).numpy()
    err_out = float(np.abs(out - out_t).max())
    err_dx = float(np.abs(dx - x_t.grad.numpy()).max())

    # interleaved, so that a load from elsewhere on the machine falls on both sides alike
    numpy_step(), torch_step()
    t_np, t_torch = [], []
    for _ in range(args.runs):
        t_np += timed_once(numpy_step)
        t_torch += timed_once(torch_step)
    shape = f"d {args.d}, {args.heads} heads, seq {args.seq}, batch {args.batch}, float32"
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"one pre-LN block, forward + backward ({shape})")
    print(f"  threads: torch {torch.get_num_threads()}, numpy's OpenBLAS {threads}")
    print(f"  agreement: max |out| diff {err_out:.1e}, max |dX| diff {err_dx:.1e}")
    for name, t in (("numpy", t_np), ("torch", t_torch)):
        print(f"  {name}: best {min(t) * 1e3:7.1f} ms, median {statistics.median(t) * 1e3:7.1f} ms")
    print(f"  ratio numpy / torch: {min(t_np) / min(t_torch):.2f} (best), ", end="")
    print(f"{statistics.median(t_np) / statistics.median(t_torch):.2f} (median)")

    # where the numpy time goes: each inner layer's forward and backward (inputs as in the block)
    block.forward(X)
    inputs = {}
    for sub in block.sublayers:
        h = sub.add.x
        for layer in sub.branch:
            inputs[layer.name] = h
            h = layer.forward(h)
    print("  numpy by layer (best of runs, forward + backward):")
    for layer in block.rows:
        if layer.name not in inputs:
            continue
        x = inputs[layer.name]
        grad = np.ones_like(layer.forward(x))
        t = timed(lambda layer=layer, x=x, grad=grad: (layer.forward(x), layer.backward(grad)), args.runs)
        print(f"    {layer.name:12s} {min(t) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
