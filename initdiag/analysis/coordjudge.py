"""The verdicts of ``initdiag coordcheck``: slopes of log2(l1) against log2(width), each layer's
verdict at each step, a parametrization's verdict, its reasons and the notes that explain the
known exceptions (step 0 is flat in SP too; μP's random readout starts at width^-1/2; the change
since init shrinks with width in the lazy regime)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: coordcheck builds on this module
    from .coordcheck import CoordSettings, Stack

# the notes: the change since init shrinking faster than width^-1/4 (the lazy regime), or growing
# faster than width^1/2 while the size is still flat (it will outgrow the init)
LAZY_SLOPE, GROWING_DELTA = -0.25, 0.5


@dataclass
class LayerCoords:
    """One layer under one parametrization: its records (seeds, widths, steps + 1) and, per step,
    the slope of log2(l1) against log2(width), its standard error, the slope of the change since
    init, and the verdict."""

    name: str
    shape: str
    role: str
    judged: bool  # its output's width, or its fan_in, scales
    l1: np.ndarray
    std: np.ndarray
    delta: np.ndarray
    slope: np.ndarray
    slope_se: np.ndarray
    delta_slope: np.ndarray
    verdicts: list[str]

    def to_dict(self, widths: list[int]) -> dict[str, Any]:
        def mean(a, w, t):
            return float(np.mean(a[:, w, t]))

        steps = self.l1.shape[2]
        points = []
        for w, width in enumerate(widths):
            for t in range(steps):
                point = {
                    "width": width,
                    "step": t,
                    "l1": mean(self.l1, w, t),
                    "std": mean(self.std, w, t),
                    "delta": mean(self.delta, w, t),
                }
                seeds = self.l1.shape[0]
                point["l1_sd"] = float(np.std(self.l1[:, w, t], ddof=1)) if seeds > 1 else math.nan
                points.append(point)
        return {
            "name": self.name,
            "shape": self.shape,
            "role": self.role,
            "judged": self.judged,
            "slope": [float(v) for v in self.slope],
            "slope_se": [float(v) for v in self.slope_se],
            "delta_slope": [float(v) for v in self.delta_slope],
            "verdict": list(self.verdicts),
            "points": points,
        }


@dataclass
class ParamCoords:
    """One parametrization's layers, its losses (seeds, widths, steps + 1), verdict and notes."""

    param: str
    label: str
    layers: list[LayerCoords]
    loss: np.ndarray
    verdict: str = "ok"
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self, widths: list[int]) -> dict[str, Any]:
        loss = [
            {"width": width, "step": t, "loss": float(np.mean(self.loss[:, w, t]))}
            for w, width in enumerate(widths)
            for t in range(self.loss.shape[2])
        ]
        return {
            "param": self.param,
            "label": self.label,
            "verdict": self.verdict,
            "flags": list(self.flags),
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "layers": [layer.to_dict(widths) for layer in self.layers],
            "loss": loss,
        }


def slopes(widths: list[int], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of log2(values) against log2(width), *values* (seeds, widths, ...):
    the mean of the seeds' slopes and its standard error (sd / sqrt(seeds); one seed: the fit's own
    from its residuals, NaN with two widths: none to estimate). NaN where a value is 0, negative or
    not finite (the slope and its error)."""
    x = np.log2(np.asarray(widths, dtype=np.float64))
    x = x - x.mean()
    sxx = float(x @ x)
    with np.errstate(all="ignore"):
        y = np.log2(np.where(values > 0, values, np.nan))
        centred = y - y.mean(axis=1, keepdims=True)
        per_seed = np.tensordot(x, centred, axes=(0, 1)) / sxx  # (seeds, ...)
        slope = per_seed.mean(axis=0)
        seeds = values.shape[0]
        if seeds > 1:
            se = per_seed.std(axis=0, ddof=1) / math.sqrt(seeds)
        elif len(widths) > 2:
            residual = centred[0] - np.multiply.outer(x, per_seed[0])
            se = np.sqrt((residual**2).sum(axis=0) / (len(widths) - 2) / sxx)
        else:
            se = np.full_like(slope, np.nan)  # a line through two points: no error to estimate
        se = np.where(np.isfinite(slope), se, np.nan)
    return slope, se


def verdict_of(l1: np.ndarray, slope: float, se: float, tolerance: float, judged: bool) -> str:
    """One layer at one step, from its records (seeds, widths) and slope: ``zero`` (0 at every width),
    ``nonfinite`` (some l1 inf, nan or 0: no slope), ``stable``, ``grows``, ``shrinks``; ``fixed`` for
    a layer no width of which scales."""
    if not judged:
        return "fixed"
    if np.all(l1 == 0):
        return "zero"
    if not (np.all(np.isfinite(l1)) and math.isfinite(slope)):
        return "nonfinite"
    bound = tolerance + 2 * (se if math.isfinite(se) else 0.0)  # no error estimate: the slope alone
    if slope > bound:
        return "grows"
    return "shrinks" if slope < -bound else "stable"


def judge(
    settings: CoordSettings, stack: Stack, widths: list[int], param, records: np.ndarray
) -> ParamCoords:
    """One parametrization's `ParamCoords` from its records (4: l1, std, delta, loss; seeds, widths,
    layers, steps + 1)."""
    l1, std, delta, loss = records
    layers = []
    for i, (name, shape, role) in enumerate(stack.layer_infos()):
        judged = role != "fixed"
        slope, se = slopes(widths, l1[:, :, i, :])
        delta_slope, _ = slopes(widths, delta[:, :, i, :])
        verdicts = [
            verdict_of(l1[:, :, i, t], float(slope[t]), float(se[t]), settings.tolerance, judged)
            for t in range(l1.shape[3])
        ]
        layers.append(
            LayerCoords(
                name,
                shape,
                role,
                judged,
                l1[:, :, i, :],
                std[:, :, i, :],
                delta[:, :, i, :],
                slope,
                se,
                delta_slope,
                verdicts,
            )
        )
    result = ParamCoords(str(param), str(param), layers, loss[:, :, 0, :])
    _verdict(result, param)
    _diverged(result, widths)
    if l1.shape[0] == 1 and len(widths) == 2:
        result.notes.append(
            "one seed and two widths: a line through two points has no standard error, so each verdict "
            "reads the slope alone, noise included; use --seeds 3 or more widths"
        )
    return result


# the loss at the last step over the loss at init (mean over seeds) past which a run has diverged
DIVERGED = 2.0


def _more(count: int) -> str:
    return f"; {count} more width{'s' if count > 1 else ''} too" if count else ""


def _diverged(result: ParamCoords, widths: list[int]) -> None:
    """Flag ``diverged`` when, at some width, the loss after the last step is not finite or more than
    `DIVERGED` times its value at init: the slopes of such runs describe a blow-up, whatever they say."""
    with np.errstate(all="ignore"):
        mean = np.mean(result.loss, axis=0)  # (widths, steps + 1)
    bad = [w for w in range(len(widths)) if not (mean[w, -1] <= DIVERGED * mean[w, 0])]
    if not bad:
        return
    w = bad[0]
    result.flags.append("diverged")
    result.reasons.append(
        f"the loss diverged at width {widths[w]:,} (from {mean[w, 0]:.3g} at init to {mean[w, -1]:.3g} "
        f"at step {mean.shape[1] - 1}{_more(len(bad) - 1)}): training blew up there, and the slopes "
        "describe the blow-up"
    )
    result.verdict = "fail"


def expected_zero(layer, param, step: int) -> bool:
    """A readout that starts at zero (mup's default) is 0 at step 0 by construction: not a flag."""
    return step == 0 and layer.role == "output" and getattr(param, "zero_readout", False)


def _verdict(result: ParamCoords, param) -> None:
    """Flags (grows, shrinks, nonfinite, zero), the verdict (ok when none), a reason per flag (its
    first layer and step, and the steepest slope) and the notes."""
    found: dict[str, list[tuple[int, int, str, float]]] = {}  # verdict: (step, layer, name, slope)
    for i, layer in enumerate(result.layers):
        for t, verdict in enumerate(layer.verdicts):
            if verdict in ("stable", "fixed") or (verdict == "zero" and expected_zero(layer, param, t)):
                continue
            found.setdefault(verdict, []).append((t, i, layer.name, float(layer.slope[t])))
    for verdict in ("grows", "shrinks", "nonfinite", "zero"):
        if verdict not in found:
            continue
        result.flags.append(verdict)
        step, _, name, _ = min(found[verdict])
        if verdict in ("grows", "shrinks"):
            worst = max(found[verdict], key=lambda f: abs(f[3]))
            result.reasons.append(
                f"{name} {verdict} with width from step {step}; steepest: {worst[2]} at step "
                f"{worst[0]} (slope {worst[3]:+.2f})"
            )
        elif verdict == "nonfinite":
            result.reasons.append(
                f"{name} at step {step}: l1 is not finite (or 0) at some widths, so it has "
                "no slope (the run diverged)"
            )
        else:
            result.reasons.append(f"{name} at step {step}: every output is 0 at every width")
    result.verdict = "ok" if not result.flags else "fail"
    result.notes += _notes(result, param)


def _notes(result: ParamCoords, param) -> list[str]:
    notes = []
    judged = [layer for layer in result.layers if layer.judged]
    flat_at_init = all(layer.verdicts[0] in ("stable", "zero") for layer in judged)
    if flat_at_init and "grows" in result.flags:
        notes.append(
            "step 0 is width-stable: the initialization alone does not show the blow-up, the updates "
            "do (judge the steps after 0; mup README)"
        )
    readout = judged[-1] if judged and judged[-1].role == "output" else None
    if (
        readout is not None
        and getattr(param, "name", "") == "mup"
        and not param.zero_readout
        and readout.verdicts[0] == "shrinks"
    ):
        notes.append(
            f"{readout.name} (the readout) shrinks at step 0 (slope {readout.slope[0]:+.2f}): expected in "
            "muP, whose output weights start at Var 1/fan_in^2, so the logits start at width^-1/2; it "
            "is transient, and a zero readout (mup's default here) removes it"
        )
    steps = judged[0].delta_slope.shape[0] - 1 if judged else 0
    hidden = [layer for layer in judged if layer.role == "hidden" and steps]
    moving = [
        (layer, t)
        for layer in hidden
        for t in range(1, steps + 1)
        if layer.verdicts[t] == "stable" and layer.delta_slope[t] > GROWING_DELTA
    ]
    if moving:
        layer, t = max(moving, key=lambda found: found[0].delta_slope[found[1]])
        notes.append(
            f"{layer.name}'s change since init grows with width (slope {layer.delta_slope[t]:+.2f} at step "
            f"{t}) while its size is still width-stable: the change is smaller than the init at these "
            "widths, and will outgrow it at larger widths or learning rates"
        )
    lazy = [
        layer
        for layer in hidden
        if math.isfinite(layer.delta_slope[-1]) and layer.delta_slope[-1] < LAZY_SLOPE
    ]
    if lazy and not result.flags:
        layer = lazy[0]
        notes.append(
            f"the change since init shrinks with width ({layer.name}: slope {layer.delta_slope[-1]:+.2f} at "
            f"step {steps}): the lazy (kernel) regime, whose features barely move at large width"
        )
    return notes
