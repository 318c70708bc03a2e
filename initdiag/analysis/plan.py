"""A probe's plan: the rows of a resolved stack with, per row, the context, initializers and
activation of its weights (`token_build.Draw`s for a row of several), and what each row is for
`judge` (`row_infos`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..core.activations import Activation, get_activation
from ..core.initializers import FromFile, Initializer, LayerContext, compute_fans, units_of
from ..network.graph import Graph, rows
from ..network.kinds import KINDS, NORM_KINDS
from ..network.settings import ProbeSettings
from ..network.stack import StackSpec
from . import token_build
from .gains import MIN_DEAD_SAMPLES
from .judge import RowInfo


class _Plan(NamedTuple):
    """A resolved stack ready to sample: its rows, and per row the weight context and initializers
    (None for a row without weights, or with several: those have their `token_build.Draw`s in
    ``draws``) and the activation."""

    spec: StackSpec
    graph: Graph
    contexts: tuple[LayerContext | None, ...]
    inits: tuple[Initializer | None, ...]
    bias_inits: tuple[Initializer | None, ...]
    acts: tuple[Activation, ...]
    draws: tuple[tuple, ...] = ()  # per row: the Draws of its weights (empty for the others)


def _plan(spec: StackSpec, dtype: str) -> _Plan:
    """The rows of a resolved stack with their objects: no text is parsed here (`StackSpec.resolve`
    did it once)."""
    from ..core.role_inits import for_role

    graph = rows(spec)
    linear = get_activation("linear")
    contexts, inits, bias_inits, acts, draws = [], [], [], [], []
    for row in graph.rows:
        layer = row.layer
        takes = KINDS[layer.kind].takes_act or row.kind == "dense"
        act = layer.act if row.kind != "residual" and takes and layer.act is not None else linear
        ctx = init = bias = None
        draws.append(token_build.draws(row, graph, spec.role_init, act, dtype) if row.params else ())
        if row.weight_shape is not None and not row.params:
            fans = compute_fans(row.weight_shape)
            ctx = LayerContext(row.name, row.weight_shape, fans, act, np.dtype(dtype), blocks=graph.n_blocks,
                               causal=graph.causal)  # fmt: skip
            init = for_role(layer.init, ctx)
            if row.kind != "residual":  # a shortcut projection has no bias
                bias = layer.bias_init if layer.bias_init is not None else _default_bias(init)
        contexts.append(ctx)
        inits.append(init)
        bias_inits.append(bias)
        acts.append(act)
    return _Plan(spec, graph, tuple(contexts), tuple(inits), tuple(bias_inits), tuple(acts), tuple(draws))


@dataclass(repr=False)
class _FileBias(Initializer):
    """The bias of a ``file:`` layer: ``NAME.bias`` from the same archive, else zeros."""

    source: FromFile
    name: str = "file-bias"

    def sample(self, rng, ctx):
        bias = self.source.bias(ctx)
        return np.zeros(ctx.shape, dtype=ctx.dtype) if bias is None else bias

    def __str__(self):
        return f"{self.source}[bias or zeros]"


def _default_bias(init: Initializer) -> Initializer:
    return _FileBias(init) if isinstance(init, FromFile) else init.default_bias()


def _bias_context(ctx: LayerContext) -> LayerContext:
    """The bias's context: one value per output unit, the weight's fans (torch_default uses them)."""
    return ctx._replace(shape=(units_of(ctx.shape),))


def _norm_values(row) -> int:
    """The values a layer or RMS norm normalizes over: a whole sample, or each token's d."""
    return row.out_shape[-1] if len(row.out_shape) == 2 or row.kind == "rmsnorm" else math.prod(row.out_shape)


def row_infos(plan: _Plan, settings: ProbeSettings) -> list[RowInfo]:
    """What each row is, for `judge`: names, fans, act and inits as text, what it does not have."""
    infos = []
    for row, ctx, init, bias, row_draws in zip(plan.graph.rows, plan.contexts, plan.inits, plan.bias_inits,
                                               plan.draws, strict=True):  # fmt: skip
        absent = set()
        weighted = ctx is not None or row_draws or row.tied_to
        if not weighted and row.kind not in NORM_KINDS:  # no weights: nothing to report
            absent |= {"weight_std", "grad_weight_var", "grad_weight_ratio", "weight_rms", "grad_weight_rms"}
        if row.kind not in ("dense", "conv2d", *token_build.TOKEN_KINDS) or row.kind == "position_embedding":
            absent.add("distinct_units")
        if row.kind == "embedding":  # token ids have no gradient, and no scale to gain from
            absent |= {"grad_input_var", "data_gain"}
        positions = row.positions
        values = {"batchnorm": settings.batch * positions, "layernorm": _norm_values(row),
                  "rmsnorm": _norm_values(row)}  # fmt: skip
        fans = ctx.fans if ctx else None
        if row_draws or row.tied_to:  # the reported weight's: W_qkv (d, 3 inner), W_in, a table's (d, vocab)
            shape = row.weight_shape or (row.in_shape[-1], row.out_shape[-1])
            fans = row.params[0].fans if row.kind in ("embedding", "position_embedding") else shape
        shown_init = (
            token_build.init_text(row_draws) if row_draws else (str(init) if init is not None else None)
        )
        if row.tied_to:
            shown_init = f"tied to {row.tied_to}"
        takes_act = KINDS[row.layer.kind].takes_act or row.kind == "mlp"
        infos.append(
            RowInfo(
                name=row.name,
                kind=row.kind,
                fan_in=fans[0] if fans else None,
                fan_out=fans[1] if fans else None,
                act=str(row.layer.act)
                if takes_act and row.kind not in ("attention", "stream_add") and row.layer.act is not None
                else None,
                init=shown_init,
                bias_init=_bias_text(row_draws) if row_draws else (str(bias) if bias is not None else None),
                units=row.units,
                output_shape=row.out_shape,
                depth=row.depth,
                dead_judged=settings.batch * row.positions >= MIN_DEAD_SAMPLES,
                absent=frozenset(absent),
                norm_values=values.get(row.kind),
                norm_positions=positions if row.kind == "batchnorm" else 1,
                block=row.block,
                structured=True,
            )
        )
    return infos


def _bias_text(row_draws) -> str | None:
    texts = sorted({str(d.bias) for d in row_draws if d.bias is not None})
    return ", ".join(texts) if texts else None
