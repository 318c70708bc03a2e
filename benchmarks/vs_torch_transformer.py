"""The PyTorch side of `vs_torch.py`'s transformer case: a plain script probing a Pre-LN GPT stack.

    python benchmarks/vs_torch_transformer.py --d 256 --heads 4 --blocks 4 --seq 128 --batch 8
                                              [--seeds 1] [--json]

What ``initdiag probe --layers "transformer:d=...,heads=...,blocks=...,seq=..." --init gpt2`` does,
written as a user would: Pre-LN blocks (nn.LayerNorm, a fused qkv nn.Linear with biases,
F.scaled_dot_product_attention with a causal mask, the output nn.Linear; nn.LayerNorm, a 4d nn.GELU
MLP), a final nn.LayerNorm; GPT-2's init (every matrix N(0, 0.02^2), the attention's output
projection and the MLP's second weight N(0, (0.02 / sqrt(2L))^2), zero biases); a batch of (seq, d)
N(0, 1) inputs, float32, torch's default threads; the unit loss sum(Y * G) / batch, backward. A
forward hook on every LayerNorm, attention, MLP and residual add takes its output's mean and
population variance, a full backward hook its input gradient's, and after backward each projection's
gradient norm (W_q, W_k, W_v from the fused qkv). The rows are named as initdiag names them
(``block1.ln1``, ``block1.attn``, ``block1.attn_add``, ..., ``ln1``). It imports neither initdiag nor
numpy. ``--json`` prints the rows' numbers (the mean and spread over ``--seeds``) for the check that
both sides compute the same thing.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from torch import nn
from torch.nn import functional
from vs_torch_script import summarize  # this folder: the script's own


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, s, d))


class Add(nn.Module):
    """The residual add, a module so that the same hooks see the stream after it."""

    def forward(self, x, branch):
        return x + branch


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1, self.attn, self.attn_add = nn.LayerNorm(d), Attention(d, heads), Add()
        self.ln2, self.mlp_add = nn.LayerNorm(d), Add()
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = self.attn_add(x, self.attn(self.ln1(x)))
        return self.mlp_add(x, self.mlp(self.ln2(x)))


def probe(args, seed: int) -> dict:
    torch.manual_seed(seed)
    blocks = [Block(args.d, args.heads) for _ in range(args.blocks)]
    model = nn.Sequential(*blocks, nn.LayerNorm(args.d))
    for name, p in model.named_parameters():
        if p.dim() == 2:
            residual = name.endswith(("attn.out.weight", "mlp.2.weight"))
            nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * args.blocks) if residual else 0.02)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    stats: dict = {}

    def hooks(module, row: str) -> None:
        stats[row] = {}

        def forward(module, inputs, output):
            var, mean = torch.var_mean(output.detach(), correction=0)
            stats[row]["preact_var"], stats[row]["preact_mean"] = var.item(), mean.item()

        def backward(module, grad_input, grad_output):
            var, mean = torch.var_mean(grad_input[0], correction=0)
            stats[row]["grad_input_var"], stats[row]["grad_input_mean"] = var.item(), mean.item()

        module.register_forward_hook(forward)
        module.register_full_backward_hook(backward)

    for i, block in enumerate(blocks, start=1):
        for part in ("ln1", "attn", "attn_add", "ln2", "mlp", "mlp_add"):
            hooks(getattr(block, part), f"block{i}.{part}")
    hooks(model[-1], "ln1")
    x = torch.randn(args.batch, args.seq, args.d, requires_grad=True)
    y = model(x)
    g = torch.randn_like(y)
    ((y * g).sum() / args.batch).backward()
    d = args.d
    for i, block in enumerate(blocks, start=1):
        qkv = block.attn.qkv.weight.grad
        norms = {"W_q": qkv[:d], "W_k": qkv[d : 2 * d], "W_v": qkv[2 * d :]}
        for key, grad in {**norms, "W_o": block.attn.out.weight.grad}.items():
            stats[f"block{i}.attn"][f"grad_weight_norm.{key}"] = grad.norm().item()
        for key, layer in (("W_in", block.mlp[0]), ("W_out", block.mlp[2])):
            stats[f"block{i}.mlp"][f"grad_weight_norm.{key}"] = layer.weight.grad.norm().item()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, default in (("d", 256), ("heads", 4), ("blocks", 4), ("seq", 128), ("batch", 8), ("seeds", 1)):
        parser.add_argument(f"--{key}", type=int, default=default)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = [probe(args, seed) for seed in range(args.seeds)]
    if args.json:
        print(json.dumps(summarize(runs)))


if __name__ == "__main__":
    main()
