"""Initializers that depend on what a weight does in a transformer: its role (`ROLES`), the number of
blocks L (N) of the stack and whether it is a decoder (causal attention) or an encoder.

`for_role` is the one place the role is read: a preset (`GPT2`, `TFixup`, `DeepNet`,
`SmallInitEmb`) names the plain initializer each role gets, and the framework defaults
(``torch_default``, ``keras_default``, ``flax_default``) give a transformer's weights what PyTorch's,
Keras's and Flax's modules draw (``nn.Embedding``'s N(0, 1), ``nn.MultiheadAttention``'s Xavier on
its fused in_proj, Keras's glorot on its (d, heads, head_dim) kernels, ...). Any other initializer
is the same for every role. Shapes are initdiag's ``x @ W`` layout, fans are a weight's own (an
embedding table (vocab, d) has fan_in d, fan_out vocab, as ``torch.nn.init`` computes for
``nn.Embedding.weight``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .callspec import fmt_number
from .initializers import Constant, Initializer, LayerContext, Normal, TorchDefault, Uniform, VarianceScaling

# the roles of a transformer's weights (`network.graph.Param.role`), and the ``[init]`` key of each
ROLES = {
    "q": "qkv", "k": "qkv", "v": "qkv", "out_proj": "out_proj", "mlp_in": "mlp_in", "mlp_gate": "mlp_in",
    "mlp_out": "mlp_out", "embedding": "embedding", "positions": "positions", "unembedding": "unembedding",
}  # fmt: skip
# the keys of a spec's ``[init]`` table: each sets every weight of its role(s); q, k and v set one of
# the three attention projections over qkv (a zero query: mup's; zero queries and keys: uniform attention)
ROLE_KEYS = ("embedding", "positions", "qkv", "q", "k", "v", "out_proj", "mlp_in", "mlp_out", "unembedding")
# the weights whose output is added to the residual stream
RESIDUAL_OUT = ("out_proj", "mlp_out")
_BRANCH = ("v", "out_proj", "mlp_in", "mlp_gate", "mlp_out")  # T-Fixup's and DeepNet's scaled weights


def for_role(init: Initializer, ctx: LayerContext) -> Initializer:
    """The plain initializer *init* means for a weight of ``ctx.role``."""
    rule = getattr(init, "for_role", None)
    if rule is not None:
        return rule(ctx)
    if ctx.role in ROLES:
        if isinstance(init, TorchDefault):
            return _torch(ctx)
        if init.name == "keras_default":
            return _keras(ctx)
        if init.name == "flax_default" and ctx.role in ("embedding", "positions"):
            return VarianceScaling("variance_scaling", 1.0, 1.0, "fan_in", "normal")  # nn.Embed: var 1/d
    return init


def _xavier(distribution: str, gain: float = 1.0) -> VarianceScaling:
    name = "xavier_uniform" if distribution == "uniform" else "xavier_normal"
    return VarianceScaling(name, 1.0, gain, "fan_avg", distribution)


def _torch(ctx: LayerContext) -> Initializer:
    """What PyTorch's modules draw: ``nn.Embedding`` N(0, 1); ``nn.MultiheadAttention``
    ``xavier_uniform_`` on in_proj_weight (3 * inner, d) as one matrix, zero in_proj_bias, its
    out_proj an ``nn.Linear`` (U(+-1/sqrt(fan_in))) with a zero bias; every other Linear its default."""
    if ctx.role in ("embedding", "positions"):
        return Normal("normal", 1.0)
    if ctx.role in ("q", "k", "v"):
        d, inner = ctx.fans
        bound = math.sqrt(6.0 / (d + 3 * inner))
        return Uniform(-bound, bound)  # its default bias: zeros
    if ctx.role == "out_proj":
        return TorchDefault(zero_bias=True)
    return TorchDefault()


def _keras(ctx: LayerContext) -> Initializer:
    """What Keras's layers draw: ``Embedding`` U(-0.05, 0.05); ``MultiHeadAttention``'s glorot_uniform
    on (d, heads, head_dim) kernels (output (heads, head_dim, d)), whose fans Keras counts with the
    first axes as a receptive field: Var = 2/(d*(heads + head_dim)), 2/(heads*(head_dim + d))."""
    if ctx.role in ("embedding", "positions"):
        return Uniform(-0.05, 0.05)
    if ctx.role in ("q", "k", "v", "out_proj"):
        heads = max(ctx.heads, 1)
        if ctx.role == "out_proj":
            inner, d = ctx.fans
            fan_in, fan_out = inner, d * heads
        else:
            d, inner = ctx.fans
            fan_in, fan_out = d * heads, d * (inner // heads)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return Uniform(-bound, bound)
    return VarianceScaling("keras_default", 1.0, 1.0, "fan_avg", "uniform")


class _Preset(Initializer):
    """An initializer that is a plain one per role (`for_role`); sampled directly, it is its rule for
    a dense or conv weight. Zero biases, for weights only."""

    weight_only = True

    def for_role(self, ctx: LayerContext) -> Initializer:
        raise NotImplementedError

    def sample(self, rng, ctx):
        return self.for_role(ctx).sample(rng, ctx)

    def variance(self, ctx):
        return self.for_role(ctx).variance(ctx)

    def mean(self, ctx):
        return self.for_role(ctx).mean(ctx)

    def default_bias(self):
        return Constant("zeros", 0.0)


@dataclass(repr=False)
class GPT2(_Preset):
    """Radford et al. 2019, sec. 2.3 (and HF's GPT2PreTrainedModel._init_weights): every weight
    N(0, std^2), std 0.02, the two that add to the stream in each block (attention's and the MLP's
    output projections) N(0, (std/sqrt(2L))^2), L blocks; zero biases."""

    std: float = 0.02
    name: str = "gpt2"

    def for_role(self, ctx):
        if ctx.role in RESIDUAL_OUT and ctx.blocks:
            return Normal("normal", self.std / math.sqrt(2.0 * ctx.blocks))
        return Normal("normal", self.std)

    def __str__(self):
        return "gpt2" if self.std == 0.02 else f"gpt2:std={fmt_number(self.std)}"


def tfixup_scale(blocks: int, causal: bool) -> float:
    """T-Fixup's factor on v, the output projections and the MLP (Huang et al. 2020, sec. 3.3): a
    decoder's (9N)^(-1/4), an encoder's 0.67 N^(-1/4); N = L blocks (1 when there are none)."""
    n = max(blocks, 1)
    return (9.0 * n) ** -0.25 if causal else 0.67 * n**-0.25


@dataclass(repr=False)
class TFixup(_Preset):
    """T-Fixup (Huang et al. 2020, ICML, sec. 3.3): Xavier (uniform) for every weight but the input
    embedding, which is N(0, d^-1/2) (std d^-1/2, the authors' code); then v, the attention output
    projection, the MLP's weights and the input embedding scaled by (9N)^(-1/4) in a decoder (causal
    attention), by 0.67 N^(-1/4) in an encoder (the embedding by (9N)^(-1/4) in both, as the code
    does). Learned positions N(0, d^-1/2) unscaled (fairseq's). Meant for stacks without norms."""

    name: str = "t_fixup"

    def for_role(self, ctx):
        c = tfixup_scale(ctx.blocks, ctx.causal)
        if ctx.role == "embedding":
            return Normal("normal", ctx.fans.fan_in**-0.5 * tfixup_scale(ctx.blocks, True))
        if ctx.role == "positions":
            return Normal("normal", ctx.fans.fan_in**-0.5)
        if ctx.role in _BRANCH:
            return VarianceScaling("variance_scaling", c * c, 1.0, "fan_avg", "uniform")
        return _xavier("uniform")


def deepnet_beta(blocks: int) -> float:
    """DeepNet's init gain for an encoder-only or decoder-only stack of N blocks (Wang et al. 2022,
    Table 1): beta = (8N)^(-1/4); N = L blocks (1 when there are none)."""
    return (8.0 * max(blocks, 1)) ** -0.25


@dataclass(repr=False)
class DeepNet(_Preset):
    """DeepNet (Wang et al. 2022, Figure 2): xavier_normal_ with gain beta = (8N)^(-1/4) for v, the
    output projection and the MLP's weights, gain 1 for q and k (and a dense layer); embeddings,
    positions and the unembedding N(0, 1/d) (torchscale's). Goes with norm = "deepnorm" (post-norm
    with the shortcut scaled by alpha = (2N)^(1/4)); the same constants for decoder-only and
    encoder-only stacks."""

    name: str = "deepnet"

    def for_role(self, ctx):
        if ctx.role in ("embedding", "positions", "unembedding"):
            return Normal("normal", ctx.fans.fan_in**-0.5)
        if ctx.role in _BRANCH:
            return _xavier("normal", deepnet_beta(ctx.blocks))
        return _xavier("normal")


@dataclass(repr=False)
class SmallInitEmb(_Preset):
    """SmallInitEmb (Peng, BlinkDL/SmallInitEmb 2022; RWKV): the token embedding U(-a, a), a = 1e-4,
    with a LayerNorm after it (the spec's: an embedding followed by layernorm, or the first block's
    pre-norm); learned positions zero, as its author asks with absolute positions; every other
    weight N(0, 0.02) (minGPT's, which its demo builds on)."""

    a: float = 1e-4
    name: str = "small_init_emb"

    def for_role(self, ctx):
        if ctx.role == "embedding":
            return Uniform(-self.a, self.a)
        if ctx.role == "positions":
            return Constant("zeros", 0.0)
        return Normal("normal", 0.02)

    def __str__(self):
        return "small_init_emb" if self.a == 1e-4 else f"small_init_emb:a={fmt_number(self.a)}"


PRESETS = {"gpt2": GPT2, "t_fixup": TFixup, "deepnet": DeepNet, "small_init_emb": SmallInitEmb}
