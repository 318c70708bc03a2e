"""The transformer rows of a probe: their weights' initializers by role (`draws`), sampled each from
its own stream (`sample`), and the layer objects of `core.transformer` built from them (`make_layer`,
`make_block`). `probe` calls these for the rows of the token kinds; everything else is as for a
dense or conv row.

Random streams: weight ``p`` of row ``i`` (in `network.graph.Row.params` order) and its bias draw
from ``SeedSequence(seed, spawn_key=(trial, 2, i, p))``, so changing one weight's initializer never
changes another's numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..core.initializers import Fans, Initializer, LayerContext
from ..core.role_inits import ROLES, for_role
from ..core.stats import distinct_columns
from ..errors import InitdiagError
from ..network.graph import Graph, Param, Row, deepnorm_alpha
from .inputs import stream

if TYPE_CHECKING:
    from ..core.transformer import TransformerBlock

LAYER_STREAM = 2
TOKEN_KINDS = ("embedding", "position_embedding", "attention", "mlp", "unembedding")


class Draw(NamedTuple):
    """One weight of a row: what it is, its context, the initializer chosen (a preset or a plain one,
    as the spec names it) and the plain one its role gives, and the bias's initializer (None: no bias)."""

    param: Param
    ctx: LayerContext
    chosen: Initializer
    init: Initializer
    bias: Initializer | None


def draws(row: Row, graph: Graph, role_init: dict, act, dtype) -> tuple[Draw, ...]:
    """The draws of a row's weights: each role's ``[init]`` override, else the layer's init, read for
    the role (`role_inits.for_role`); the bias the layer's bias_init, else that initializer's own."""
    layer = row.layer
    heads = layer.heads or 1 if layer.kind in ("attention", "transformer") else 1
    out = []
    for param in row.params:
        ctx = LayerContext(f"{row.name}.{param.key}", param.shape, Fans(*param.fans), act, np.dtype(dtype),
                           param.role, graph.n_blocks, graph.causal, heads)  # fmt: skip
        chosen = role_init.get(param.role) if param.role in ("q", "k", "v") else None  # q, k, v over qkv
        chosen = chosen or role_init.get(ROLES[param.role]) or layer.init
        if chosen.data_driven:
            raise InitdiagError(
                f"layer {row.name}: {chosen} rescales a dense or conv layer's weight to unit output "
                f"variance, not those of this {row.kind} layer ({', '.join(p.key for p in row.params)}); use "
                "it on dense and conv stacks, or give this layer another init"
            )
        init = for_role(chosen, ctx)
        bias = None
        if param.bias is not None:
            bias = layer.bias_init if getattr(layer, "bias_init", None) is not None else init.default_bias()
        out.append(Draw(param, ctx, chosen, init, bias))
    return tuple(out)


def init_text(row_draws: tuple[Draw, ...]) -> str:
    """The row's initializer as the table shows it: the one chosen, or each role's when they differ."""
    chosen = {}
    for d in row_draws:
        chosen.setdefault(ROLES[d.param.role], str(d.chosen))
    if len(set(chosen.values())) == 1:
        return next(iter(chosen.values()))
    return ", ".join(f"{role}={text}" for role, text in chosen.items())


def check(row_draws: tuple[Draw, ...]) -> None:
    """Each initializer's own checks (a file's arrays, shapes), before anything is allocated."""
    for d in row_draws:
        d.init.check(d.ctx)
        if d.bias is not None:
            d.bias.check(d.ctx._replace(shape=(d.param.shape[1],)))


def sample(row_draws: tuple[Draw, ...], seed: int, trial: int, i: int) -> dict[str, np.ndarray]:
    """Every weight and bias of row *i*, by parameter name (``W_q``, ``b_q``, ...)."""
    arrays = {}
    for p, d in enumerate(row_draws):
        rng = stream(seed, trial, LAYER_STREAM, i, p)
        arrays[d.param.key] = d.init.sample(rng, d.ctx)
        if d.bias is not None:
            arrays[d.param.bias] = d.bias.sample(rng, d.ctx._replace(shape=(d.param.shape[1],)))
    return arrays


def make_layer(row: Row, act, arrays: dict, dtype, built: dict):
    """The layer object of a row of a token kind (or a norm or dense layer on a token stream);
    *built* maps the rows made so far to their layers (a tied unembedding reads its table)."""
    # the transformer's layers are imported on first use: a dense probe never loads them (start-up)
    from ..core.transformer import (
        MLP,
        Embedding,
        MultiHeadAttention,
        PositionEmbedding,
        RMSNorm,
        SinusoidalPositions,
        TiedUnembedding,
        TokenDense,
        TokenLayerNorm,
    )

    layer, name, kind = row.layer, row.name, row.kind
    d = row.in_shape[-1]
    if kind == "embedding":
        return Embedding(
            name, row.weight_shape[0], layer.d, scale=layer.get("scale"), params=arrays, dtype=dtype
        )
    if kind == "position_embedding":
        return PositionEmbedding(name, row.weight_shape[0], d, params=arrays, dtype=dtype)
    if kind == "sinusoidal_positions":
        return SinusoidalPositions(name, d)
    if kind == "attention":
        return MultiHeadAttention(name, d, layer.heads, head_dim=layer.head_dim, causal=layer.get("causal"),
                                  bias=layer.get("bias"), qk_norm=layer.get("qk_norm"), keep_logits=False,
                                  params=arrays, dtype=dtype)  # fmt: skip
    if kind == "mlp":
        return MLP(name, d, layer.get("mult"), layer.act, hidden=layer.hidden, bias=layer.get("bias"),
                   params=arrays, dtype=dtype)  # fmt: skip
    if kind == "unembedding" and row.tied_to is not None:
        return TiedUnembedding(name, built[row.tied_to])
    if kind in ("unembedding", "dense"):
        units = row.out_shape[-1]
        return TokenDense(name, d, units, bias=len(arrays) > 1, act=act, params=arrays, dtype=dtype)
    if kind == "layernorm":
        return TokenLayerNorm(name, d, eps=layer.get("eps"), act=act, dtype=dtype)
    if kind == "rmsnorm":
        return RMSNorm(name, d, eps=layer.get("eps"), act=act, dtype=dtype)
    raise AssertionError(kind)


def make_block(rows: list[Row], arrays: dict[int, dict], dtype, n_blocks: int) -> TransformerBlock:
    """One block of a transformer entry from its rows (in `TransformerBlock.layers` order) and the
    arrays sampled for them; deepnorm's alpha is (2N)^(1/4) for the stack's N blocks unless given."""
    from ..core.transformer import TransformerBlock

    first = rows[0]
    layer, block = first.layer, first.block
    norm = layer.get("norm")
    params = {}
    for row in rows:
        short = row.name[len(block) + 1 :]
        params.update({f"{short}.{key}": value for key, value in arrays.get(row.index, {}).items()})
    alpha = (layer.alpha or deepnorm_alpha(n_blocks)) if norm == "deepnorm" else None
    made = TransformerBlock(
        block, first.in_shape[-1], layer.heads, norm=norm, sandwich=layer.get("sandwich"),
        norm_type=layer.get("norm_type"), eps=layer.get("eps"), alpha=alpha, causal=layer.get("causal"),
        bias=layer.get("bias"), qk_norm=layer.get("qk_norm"), head_dim=layer.head_dim,
        mlp_mult=layer.get("mult"), mlp_act=layer.act, mlp_hidden=layer.hidden, keep_logits=False,
        params=params, dtype=dtype,
    )  # fmt: skip
    assert [x.name for x in made.rows] == [row.name for row in rows], (made.rows, rows)
    return made


def distinct_units(layer) -> float:
    """Distinct output units of a token row, counted on what its weights give before its last bias
    (units with equal incoming weights count once whatever their biases); an MLP counts the fewer of
    its hidden units and its outputs (either collapsed is a symmetry its gradients keep)."""
    bias = {"attention": "b_o", "mlp": "b_out", "token_dense": "b"}.get(layer.kind)
    count = distinct_columns(_units(layer.z), _bias(layer, bias))
    if layer.kind == "mlp":
        count = min(count, distinct_columns(_units(layer.hidden_pre), _bias(layer, "b_in")))
    return float(count)


def _units(z):
    return z.reshape(-1, z.shape[-1])


def _bias(layer, name):
    return getattr(layer, name) if name is not None and name in layer.param_names else None
