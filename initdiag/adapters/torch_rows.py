"""The rows a probe of a PyTorch module measured, turned into the `ProbeResult` of a spec probe:
the graph of the leaves that ran (weights in initdiag's (fan_in, fan_out) layout), the mean over
trials of every statistic, and the flags, gains and verdict from `analysis.verdict`, so a model's
rows are judged exactly as a spec stack's. No torch here: the hooks left plain numbers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.result import GAIN_JUDGED_KINDS, LayerStats, ProbeResult
from ..analysis.verdict import (
    cumulative_gains,
    erased_rows,
    flag_sources,
    forward_references,
    input_rows,
    layer_flags,
    summarize,
)
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


_STAT_KEYS = (
    "weight_std", "preact_mean", "preact_var", "act_mean", "act_var", "grad_input_var", "grad_weight_var",
    "grad_weight_ratio", "dead_fraction", "saturated_fraction", "distinct_units",
)  # fmt: skip
_RAW_KEYS = (*_STAT_KEYS, "preact_sq", "grad_input_sq", "input_sq", "grad_output_sq", "grad_weight_sq")


def model_result(
    trials_data: list[list[RowData]],
    losses: list[float],
    settings: ProbeSettings,
    spec: ModelSpec,
    weight_init,
) -> ProbeResult:
    """The `ProbeResult` of the rows every trial measured (the same modules each time, or an error)."""
    first = trials_data[0]
    names = [r.name for r in first]
    for rows in trials_data[1:]:
        if [r.name for r in rows] != names:
            raise InitdiagError("the model ran different modules from one trial to the next; use --trials 1")
    graph = _graph(first)
    raws = []
    for rows in trials_data:
        raw = {key: np.array([_number(r.values.get(key)) for r in rows]) for key in _RAW_KEYS}
        raw["forward_gain"], raw["backward_gain"] = cumulative_gains(graph, raw)
        raws.append(raw)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        keys = (*_STAT_KEYS, "forward_gain", "backward_gain")
        stacked = {key: np.array([r[key] for r in raws]) for key in keys}
        means = {key: stacked[key].mean(axis=0) for key in keys}
        sds = {key: stacked[key].std(axis=0, ddof=1) for key in keys} if settings.trials > 1 else {}
        zeros = {key: np.mean([r[key] for r in raws], axis=0) == 0 for key in ("preact_sq", "grad_input_sq",
                                                                               "grad_weight_sq")}  # fmt: skip
    references, erased, at_input = forward_references(graph), erased_rows(graph), input_rows(graph)
    stops = np.flatnonzero(zeros["grad_input_sq"])
    last_stop = int(stops[-1]) if stops.size else -1
    layers = []
    for i, row in enumerate(first):
        values = {key: (None if first[i].values.get(key) is None and key in (
            "weight_std", "grad_weight_var", "grad_weight_ratio", "distinct_units", "grad_input_var")
            else float(means[key][i])) for key in keys}  # fmt: skip
        weighted = graph.rows[i].weight_shape is not None
        fans = compute_fans(graph.rows[i].weight_shape) if weighted else None
        judged = row.kind in GAIN_JUDGED_KINDS
        act = row.act
        stats = LayerStats(
            name=row.name, kind=row.kind, fan_in=fans.fan_in if fans else None,
            fan_out=fans.fan_out if fans else None, act=str(act) if act is not None else None,
            init=str(weight_init) if weight_init is not None and weighted else None, bias_init=None,
            **values, sd={k: float(sds[k][i]) for k in sds if values[k] is not None},
            units=row.units,
            output_shape=row.out_shape, depth=graph.rows[i].depth,
            gain_judged=(judged and i not in erased, judged and i not in at_input),
            forward_reference=graph.rows[references[i]].name,
            silent=judged and bool(zeros["preact_sq"][i]),
            gradient_stop=(graph.rows[max(i, last_stop)].name if weighted and zeros["grad_weight_sq"][i]
                           and not zeros["preact_sq"][i] else None),
            dead_judged=settings.batch * row.positions >= 10,
        )  # fmt: skip
        stats.flags = layer_flags(stats, settings.thresholds)
        stats.flag_sources = flag_sources(stats, settings.thresholds)
        layers.append(stats)
    summary = summarize(layers, losses, settings, spec)
    return ProbeResult(spec=spec, settings=settings, layers=layers, summary=summary)


def _number(value) -> float:
    return math.nan if value is None else float(value)
