"""From measurements to a verdict: each layer's flags, the reasons in words, the verdict of one
trial and of several (the worst), the summary and its notes. The gains' structure is `gains`."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from ..network.kinds import NORM_KINDS
from ..network.settings import ProbeSettings, Thresholds
from ..network.stack import StackSpec
from .gains import MIN_DEAD_SAMPLES
from .result import (
    FLAGS,
    MEASURED_KEYS,
    WARN_FRACTION,
    LayerStats,
    Reason,
    Summary,
    format_number,
)


def _outside(gain: float | None, limit: float) -> str | None:
    """``exploding`` / ``vanishing`` for a gain outside [1/limit, limit], else None (nan: None)."""
    if gain is None or math.isnan(gain):
        return None
    if gain > limit:
        return "exploding"
    if gain < 1.0 / limit:
        return "vanishing"
    return None


def _data_gain_judged(stats: LayerStats) -> bool:
    return stats.data_gain is not None and stats.gain_judged[0] and not stats.silent


def data_gain_limit(t: Thresholds) -> float:
    """The band a row's gain from the data must stay in: [1/T^2, T^2] in E[x^2], T in std. The
    data's scale is the user's, and a first layer may move it by up to T in std by design (Glorot
    on a 3-channel conv stem keeps 0.09 of E[x^2], He with fan_out 0.19); beyond that it is a
    mistake: randn weights multiply E[x^2] by fan_in (784 for MNIST), N(0, 100) by 1e4 fan_in."""
    return t.max_forward_gain**2


def flag_sources(stats: LayerStats, t: Thresholds) -> dict[str, list[str]]:
    """What raised each vanishing / exploding flag of a layer: ``fwd`` or ``bwd`` (its gain in that
    direction left [1/T, T]; at a row whose input is the data, also its gain from the data),
    ``no-signal`` (z = 0 everywhere), ``no-grad`` (its weights get no gradient). JSON
    ``flag_sources``; the table shows them as ``vanishing(bwd)``."""
    sources: dict[str, list[str]] = {}
    for direction, gain, limit, judged in (
        ("fwd", stats.forward_gain, t.max_forward_gain, stats.gain_judged[0]),
        ("bwd", stats.backward_gain, t.max_backward_gain, stats.gain_judged[1]),
    ):
        flag = _outside(gain, limit) if judged else None
        if flag is not None:
            sources.setdefault(flag, []).append(direction)
    flag = _outside(stats.data_gain, data_gain_limit(t)) if _data_gain_judged(stats) else None
    if flag is not None and "fwd" not in sources.get(flag, ()):
        sources.setdefault(flag, []).insert(0, "fwd")
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
    if _data_gain_judged(stats):
        flag = _outside(stats.data_gain, data_gain_limit(t))
        if flag is not None:
            flags.add(flag)
    if stats.silent or stats.gradient_stop is not None:
        flags.add("vanishing")
    if stats.dead_judged and stats.dead_fraction > t.max_dead_fraction:
        flags.add("dead")
    if stats.saturated_fraction > t.max_saturated_fraction:
        flags.add("saturated")
    if stats.distinct_units is not None and stats.distinct_units < stats.units:
        flags.add("symmetric")
    flags.update(flag for flag, _, _ in _token_flags(stats, t))
    return [f for f in FLAGS if f in flags]


def _token_flags(stats: LayerStats, t: Thresholds) -> list[tuple[str, float, str]]:
    """A transformer row's flags (`analysis.blocks`): (flag, how far past its limit, the sentence)."""
    out = []
    c, e, g = stats.token_cosine, stats.attn_entropy, stats.stream_growth
    if c is not None and c > t.max_token_cosine:
        out.append(("collapse", c, (
            f"layer {stats.name}: the tokens of a sample have a mean pairwise cosine of {format_number(c)} "
            f"(> {t.max_token_cosine:g}): they point nearly one way (rank collapse, Dong et al. 2021)"
        )))  # fmt: skip
    if e is not None and e < t.min_attn_entropy:
        out.append(("attn_saturated", 1 - e, (
            f"layer {stats.name}: attention's entropy is {e:.1%} of its maximum "
            f"(< {t.min_attn_entropy:.0%}): each query reads nearly one key (one-hot attention)"
        )))  # fmt: skip
    if g is not None and g > t.max_stream_growth:
        out.append(("stream_growth", g, (
            f"layer {stats.name}: the stream's E|x|^2/d is {format_number(g)} times what linear growth from "
            f"the first block gives (> {t.max_stream_growth:g}): each block adds more than the last"
        )))  # fmt: skip
    return out


class Finding(NamedTuple):
    """One kind of problem at one layer; `reasons_for` keeps the worst layer of each kind."""

    kind: str  # groups findings: one sentence per kind
    flag: str  # the flag it is (or, for warn, is close to)
    severity: int  # order of the sentences: 0 first
    badness: float  # within a kind, the worst layer is the one reported
    layer: str
    sentence: str


def _stop_sentence(s: LayerStats) -> str:
    """Why no gradient reaches a layer's weights, by what stopped it."""
    stop = s.gradient_stop
    if s.stop_kind == "zero-scale":
        return (
            f"no gradient reaches layer {s.name} (dL/dW = 0 everywhere): the branch of {stop} is multiplied "
            "by its fixed residual scale 0, so it adds nothing forward and gets no gradient back (a "
            "learned scale, as ReZero's, starts at 0 but trains; a fixed one never does)"
        )
    if s.stop_kind in NORM_KINDS:
        what = "batch norm" if s.stop_kind == "batchnorm" else "layer norm"
        over = "each feature over 2 values" if what == "batch norm" else "over 2 values per sample"
        fix = "use a batch of at least 16" if what == "batch norm" else "normalize a wider layer"
        rms = s.grad_weight_rms
        shown = (
            f" (its ∂W rms {format_number(rms)} is that, and shrinks as eps does)"
            if rms and math.isfinite(rms)
            else ""
        )
        return (
            f"almost no gradient reaches layer {s.name}: {what} {stop} normalizes {over}, which it maps "
            f"to ±1 whatever they are, and passes back only what its eps leaves{shown}; {fix}"
        )
    where = "there" if stop == s.name else f"at layer {stop}"
    return (
        f"no gradient reaches layer {s.name} (dL/dW = 0 everywhere): the gradient stops {where}, "
        "whose dL/dx is 0"
    )


def _data_gain_sentence(s: LayerStats, limit: float, warn: bool) -> str:
    """A row at the data whose gain from the data leaves (or nears) [1/T, T]: by how much, and
    whether its weights alone do it (their size against the 1/sqrt(fan_in) that keeps E[x^2])."""
    g = s.data_gain
    toward = "exploding" if g > 1 else "vanishing"
    bound = f"{limit:g}" if g > 1 else f"1/{limit:g}"
    what = f"residual sum {s.name}" if s.kind == "residual" else f"layer {s.name}"
    sentence = f"{what} multiplies the data's E[x^2] by {format_number(g)}"
    sentence += (
        f", close to {toward} (limit {bound})" if warn else f" ({toward}: {'>' if g > 1 else '<'} {bound})"
    )
    if s.fan_in and s.weight_rms is not None and math.isfinite(s.weight_rms):
        alone = s.fan_in * s.weight_rms**2
        keep = 1 / math.sqrt(s.fan_in)
        if (alone > 1) == (g > 1) and alone > 0 and abs(math.log(alone)) >= abs(math.log(g)) / 2:
            size = (
                "std"
                if s.weight_std is not None and s.weight_std >= 0.5 * s.weight_rms
                else "root-mean-square"
            )
            value = s.weight_std if size == "std" else s.weight_rms
            sentence += (
                f": its weights' {size} {format_number(value)} is {format_number(s.weight_rms / keep)}x the "
                f"1/sqrt(fan_in) = {format_number(keep)} that keeps the scale"
            )
        else:
            rest = "its bias" if g > alone else "the data's correlations"
            sentence += f": its weights alone would give {format_number(alone)}, the rest is {rest}"
    return sentence


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
                sentence = f"layer {s.name}: the backward pass overflows (inf/nan)"
                found.append(Finding("nonfinite", "nonfinite", 0, 1.0, s.name, sentence))
        if not warn and s.silent:
            sentence = f"layer {s.name}: z is 0 for every input, so no signal passes it"
            found.append(Finding("no signal", "vanishing", 1, math.inf, s.name, sentence))
        if not warn and s.gradient_stop is not None:
            found.append(Finding("no gradient", "vanishing", 1, math.inf, s.name, _stop_sentence(s)))
        if _data_gain_judged(s) and not math.isnan(s.data_gain) and s.data_gain >= 0:
            g, limit = s.data_gain, data_gain_limit(t)
            log_ratio = math.inf if g == 0 or math.isinf(g) else abs(math.log(g)) / math.log(limit)
            if (not warn and log_ratio > 1) or (warn and WARN_FRACTION < log_ratio <= 1):
                toward = "exploding" if g > 1 else "vanishing"
                sentence = _data_gain_sentence(s, limit, warn)
                found.append(Finding(f"data {toward}", toward, 1, log_ratio, s.name, sentence))
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
            sentence = f"layer {s.name}: {units} of {s.units} (symmetric)"
            if s.bias_varies:
                sentence += ": units whose incoming weights are equal differ only by their bias"
            found.append(
                Finding("symmetric", "symmetric", 3, 1 - s.distinct_units / s.units, s.name, sentence)
            )
        if not warn:
            for flag, badness, sentence in _token_flags(s, t):
                found.append(Finding(flag, flag, 2, badness, s.name, sentence))
        if warn and small_batch_norm(s):
            found.append(
                Finding("small batch", "vanishing", 5, 1.0 / s.norm_values, s.name, small_batch_sentence(s))
            )
    return found


# a batch norm over fewer values per channel than this is not judged reliable: its statistics come
# from a handful of values, and it passes back only (n - 2)/n of the gradient's second moment (the
# mean and the scale it removes are two of the n directions)
MIN_NORM_VALUES = 16


def small_batch_norm(s: LayerStats) -> bool:
    """A batch norm row over 3 to 15 values per channel (2 blocks the gradient: `norm_blocked`)."""
    return s.kind == "batchnorm" and s.norm_values is not None and 2 < s.norm_values < MIN_NORM_VALUES


def small_batch_sentence(s: LayerStats) -> str:
    n, positions = s.norm_values, s.norm_positions
    enough = -(-MIN_NORM_VALUES // positions)
    per = f"batch {n // positions} x {positions} position{'s' if positions != 1 else ''}"
    return (
        f"layer {s.name}: batch norm normalizes each channel over only {n} values ({per}): its statistics "
        f"are noisy and it passes back about (n-2)/n = {(n - 2) / n:.0%} of the gradient; a batch of "
        f"{enough} or more gives it {MIN_NORM_VALUES} values"
    )


def grouped_findings(layers: list[LayerStats], t: Thresholds) -> tuple[list[Finding], bool]:
    """Why the verdict is what it is: one finding per kind of problem, its worst layer, the sentence
    saying how many more layers share it; the most severe first. Without problems, the same for drifts
    toward one (the warn band). Returns (findings, whether only drifting)."""
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
            return worst, warn
    return [], False


def reasons_for(layers: list[LayerStats], t: Thresholds) -> tuple[list[Reason], bool]:
    """`grouped_findings` as the summary's reasons."""
    findings, warn = grouped_findings(layers, t)
    return [Reason(f.flag, f.layer, f.sentence) for f in findings], warn


VERDICTS = ("ok", "warn", "fail")


def judgement(layers: list[LayerStats], t: Thresholds) -> tuple[str, list[Finding]]:
    """The verdict of one set of rows (flagged: fail; only drifting: warn) and its findings."""
    findings, drifting = grouped_findings(layers, t)
    verdict = "fail" if any(x.flags for x in layers) else ("warn" if drifting else "ok")
    return verdict, findings


def worst_of_trials(judged: list[tuple[str, list[Finding]]]) -> tuple[str, list[Reason]]:
    """The verdict of several trials, each judged on its own numbers: the worst trial's, with the
    findings of every trial that has it, each kind once (its worst trial's sentence), saying in which
    trials it happened. A finding with the same sentence in every trial does not depend on the draw
    and is not attributed."""
    n = len(judged)
    verdict = max((v for v, _ in judged), key=VERDICTS.index)
    by_kind: dict[str, list[tuple[int, Finding]]] = {}
    for trial, (v, findings) in enumerate(judged, start=1):
        if v == verdict:
            for finding in findings:
                by_kind.setdefault(finding.kind, []).append((trial, finding))
    out = []
    for group in by_kind.values():
        trial, top = max(group, key=lambda pair: pair[1].badness)
        hit = sorted({k for k, _ in group})
        if len(hit) == n and len({f.sentence for _, f in group}) == 1:
            prefix = ""
        elif len(hit) == 1:
            prefix = f"in trial {trial} of {n}: "
        elif len(hit) == n:
            prefix = f"in all {n} trials (worst: trial {trial}): "
        else:
            prefix = f"in {len(hit)} of {n} trials (worst: trial {trial}): "
        out.append(top._replace(sentence=prefix + top.sentence))
    out.sort(key=lambda f: (f.severity, -f.badness))
    return verdict, [Reason(f.flag, f.layer, f.sentence) for f in out]


def summarize(
    layers: list[LayerStats],
    losses: list[float],
    settings: ProbeSettings,
    spec: StackSpec,
    trials_judged: list[tuple[str, list[Finding]]] | None = None,
) -> Summary:
    """The summary of a probe. *trials_judged*: each trial's `judgement` (with several trials the
    verdict is the worst trial's and *layers* hold the means, flagged with every trial's flags);
    without it, *layers* are judged as they are."""
    t, trials = settings.thresholds, settings.trials
    flags = [f for f in FLAGS if any(f in s.flags for s in layers)]
    if trials_judged is None or len(trials_judged) == 1:
        verdict, grouped = trials_judged[0] if trials_judged else judgement(layers, t)
        findings = [Reason(f.flag, f.layer, f.sentence) for f in grouped]
    else:
        verdict, findings = worst_of_trials(trials_judged)
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
    notes = notes_for(layers, settings, spec)
    if verdict == "fail":  # the small-batch warning is not among the reasons: say it here
        notes += [small_batch_sentence(x) for x in layers if small_batch_norm(x)]
    trial_verdicts = [v for v, _ in trials_judged] if trials_judged and len(trials_judged) > 1 else None
    if trial_verdicts and len(set(trial_verdicts)) > 1:
        notes.append(_trials_note(layers, t, verdict, trial_verdicts))
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
        notes=notes,
        trial_verdicts=trial_verdicts,
    )


def _trials_note(layers: list[LayerStats], t: Thresholds, verdict: str, trial_verdicts: list[str]) -> str:
    """Trials that disagree: which ones have the verdict, and whether the means shown would pass."""
    n = len(trial_verdicts)
    which = [str(k) for k, v in enumerate(trial_verdicts, start=1) if v == verdict]
    named = f"trial {which[0]}" if len(which) == 1 else f"trials {', '.join(which[:-1])} and {which[-1]}"
    mean_layers = [replace(x, flags=x.mean_flags) for x in layers]
    mean_verdict, _ = judgement(mean_layers, t)
    means = (
        f"the means over the {n} trials, which the table shows, would give {mean_verdict}"
        if VERDICTS.index(mean_verdict) < VERDICTS.index(verdict)
        else "the table shows the means over the trials"
    )
    return f"the verdict is the worst trial's: {named} of {n} gave {verdict}; {means}"


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
