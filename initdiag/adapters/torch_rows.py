"""The rows a probe of a PyTorch module measured, turned into the `ProbeResult` of a spec probe:
the graph of the leaves that ran (weights in initdiag's (fan_in, fan_out) layout), then the same
`analysis.judge` a spec probe uses (the mean over trials of every statistic, every trial judged), so
a model's rows are judged exactly as a spec stack's. No torch here: the hooks left plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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


@dataclass
class TrialData:
    """What one trial measured: its rows, its loss, and what forward() did where no hook looks."""

    rows: list[RowData]
    loss: float
    unseen: list  # `torch_probe.Unseen`: rows whose input forward() computed
    gaps: list  # `torch_probe.Gap`: poolings forward() did itself
    data_sq: float | None  # E[x^2] of the data (None for token ids)
    outputs: tuple = ()  # (name, shape per sample) of each output the loss reached
    used: list = field(default_factory=list)  # those outputs (`torch_outputs.Output`)
    skipped: list = field(default_factory=list)  # the tensors it returned that get no loss, and why
    heads: list = field(default_factory=list)  # the rows whose outputs make the model's outputs


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
    trials_data: list[TrialData],
    losses: list[float],
    settings: ProbeSettings,
    spec: ModelSpec,
    weight_init,
) -> ProbeResult:
    """The `ProbeResult` of the rows every trial measured (the same modules each time, or an error),
    judged as a spec probe's are (`analysis.judge`)."""
    first = trials_data[0].rows
    names = [r.name for r in first]
    for trial in trials_data[1:]:
        if [r.name for r in trial.rows] != names:
            raise InitdiagError("the model ran different modules from one trial to the next; use --trials 1")
    if not any(r.kind in _HAS_WEIGHTS for r in first):
        raise InitdiagError("nothing to diagnose: the model has no dense or conv layer")
    graph = _graph(first)
    raws = []
    for trial in trials_data:
        rows = trial.rows
        raw = {key: np.array([_number(r.values.get(key)) for r in rows]) for key in _RAW_KEYS}
        with np.errstate(all="ignore"):
            raw["grad_weight_rms"] = np.sqrt(raw["grad_weight_sq"])
            if trial.data_sq is not None:  # a row at the input is judged from the data (`data_gains`)
                raw["data_sq"] = np.full(len(rows), trial.data_sq)
            raw["pool_fwd"], raw["pool_bwd"] = _pool_factors(trial)
            reference = _backward_reference(trial)
            if reference is not None:
                raw["backward_reference_sq"] = reference
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


def _pool_factors(trial: TrialData) -> tuple[np.ndarray, np.ndarray]:
    """The change of the second moment a pooling forward() does itself makes (`cumulative_gains`
    divides it out, as a pooling module's): forward, at the row that reads the pooled values, their
    E[x^2] over the E[y^2] of the output pooled; backward, at the row whose output was pooled, its
    E[(dL/dy)^2] over the E[(dL/dx)^2] of the pooled values (a mean over P positions passes each
    position 1/P of the gradient: E[g^2] falls P^2-fold)."""
    index = {id(r): i for i, r in enumerate(trial.rows)}
    fwd, bwd = np.ones(len(trial.rows)), np.ones(len(trial.rows))
    for gap in trial.gaps:
        source, row = gap.source.values, gap.row.values
        fwd[index[id(gap.row)]] *= _ratio(row.get("input_sq"), source.get("output_sq"))
        bwd[index[id(gap.source)]] *= _ratio(source.get("grad_output_sq"), row.get("grad_input_sq"))
    return fwd, bwd


def _backward_reference(trial: TrialData) -> np.ndarray | None:
    """The E[(dL/dx)^2] each row's backward gain is measured against: at the rows that make the
    model's outputs (its heads), their own, and elsewhere the sum of theirs, what all outputs send
    back (independent targets: their gradients add in E[g^2]). One head that is the last row gives
    a spec probe's reference, the last row's. None: no head found (forward() alone made them)."""
    index = {id(r): i for i, r in enumerate(trial.rows)}
    heads = [index[id(row)] for row in trial.heads if id(row) in index]
    if not heads:
        return None
    sq = np.array([_number(r.values.get("grad_input_sq")) for r in trial.rows])
    out = np.full(len(sq), sq[heads].sum())
    out[heads] = sq[heads]
    return out


def _ratio(num, den) -> float:
    num, den = _number(num), _number(den)
    return num / den if den and math.isfinite(den) and math.isfinite(num) else 1.0


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
