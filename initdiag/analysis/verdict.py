"""From measurements to a verdict: the cumulative gains (restarting at normalization layers), each
layer's flags, the reasons in words, the summary and its notes."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..network.graph import Block, Graph
from ..network.kinds import NORM_KINDS, POOL_KINDS
from ..network.settings import ProbeSettings, Thresholds
from ..network.stack import StackSpec
from .result import (
    FLAGS,
    MEASURED_KEYS,
    WARN_FRACTION,
    LayerStats,
    Reason,
    Summary,
    format_number,
)

# dead_fraction is judged only when each unit sees at least this many values (batch x positions): a
# unit that fires half the time looks dead on n values with probability 2^-n (1/1024 here)
MIN_DEAD_SAMPLES = 10


def input_rows(graph: Graph) -> set[int]:
    """The rows whose input is the stack's input: the first row, and when the stack opens with
    residual blocks, the sum of each (its dL/dx is the gradient of the data, whole) and the first
    row of each branch. Their backward gain is the data's gradient, which trains nothing."""
    found: set[int] = set()
    item = graph.tree[0] if graph.tree else None
    while isinstance(item, Block):
        found.add(item.sum_row)
        item = item.branch[0] if item.branch else None
    if item is not None:
        found.add(item)
    return found


def erased_rows(graph: Graph) -> set[int]:
    """The rows whose scale a normalization layer erases: every path from them to the output passes
    a norm (a norm follows them in their own sequence, or they end a residual branch whose sum row
    is itself erased). Their forward gain is not judged: no scale of theirs reaches the output."""
    erased: set[int] = set()

    def visit(tree: tuple, outer_erased: bool) -> None:
        normed = outer_erased
        for item in reversed(tree):
            if isinstance(item, Block):
                if normed:
                    erased.add(item.sum_row)
                visit(item.branch, normed)  # the branch ends in the sum
                continue
            if normed:
                erased.add(item)
            if graph.rows[item].kind in NORM_KINDS:
                normed = True

    visit(graph.tree, False)
    return erased


def forward_references(graph: Graph) -> list[int]:
    """For each row, the row its forward gain is measured against: the last normalization row at or
    before it in execution order (a norm erases the scale of everything before it, so that scale
    must not decide a verdict after it), else the first row."""
    refs, current = [], 0
    for row in graph.rows:
        if row.kind in NORM_KINDS:
            current = row.index
        refs.append(current)
    return refs


def cumulative_gains(graph: Graph, raw: dict) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains of every row.

    Forward: E[z_l^2] over E[z_r^2], r the row's reference (`forward_references`: the first row, or
    the last normalization row before it). Backward: E[(dL/dx_l)^2] over the last row's. The
    backward gain needs no restart: a normalization layer's backward pass divides the gradient by the
    same std its forward pass divided out, so a rescaled layer before a norm leaves every other
    row's backward gain unchanged. Factors no initializer can change are divided out: a pooling
    layer's own change of the second moment (a 2x2 max pool passes each gradient to one input of
    four), and, backward, the square of the residual scales a branch row's gradient is multiplied by.
    """
    rows_ = graph.rows
    n = len(rows_)
    own_fwd = np.ones(n)
    own_bwd = np.ones(n)
    for i, row in enumerate(rows_):
        if row.kind in POOL_KINDS:
            own_fwd[i] = ratio(raw["preact_sq"][i], raw["input_sq"][i]) if i else 1.0
            own_bwd[i] = ratio(raw["grad_input_sq"][i], raw["grad_output_sq"][i]) if i < n - 1 else 1.0
    fwd_fixed = np.cumprod(own_fwd)
    bwd_fixed = np.cumprod(own_bwd[::-1])[::-1]  # pools at or after the row
    scale_sq = np.array([row.branch_scale**2 for row in rows_])
    refs = forward_references(graph)
    forward = [
        ratio(raw["preact_sq"][i], raw["preact_sq"][r] * ratio(fwd_fixed[i], fwd_fixed[r]))
        for i, r in enumerate(refs)
    ]
    backward = [
        ratio(raw["grad_input_sq"][i], raw["grad_input_sq"][-1] * bwd_fixed[i] * scale_sq[i])
        for i in range(n)
    ]
    return np.array(forward), np.array(backward)


def ratio(num: float, den: float) -> float:
    """num/den, or nan when the reference is zero (undefined, which is not an overflow)."""
    return math.nan if den == 0 else num / den


def dead_judged(row, batch: int) -> bool:
    """Whether each unit of the row sees enough values (`MIN_DEAD_SAMPLES`) for dead to mean dead."""
    return batch * math.prod(row.out_shape[1:]) >= MIN_DEAD_SAMPLES


def flag_sources(stats: LayerStats, t: Thresholds) -> dict[str, list[str]]:
    """What raised each vanishing / exploding flag of a layer: ``fwd`` or ``bwd`` (its gain in that
    direction left [1/T, T]), ``no-signal`` (z = 0 everywhere), ``no-grad`` (its weights get no
    gradient). JSON ``flag_sources``; the table shows them as ``vanishing(bwd)``."""
    sources: dict[str, list[str]] = {}
    for direction, gain, limit, judged in (
        ("fwd", stats.forward_gain, t.max_forward_gain, stats.gain_judged[0]),
        ("bwd", stats.backward_gain, t.max_backward_gain, stats.gain_judged[1]),
    ):
        if judged and not math.isnan(gain) and not (1 / limit <= gain <= limit):
            sources.setdefault("exploding" if gain > 1 else "vanishing", []).append(direction)
    if stats.silent:
        sources.setdefault("vanishing", []).append("no-signal")
    if stats.gradient_stop is not None:
        sources.setdefault("vanishing", []).append("no-grad")
    return sources


def layer_flags(stats: LayerStats, t: Thresholds) -> list[str]:
    flags = set()
    if not all(
        math.isfinite(getattr(stats, key)) for key in MEASURED_KEYS if getattr(stats, key) is not None
    ):
        flags.add("nonfinite")
    gains = ((stats.forward_gain, t.max_forward_gain), (stats.backward_gain, t.max_backward_gain))
    for (gain, limit), judged in zip(gains, stats.gain_judged, strict=True):
        if not judged:
            continue
        if gain < 1.0 / limit:
            flags.add("vanishing")
        elif gain > limit:
            flags.add("exploding")
    if stats.silent or stats.gradient_stop is not None:
        flags.add("vanishing")
    if stats.dead_judged and stats.dead_fraction > t.max_dead_fraction:
        flags.add("dead")
    if stats.saturated_fraction > t.max_saturated_fraction:
        flags.add("saturated")
    if stats.distinct_units is not None and stats.distinct_units < stats.units:
        flags.add("symmetric")
    return [f for f in FLAGS if f in flags]


class Finding(NamedTuple):
    """One kind of problem at one layer; `reasons_for` keeps the worst layer of each kind."""

    kind: str  # groups findings: one sentence per kind
    flag: str  # the flag it is (or, for warn, is close to)
    severity: int  # order of the sentences: 0 first
    badness: float  # within a kind, the worst layer is the one reported
    layer: str
    sentence: str


def all_findings(layers: list[LayerStats], t: Thresholds, warn: bool) -> list[Finding]:
    """Every problem (or, with *warn*, every drift toward one) at every layer."""
    found: list[Finding] = []
    overflow = next((x for x in layers if not math.isfinite(x.preact_var + x.act_var)), None)
    for s in layers:
        if not warn and "nonfinite" in s.flags:
            if overflow is not None:
                sentence = (
                    f"layer {overflow.name}: the forward pass overflows (inf/nan), so the loss and "
                    "every gradient are not numbers"
                )
                found.append(Finding("nonfinite", "nonfinite", 0, 1.0, overflow.name, sentence))
            else:
                found.append(
                    Finding(
                        "nonfinite",
                        "nonfinite",
                        0,
                        1.0,
                        s.name,
                        f"layer {s.name}: the backward pass overflows (inf/nan)",
                    )
                )
        if not warn and s.silent:
            sentence = f"layer {s.name}: z is 0 for every input, so no signal passes it"
            found.append(Finding("no signal", "vanishing", 1, math.inf, s.name, sentence))
        if not warn and s.gradient_stop is not None:
            stop = s.gradient_stop
            where = "there" if stop == s.name else f"at layer {stop}"
            sentence = (
                f"no gradient reaches layer {s.name} (dL/dW = 0 everywhere): the gradient stops {where}, "
                "whose dL/dx is 0"
            )
            found.append(Finding("no gradient", "vanishing", 1, math.inf, s.name, sentence))
        directions = (("forward", t.max_forward_gain), ("backward", t.max_backward_gain))
        for (direction, limit), judged in zip(directions, s.gain_judged, strict=True):
            g = getattr(s, f"{direction}_gain")
            explained = s.silent if direction == "forward" else s.gradient_stop is not None
            if not judged or explained or math.isnan(g) or g < 0:
                continue
            log_ratio = math.inf if g == 0 or math.isinf(g) else abs(math.log(g)) / math.log(limit)
            toward = "exploding" if g > 1 else "vanishing"
            bound = f"{limit:g}" if g > 1 else f"1/{limit:g}"
            gain = f"layer {s.name}: {direction} gain {format_number(g)}"
            if not warn and log_ratio > 1:
                sentence = f"{gain} {'>' if g > 1 else '<'} {bound} ({toward})"
                found.append(Finding(f"{direction} {toward}", toward, 1, log_ratio, s.name, sentence))
            elif warn and WARN_FRACTION < log_ratio <= 1:
                sentence = f"{gain} is close to {toward} (limit {bound})"
                found.append(Finding(f"{direction} {toward}", toward, 1, log_ratio, s.name, sentence))
        for key, flag, what, limit, severity in (
            ("dead_fraction", "dead", "of units dead", t.max_dead_fraction, 2),
            ("saturated_fraction", "saturated", "of activations saturated", t.max_saturated_fraction, 4),
        ):
            share = getattr(s, key)
            if flag == "dead" and not s.dead_judged:
                continue
            if (not warn and share > limit) or (warn and limit / 2 < share <= limit):
                sentence = f"layer {s.name}: {share:.0%} {what}" + ("" if warn else f" (> {limit:.0%})")
                found.append(Finding(key, flag, severity, share, s.name, sentence))
        if not warn and "symmetric" in s.flags:
            units = f"{s.distinct_units:.4g} distinct unit{'s' if s.distinct_units != 1 else ''}"
            found.append(
                Finding(
                    "symmetric",
                    "symmetric",
                    3,
                    1 - s.distinct_units / s.units,
                    s.name,
                    f"layer {s.name}: {units} of {s.units} (symmetric)",
                )
            )
    return found


def reasons_for(layers: list[LayerStats], t: Thresholds) -> tuple[list[Reason], bool]:
    """Why the verdict is what it is: one sentence per kind of problem, naming its worst layer and
    how many more layers share it; the most severe first. Without problems, the same for drifts
    toward one (the warn band). Returns (reasons, whether only drifting)."""
    for warn in (False, True):
        by_kind: dict[str, list[Finding]] = {}
        for finding in all_findings(layers, t, warn):
            by_kind.setdefault(finding.kind, []).append(finding)
        if by_kind:
            worst = []
            for group in by_kind.values():
                top = max(group, key=lambda f: f.badness)
                layers_hit = {f.layer for f in group}
                more = len(layers_hit) - 1
                if more and top.kind != "nonfinite":
                    top = top._replace(
                        sentence=f"{top.sentence}; {more} more layer{'s' if more > 1 else ''} too"
                    )
                worst.append(top)
            worst.sort(key=lambda f: (f.severity, -f.badness))
            return [Reason(f.flag, f.layer, f.sentence) for f in worst], warn
    return [], False


def summarize(
    layers: list[LayerStats], losses: list[float], settings: ProbeSettings, spec: StackSpec
) -> Summary:
    t, trials = settings.thresholds, settings.trials
    flags = [f for f in FLAGS if any(f in s.flags for s in layers)]
    findings, drifting = reasons_for(layers, t)
    verdict = "fail" if flags else ("warn" if drifting else "ok")
    # the end-to-end backward gain is read where the gradient first reaches weights: the first
    # layer's own dL/dx is the data's gradient, which trains nothing and is not judged
    first = next((x for x in layers if x.gain_judged[1]), layers[0])
    sd = {}
    if trials > 1:
        sd = {
            "forward_gain": layers[-1].sd.get("forward_gain", math.nan),
            "backward_gain": first.sd.get("backward_gain", math.nan),
            "loss": float(np.std(losses, ddof=1)),
        }
    reference = layers[-1].forward_reference
    return Summary(
        forward_gain=layers[-1].forward_gain,
        backward_gain=first.backward_gain,
        backward_gain_at=first.name,
        loss=float(np.mean(losses)),
        verdict=verdict,
        flags=flags,
        findings=findings,
        worst_layer=findings[0].layer if findings else None,
        sd=sd,
        forward_gain_from=reference if reference != layers[0].name else None,
        notes=notes_for(layers, settings, spec),
    )


def notes_for(layers: list[LayerStats], settings: ProbeSettings, spec: StackSpec) -> list[str]:
    """What limits (or qualifies) the reading of this probe, in words."""
    notes = []
    own: dict[str, list[str]] = {}
    for x in layers:
        if x.kind in ("dense", "conv2d") and x.init is not None and x.init != str(spec.init):
            own.setdefault(x.init, []).append(x.name)
    for init, names in own.items():
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        who = f"layers {shown} use their" if len(names) > 1 else f"layer {shown} uses its"
        notes.append(f"{who} own init, {init}, not the stack's {spec.init}")
    unjudged = [
        x for x in layers if not x.dead_judged and (x.act or "").split(":")[0] in ("relu", "leaky_relu")
    ]
    if unjudged:
        values = min(settings.batch * math.prod(x.output_shape[1:]) for x in unjudged)
        notes.append(
            f"dead units are not judged: each unit sees only {values} value{'s' if values > 1 else ''} "
            f"(batch x positions), and a live unit looks dead on n values with probability 2^-n; use "
            f"a batch of at least {MIN_DEAD_SAMPLES}"
        )
    return notes
