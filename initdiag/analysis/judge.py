"""From every trial's raw statistics to a probe's rows and summary, for a spec stack (`probe`) and a
PyTorch module (`adapters.torch_rows`) alike.

What is shown is the mean over trials of each statistic, with its spread (``sd``); what is judged is
every trial on its own numbers: a layer carries the flags of any trial (``flag_trials`` says which,
when not all), and the verdict is the worst trial's, its reasons saying in which trial. A mean can sit
inside the limits while one draw of the weights is outside them, and a wrong "ok" is the worst defect.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from ..network.graph import Graph
from ..network.settings import FLAGS, ProbeSettings
from .blocks import TOKEN_STAT_KEYS, stream_growth, token_rows
from .gains import (
    block_branch_rows,
    cumulative_gains,
    data_gains,
    erased_rows,
    forward_references,
    input_rows,
    norm_blocked,
    zero_scale_blocks,
)
from .result import STAT_KEYS, LayerStats, Summary, judged_kinds
from .verdict import flag_sources, judgement, layer_flags, summarize

# the per-row second moments that decide a layer gets no signal or no gradient
ZERO_KEYS = ("preact_sq", "grad_input_sq", "grad_weight_sq")


class RowInfo(NamedTuple):
    """What a row is, besides its statistics."""

    name: str
    kind: str
    fan_in: int | None
    fan_out: int | None
    act: str | None
    init: str | None
    bias_init: str | None
    units: int
    output_shape: tuple[int, ...]
    depth: int
    dead_judged: bool
    absent: frozenset[str] = frozenset()  # statistics the row does not have (JSON null)
    norm_values: int | None = None  # a normalization row: values per unit it normalizes over
    norm_positions: int = 1  # ... of which one sample gives this many
    block: str | None = None  # the transformer block the row is part of
    structured: bool = False  # a row of initdiag's own stack (not a model's): see `result.judged_kinds`


def judge(
    graph: Graph,
    infos: list[RowInfo],
    raws: list[dict],
    losses: list[float],
    settings: ProbeSettings,
    spec,
    weighted=None,
) -> tuple[list[LayerStats], Summary]:
    """The rows (means over the trials, flagged by every trial) and the summary (the worst trial's
    verdict) of *raws*, one dict of per-row arrays per trial. *weighted(row)*: which rows have
    weights (`input_rows`)."""
    t = settings.thresholds
    at_input = input_rows(graph, weighted)
    structure = {
        "at_input": at_input,
        "erased": erased_rows(graph),
        "references": forward_references(graph),
        "zero_scale": zero_scale_blocks(graph),
        "blocked": norm_blocked(graph, {i for i, info in enumerate(infos) if info.norm_values == 2}),
        "branch": block_branch_rows(graph),
        "token": token_rows(graph),
    }
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for raw in raws:
            raw["forward_gain"], raw["backward_gain"] = cumulative_gains(graph, raw)
            raw["data_gain"] = data_gains(graph, raw, at_input)
            if "residual_sq" in raw:  # initdiag's own stack (a model's rows have none)
                raw["stream_growth"] = stream_growth(graph, raw["residual_sq"])
        per_trial = [
            _rows(graph, infos, raw, {key: raw[key] == 0 for key in ZERO_KEYS}, {}, structure, t)
            for raw in raws
        ]
        if len(raws) == 1:
            layers = per_trial[0]
        else:
            keys = (*STAT_KEYS, *(k for k in TOKEN_STAT_KEYS if k in raws[0]))
            stacked = {key: np.array([r[key] for r in raws]) for key in keys}
            means = {key: stacked[key].mean(axis=0) for key in keys}
            means["bias_spread"] = np.mean([r.get("bias_spread", np.zeros(len(infos))) for r in raws], axis=0)
            means["grad_norms"] = {
                i: {key: float(np.mean([r["grad_norms"][i][key] for r in raws])) for key in norms}
                for i, norms in raws[0].get("grad_norms", {}).items()
            }
            sds = {key: stacked[key].std(axis=0, ddof=1) for key in keys}
            zeros = {key: np.all([r[key] == 0 for r in raws], axis=0) for key in ZERO_KEYS}
            layers = _rows(graph, infos, means, zeros, sds, structure, t)
            for i, stats in enumerate(layers):
                _union_of_trials(stats, [rows[i] for rows in per_trial])
    summary = summarize(layers, losses, settings, spec, [judgement(rows, t) for rows in per_trial])
    return layers, summary


def _rows(graph: Graph, infos: list[RowInfo], values: dict, zeros: dict, sds: dict, structure: dict,
          t) -> list[LayerStats]:  # fmt: skip
    """One `LayerStats` per row from per-row arrays (one trial's, or the means), flagged."""
    stops = np.flatnonzero(zeros["grad_input_sq"])  # rows that pass no gradient back
    last_stop = int(stops[-1]) if stops.size else -1
    at_input, erased, blocked = structure["at_input"], structure["erased"], structure["blocked"]
    out = []
    for row, info in zip(graph.rows, infos, strict=True):
        i = row.index
        numbers = {key: None if key in info.absent else float(values[key][i]) for key in STAT_KEYS}
        taken = structure["token"].get(i, set()) if info.structured else set()
        token = {key: float(values[key][i]) if key in values else None for key in TOKEN_STAT_KEYS}
        token = {key: value if _TAKEN_BY[key] & taken else None for key, value in token.items()}
        if token["stream_growth"] is not None and math.isnan(token["stream_growth"]):
            token["stream_growth"] = None  # the first block, the stream's start: nothing to compare
        judged = info.kind in judged_kinds(info.structured)
        gains_judged = judged and i not in structure["branch"]
        if not gains_judged or i not in at_input:
            numbers["data_gain"] = None
        stop, stop_kind = None, None
        if row.weight_shape is not None and i in blocked:
            stop = blocked[i]
            stop_kind = next(x.kind for x in infos if x.name == stop)
        elif row.weight_shape is not None and zeros["grad_weight_sq"][i] and not zeros["preact_sq"][i]:
            stop, stop_kind = structure["zero_scale"].get(i), "zero-scale"
            if stop is None:  # the last row at or after it whose dL/dx is 0 (or itself: all units dead)
                stop, stop_kind = graph.rows[max(i, last_stop)].name, None
        stats = LayerStats(
            name=info.name,
            kind=info.kind,
            fan_in=info.fan_in,
            fan_out=info.fan_out,
            act=info.act,
            init=info.init,
            bias_init=info.bias_init,
            **numbers,
            sd={key: float(sds[key][i]) for key in sds if {**numbers, **token}[key] is not None},
            **token,
            grad_weight_norm=values.get("grad_norms", {}).get(i) if info.structured else None,
            units=info.units,
            output_shape=info.output_shape,
            depth=info.depth,
            # the dL/dx of a row at the input is the gradient of the data, which trains nothing (He
            # et al. 2015, sec. 2.2: "we need not compute dx_1 because it represents the image
            # domain"), and a scale that a later normalization layer erases does not reach the
            # output; behind a norm over 2 values, the measured gradient is its eps's artefact
            # an unembedding's small logits are a language model's uniform first prediction (loss log
            # vocab), by design: its forward gain is judged only when it grows
            gain_judged=(
                gains_judged
                and i not in erased
                and not (info.kind == "unembedding" and numbers["forward_gain"] < 1),
                gains_judged and i not in at_input and i not in blocked,
            ),
            forward_reference=graph.rows[structure["references"][i]].name,
            silent=judged and bool(zeros["preact_sq"][i]),
            gradient_stop=stop,
            stop_kind=stop_kind,
            dead_judged=info.dead_judged,
            bias_varies=bool(values["bias_spread"][i] > 0) if "bias_spread" in values else False,
            norm_values=info.norm_values,
            norm_positions=info.norm_positions,
            block=info.block,
        )
        stats.flags = layer_flags(stats, t)
        stats.mean_flags = list(stats.flags)
        stats.flag_sources = flag_sources(stats, t)
        out.append(stats)
    return out


# the statistics each kind of token row takes (`blocks.token_rows`)
_TAKEN_BY = {
    "residual_sq": {"stream"}, "token_cosine": {"stream"}, "stream_growth": {"stream"},
    "branch_var": {"branch"}, "attn_logit_std": {"attention"}, "attn_entropy": {"attention"},
}  # fmt: skip


def _union_of_trials(stats: LayerStats, trials: list[LayerStats]) -> None:
    """The flags of a row of means: every trial's, with the sources of each and the trials that
    raised it (`flag_trials`, when not all did)."""
    flags = {f for x in trials for f in x.flags} | set(stats.flags)
    stats.flags = [f for f in FLAGS if f in flags]
    sources: dict[str, list[str]] = {}
    for x in (stats, *trials):
        for flag, found in x.flag_sources.items():
            sources.setdefault(flag, [])
            sources[flag] += [s for s in found if s not in sources[flag]]
    stats.flag_sources = sources
    stats.flag_trials = {}
    for flag in stats.flags:
        hit = [k for k, x in enumerate(trials, start=1) if flag in x.flags]
        if len(hit) < len(trials):
            stats.flag_trials[flag] = hit
