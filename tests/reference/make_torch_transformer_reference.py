"""Generate ``tests/data/torch_transformer_reference.npz``: transformer layers computed by real PyTorch.

``tests/test_torch_transformer_reference.py`` loads this file into initdiag's transformer layers and
never imports torch; this script never imports initdiag, so the fixture is an independent truth.
Regenerate from the repository root with a Python that has the CPU build of torch::

    /work/venv/bin/python tests/reference/make_torch_transformer_reference.py

Everything is float64; weights and inputs are drawn by numpy from fixed seeds, gradients come from
autograd of L = sum(out * G) for a fixed G, so dL/dout = G. Parameters are stored in PyTorch's layout
(``nn.Linear.weight`` is (out, in)); the test transposes them into initdiag's (in, out).

Keys (B, S, D, H = 2, 5, 8, 2 unless said; every "<m>/d<param>" is dL/d<param> in <param>'s layout)
----
torch_version, numpy_version   0-d strings
X, G                           (B, S, D) input and dL/dout, standard normal; ids (B, S) int64 in [0, 11)
mha/{in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias}
                               nn.MultiheadAttention(D, H, batch_first=True) weights: (3D, D), (3D,),
                               (D, D), (D,)
mha/<mask>/{out, probs, dX, d<param>}
                               <mask> causal (a bool attn_mask, True above the diagonal) or full;
                               probs (B, H, S, S) from need_weights=True, average_attn_weights=False
sdpa_qknorm/{q_norm_weight, q_norm_bias, k_norm_weight, k_norm_bias}
                               (D / H,): F.layer_norm (eps 1e-5) of each head's q and k, then
                               F.scaled_dot_product_attention(is_causal=True), on mha's weights;
sdpa_qknorm/{out, dX, d<param>} with <param> also in_proj_weight ... (the mha weights)
layernorm/{weight, bias, out, dX, dweight, dbias}
                               nn.LayerNorm(D) (eps 1e-5) of 1 + 3 X
rmsnorm/<eps>/{weight, out, dX, dweight}
                               nn.RMSNorm(D, eps): <eps> "default" (None: finfo(float64).eps) or 1e-06
mlp_gelu/{fc1_weight, fc1_bias, fc2_weight, fc2_bias, out, dX, d<param>}
                               Linear(D, 16), GELU (exact, erf), Linear(16, D)
mlp_swiglu/{w1, w3, w2, out, dX, d<param>}
                               w2(silu(w1 x) * w3 x), no biases, hidden 12 (Shazeer 2020; LLaMA's names)
mlp_geglu/{w1, b1, w3, b3, w2, b2, out, dX, d<param>}
                               w2(gelu(w1 x + b1) * (w3 x + b3)) + b2, hidden 12
embedding/{weight, out, dweight}
                               nn.Embedding(11, D) of ids (repeated ids: dweight sums them)
sinusoidal/d<d>                (16, d) table, d = 8 and 7: PE[p, 2i] = sin(p / 10000^(2i/d)), cos at 2i+1
gpt2/<param>                   a pre-LN GPT-2-style block: x1 = x + attn(ln_1(x)), out = x1 + mlp(ln_2(x1)),
                               attn nn.MultiheadAttention causal, mlp Linear(D, 4D), GELU (exact), Linear;
                               <param>: ln_1.weight, ln_1.bias, attn.in_proj_weight, attn.in_proj_bias,
                               attn.out_proj.weight, attn.out_proj.bias, ln_2.weight, ln_2.bias,
                               mlp.fc.weight, mlp.fc.bias, mlp.proj.weight, mlp.proj.bias
gpt2/{out, attn_branch, stream1, mlp_branch, probs, dX, d<param>}
                               attn_branch = attn(ln_1(x)), stream1 = x1, mlp_branch = mlp(ln_2(x1))
encoder_<pre|post>/<param>     nn.TransformerEncoderLayer(D, H, dim_feedforward=4D, dropout=0,
                               activation="gelu", batch_first=True, norm_first=pre) with a causal mask;
                               <param> its state_dict names (self_attn.in_proj_weight, linear1.weight,
                               norm1.weight, ...); encoder_<..>/{out, dX, d<param>}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "data" / "torch_transformer_reference.npz"
B, S, D, H, VOCAB = 2, 5, 8, 2, 11
EPS = 1e-5


def numpy_of(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def set_params(module: nn.Module, rng: np.random.Generator) -> None:
    """Weights N(0, 0.35^2) (large enough for uneven attention), biases N(0, 0.1^2), norm weights
    around 1 and norm biases around 0, so no gradient hides behind a default of 1 or 0."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name or name.startswith("ln_"):
                base, std = (1.0, 0.2) if name.endswith("weight") else (0.0, 0.1)
            else:
                base, std = 0.0, 0.35 if p.ndim == 2 else 0.1
            p.copy_(torch.from_numpy(base + std * rng.standard_normal(tuple(p.shape))))


def record(out: dict, prefix: str, module: nn.Module, y: torch.Tensor, x: torch.Tensor, G: torch.Tensor):
    """Parameters, output, dX and every parameter's gradient of L = sum(y * G)."""
    (y * G).sum().backward()
    out[f"{prefix}/out"] = numpy_of(y)
    if x.grad is not None:
        out[f"{prefix}/dX"] = numpy_of(x.grad)
    for name, p in module.named_parameters():
        out[f"{prefix}/{name}"] = numpy_of(p)
        out[f"{prefix}/d{name}"] = numpy_of(p.grad)


def leaf(array: np.ndarray) -> torch.Tensor:
    return torch.tensor(array, dtype=torch.float64, requires_grad=True)


def causal_mask(seq: int) -> torch.Tensor:
    return torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1)  # True = may not attend


def attention(out, X, G, rng):
    mha = nn.MultiheadAttention(D, H, batch_first=True, dtype=torch.float64)
    set_params(mha, rng)
    for name in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
        out[f"mha/{name.replace('.', '_')}"] = numpy_of(mha.get_parameter(name))
    for mask_name, mask in (("causal", causal_mask(S)), ("full", None)):
        mha.zero_grad()
        x = leaf(X)
        y, probs = mha(x, x, x, attn_mask=mask, need_weights=True, average_attn_weights=False)
        (y * G).sum().backward()
        prefix = f"mha/{mask_name}"
        out[f"{prefix}/out"], out[f"{prefix}/probs"], out[f"{prefix}/dX"] = map(numpy_of, (y, probs, x.grad))
        for name, p in mha.named_parameters():
            out[f"{prefix}/d{name.replace('.', '_')}"] = numpy_of(p.grad)

    # the same weights through F.scaled_dot_product_attention, with a LayerNorm on each head's q and k
    head_dim = D // H
    params = {
        name: leaf(out[f"mha/{name}"])
        for name in ("in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias")
    }
    for which in ("q", "k"):
        params[f"{which}_norm_weight"] = leaf(1.0 + 0.2 * rng.standard_normal(head_dim))
        params[f"{which}_norm_bias"] = leaf(0.1 * rng.standard_normal(head_dim))
    x = leaf(X)
    qkv = F.linear(x, params["in_proj_weight"], params["in_proj_bias"])
    q, k, v = (t.reshape(B, S, H, head_dim).transpose(1, 2) for t in qkv.split(D, dim=-1))
    q = F.layer_norm(q, (head_dim,), params["q_norm_weight"], params["q_norm_bias"], EPS)
    k = F.layer_norm(k, (head_dim,), params["k_norm_weight"], params["k_norm_bias"], EPS)
    context = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, S, D)
    y = F.linear(context, params["out_proj_weight"], params["out_proj_bias"])
    (y * G).sum().backward()
    out["sdpa_qknorm/out"], out["sdpa_qknorm/dX"] = numpy_of(y), numpy_of(x.grad)
    for name, p in params.items():
        if "norm" in name:
            out[f"sdpa_qknorm/{name}"] = numpy_of(p)
        out[f"sdpa_qknorm/d{name}"] = numpy_of(p.grad)


def norms(out, X, G, rng):
    ln = nn.LayerNorm(D, eps=EPS, dtype=torch.float64)
    set_params(ln, rng)
    x = leaf(1.0 + 3.0 * X)
    record(out, "layernorm", ln, ln(x), x, G)
    for eps_name, eps in (("default", None), ("1e-06", 1e-6)):
        rms = nn.RMSNorm(D, eps=eps, dtype=torch.float64)
        with torch.no_grad():
            rms.weight.copy_(torch.from_numpy(1.0 + 0.2 * rng.standard_normal(D)))
        x = leaf(X)
        record(out, f"rmsnorm/{eps_name}", rms, rms(x), x, G)


class SwiGLU(nn.Module):
    def __init__(self, hidden, act, bias):
        super().__init__()
        self.w1 = nn.Linear(D, hidden, bias=bias, dtype=torch.float64)
        self.w3 = nn.Linear(D, hidden, bias=bias, dtype=torch.float64)
        self.w2 = nn.Linear(hidden, D, bias=bias, dtype=torch.float64)
        self.act = act

    def forward(self, x):
        return self.w2(self.act(self.w1(x)) * self.w3(x))


def mlps(out, X, G, rng):
    gelu_mlp = nn.Sequential()
    gelu_mlp.add_module("fc1", nn.Linear(D, 16, dtype=torch.float64))
    gelu_mlp.add_module("act", nn.GELU())
    gelu_mlp.add_module("fc2", nn.Linear(16, D, dtype=torch.float64))
    set_params(gelu_mlp, rng)
    x = leaf(X)
    record(out, "mlp_gelu", gelu_mlp, gelu_mlp(x), x, G)
    # record's names are "fc1.weight"; store them as "fc1_weight"
    for key in [k for k in out if k.startswith(("mlp_gelu/fc", "mlp_gelu/dfc"))]:
        out[key.replace(".", "_")] = out.pop(key)
    for name, act, bias in (("swiglu", F.silu, False), ("geglu", F.gelu, True)):
        mlp = SwiGLU(12, act, bias)
        set_params(mlp, rng)
        x = leaf(X)
        record(out, f"mlp_{name}", mlp, mlp(x), x, G)
        for key in [k for k in out if k.startswith(f"mlp_{name}/")]:
            short = key.replace(".weight", "").replace(".bias", "_bias")
            out[short.replace("w1_bias", "b1").replace("w3_bias", "b3").replace("w2_bias", "b2")] = out.pop(
                key
            )


def embeddings(out, G, rng):
    ids = rng.integers(0, VOCAB, (B, S))
    ids[1, :2] = ids[0, 0]  # a repeated token: its gradient rows add up
    out["ids"] = ids
    emb = nn.Embedding(VOCAB, D, dtype=torch.float64)
    set_params(emb, rng)
    record(out, "embedding", emb, emb(torch.from_numpy(ids)), torch.empty(0), G)
    for d in (8, 7):
        position = torch.arange(16, dtype=torch.float64)[:, None]
        div = torch.pow(
            torch.tensor(10000.0, dtype=torch.float64), torch.arange(0, d, 2, dtype=torch.float64) / d
        )
        table = torch.zeros(16, d, dtype=torch.float64)
        table[:, 0::2] = torch.sin(position / div)
        table[:, 1::2] = torch.cos(position / div)[:, : d // 2]
        out[f"sinusoidal/d{d}"] = numpy_of(table)


class GPT2Block(nn.Module):
    """GPT-2's block (Radford et al. 2019) with nn.MultiheadAttention and the exact GELU."""

    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D, eps=EPS, dtype=torch.float64)
        self.attn = nn.MultiheadAttention(D, H, batch_first=True, dtype=torch.float64)
        self.ln_2 = nn.LayerNorm(D, eps=EPS, dtype=torch.float64)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc", nn.Linear(D, 4 * D, dtype=torch.float64))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("proj", nn.Linear(4 * D, D, dtype=torch.float64))

    def forward(self, x):
        h = self.ln_1(x)
        self.attn_branch, self.probs = self.attn(
            h, h, h, attn_mask=causal_mask(x.shape[1]), need_weights=True, average_attn_weights=False
        )
        self.stream1 = x + self.attn_branch
        self.mlp_branch = self.mlp(self.ln_2(self.stream1))
        return self.stream1 + self.mlp_branch


def blocks(out, X, G, rng):
    gpt2 = GPT2Block()
    set_params(gpt2, rng)
    x = leaf(X)
    record(out, "gpt2", gpt2, gpt2(x), x, G)
    for key in ("attn_branch", "stream1", "mlp_branch", "probs"):
        out[f"gpt2/{key}"] = numpy_of(getattr(gpt2, key))
    for placement in ("pre", "post"):
        layer = nn.TransformerEncoderLayer(
            D, H, dim_feedforward=4 * D, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=placement == "pre", dtype=torch.float64,
        )  # fmt: skip
        set_params(layer, rng)
        layer.train()
        x = leaf(X)
        y = layer(x, src_mask=causal_mask(S), is_causal=True)
        record(out, f"encoder_{placement}", layer, y, x, G)


def main() -> None:
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(20240614)
    X = rng.standard_normal((B, S, D))
    G_np = rng.standard_normal((B, S, D))
    G = torch.from_numpy(G_np)
    out: dict[str, np.ndarray] = {
        "torch_version": np.array(torch.__version__),
        "numpy_version": np.array(np.__version__),
        "X": X,
        "G": G_np,
    }
    attention(out, X, G, rng)
    norms(out, X, G, rng)
    mlps(out, X, G, rng)
    embeddings(out, G, rng)
    blocks(out, X, G, rng)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(out)} arrays, torch {torch.__version__})")


if __name__ == "__main__":
    main()
