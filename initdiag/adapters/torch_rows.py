"""The rows a probe of a PyTorch module measured, turned into the `ProbeResult` of a spec probe:
the graph of the leaves that ran (weights in initdiag's (fan_in, fan_out) layout), then the same
`analysis.judge` a spec probe uses (the mean over trials of every statistic, every trial judged), so
a model's rows are judged exactly as a spec stack's. No torch here: the hooks left plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.gains import MIN_DEAD_SAMPLES
from ..analysis.judge import RowInfo, judge
from ..analysis.result import ProbeResult
from ..core.activations import Activation
from ..core.initializers import compute_fans
from ..errors import InitdiagError
from ..network.graph import Graph, Row
from ..network.model import ModelSpec
from ..network.settings import ProbeSettings

WEIGHTED = ("dense", "conv1d", "conv2d", "conv3d")


@dataclass
class RowData:
    """What the hooks measure for one call of one module (one trial)."""

    name: str
    module: Any
    kind: str
    ordinal: int  # the module's position among the leaves (the stream of its re-drawn weights)
    in_shape: tuple = ()
    out_shape: tuple = ()
    values: dict | None = None
    channels_first: bool = False  # its output's units are axis 1 (after a convolution), not the last
    act: Activation | None = None  # for an activation module, initdiag's activation

    @property
    def units(self) -> int:
        if not self.out_shape:
            return 1
        return self.out_shape[0] if self.channels_first and len(self.out_shape) >= 2 else self.out_shape[-1]

    @property
    def positions(self) -> int:
        """Values each unit has per sample (an image's pixels, a sequence's tokens)."""
        return max(1, math.prod(self.out_shape) // self.units) if self.out_shape else 1


def _graph(rows: list[RowData]) -> Graph:
    made = []
    for i, row in enumerate(rows):
        weight = getattr(row.module, "weight", None)
        shape = tuple(weight.shape) if row.kind in WEIGHTED and weight is not None else None
        if shape is not None and row.kind == "dense":
            shape = (shape[1], shape[0])
        depth = row.name.split("#")[0].count(".")
        made.append(Row(i, row.name, row.kind, None, (), depth, row.in_shape, row.out_shape or (1,), shape))
    return Graph(tuple(made), tuple(range(len(made))))


_MEASURED = (
    "weight_std", "preact_mean", "preact_var", "act_mean", "act_var", "grad_input_var", "grad_weight_var",
    "grad_weight_ratio", "dead_fraction", "saturated_fraction", "distinct_units", "weight_rms",
)  # fmt: skip
_RAW_KEYS = (*_MEASURED, "preact_sq", "grad_input_sq", "input_sq", "grad_output_sq", "grad_weight_sq",
             "bias_spread")  # fmt: skip
# a module without them shows these as null (no weight, no units of its own, no gradient input)
_MAY_LACK = ("weight_std", "grad_weight_var", "grad_weight_ratio", "distinct_units", "grad_input_var")
# modules with weights of their own, for which rows see only the data (`input_rows`)
_HAS_WEIGHTS = (*WEIGHTED, "embedding", "attention")


def model_result(
    trials_data: list[list[RowData]],
    losses: list[float],
    settings: ProbeSettings,
    spec: ModelSpec,
    weight_init,
) -> ProbeResult:
    """The `ProbeResult` of the rows every trial measured (the same modules each time, or an error),
    judged as a spec probe's are (`analysis.judge`)."""
    first = trials_data[0]
    names = [r.name for r in first]
    for rows in trials_data[1:]:
        if [r.name for r in rows] != names:
            raise InitdiagError("the model ran different modules from one trial to the next; use --trials 1")
    if not any(r.kind in _HAS_WEIGHTS for r in first):
        raise InitdiagError("nothing to diagnose: the model has no dense or conv layer")
    graph = _graph(first)
    raws = []
    for rows in trials_data:
        raw = {key: np.array([_number(r.values.get(key)) for r in rows]) for key in _RAW_KEYS}
        with np.errstate(all="ignore"):
            raw["grad_weight_rms"] = np.sqrt(raw["grad_weight_sq"])
        raws.append(raw)
    infos = []
    for i, row in enumerate(first):
        weighted = graph.rows[i].weight_shape is not None
        fans = compute_fans(graph.rows[i].weight_shape) if weighted else None
        absent = {key for key in _MAY_LACK if row.values.get(key) is None}
        if row.values.get("weight_std") is None:
            absent |= {"weight_rms", "grad_weight_rms"}
        infos.append(
            RowInfo(
                name=row.name,
                kind=row.kind,
                fan_in=fans.fan_in if fans else None,
                fan_out=fans.fan_out if fans else None,
                act=str(row.act) if row.act is not None else None,
                init=str(weight_init) if weight_init is not None and weighted else None,
                bias_init=None,
                units=row.units,
                output_shape=row.out_shape,
                depth=graph.rows[i].depth,
                dead_judged=settings.batch * row.positions >= MIN_DEAD_SAMPLES,
                absent=frozenset(absent),
                norm_values=_norm_values(row, settings.batch),
                norm_positions=row.positions if row.kind == "batchnorm" else 1,
            )
        )
    layers, summary = judge(
        graph, infos, raws, losses, settings, spec, weighted=lambda r: first[r.index].kind in _HAS_WEIGHTS
    )
    return ProbeResult(spec=spec, settings=settings, layers=layers, summary=summary)


def _norm_values(row: RowData, batch: int) -> int | None:
    """The values a normalization module normalizes each unit over: a batch norm's batch x positions,
    a layer norm's normalized shape."""
    if row.kind == "batchnorm":
        return batch * row.positions
    if row.kind == "layernorm":
        shape = getattr(row.module, "normalized_shape", None)
        return math.prod(shape) if shape else None
    return None


def _number(value) -> float:
    return math.nan if value is None else float(value)
