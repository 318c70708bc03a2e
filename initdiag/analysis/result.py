"""Plain-data results: what a probe returns and what every renderer reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._version import __version__
from ..network.settings import FLAGS, TOKEN_FLAGS, ProbeSettings  # noqa: F401  (FLAGS re-exported)
from ..network.stack import StackSpec

SCHEMA_VERSION = 1
# a transformer's per-row statistics (`analysis.blocks`); defined here for the rows' JSON
TOKEN_STAT_KEYS = (
    "residual_sq", "branch_var", "attn_logit_std", "attn_entropy", "token_cosine", "stream_growth"
)  # fmt: skip
TOKEN_THRESHOLDS = ("max_token_cosine", "min_attn_entropy", "max_stream_growth")
# verdict "warn": a gain past limit**WARN_FRACTION on the log scale, or a dead / saturated share past
# half its limit (deep relu stacks with He init reach ~35% dead units by depth 30: a true warning)
WARN_FRACTION = 0.75


# Where the initializer sets the signal's scale, so where vanishing / exploding is judged: layers with
# weights and residual sums. The others pass their effect on to the next judged layer (a relu halves
# E[x^2]; dropout multiplies it by 1/(1-rate)), or are fixed by construction: a normalization layer
# resets the scale to 1, a pooling layer's own factor is divided out of the gains (`_gains`).
GAIN_JUDGED_KINDS = ("dense", "conv1d", "conv2d", "conv3d", "residual")
# ... and in initdiag's own transformer stacks, whose structure is known (a PyTorch model's attention or
# embedding may sit in a residual its hooks cannot see, whose other path carries the gradient):
# the rows of the stream, and standalone attention and MLP rows (those in a block's branch are not
# judged, `gains.block_branch_rows`)
TOKEN_GAIN_KINDS = ("embedding", "attention", "mlp", "stream_add", "unembedding")


def judged_kinds(structured: bool) -> tuple[str, ...]:
    """The kinds whose gains are judged: in a stack of initdiag's own (*structured*) or a model's."""
    return (*GAIN_JUDGED_KINDS, *TOKEN_GAIN_KINDS) if structured else GAIN_JUDGED_KINDS


def format_number(x: float | None) -> str:
    """Three significant digits with a compact exponent (2.13e-9); inf/nan spelled out."""
    if x is None or math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.3g}".replace("e-0", "e-").replace("e+0", "e+")


# What each layer measures directly (a non-finite one sets the ``nonfinite`` flag); then the derived
# ratios and counts. Together, in the order JSON and CSV list them (contract: DESIGN.md).
MEASURED_KEYS = (
    "weight_std",
    "preact_mean",
    "preact_var",
    "act_mean",
    "act_var",
    "grad_input_var",
    "grad_weight_var",
)
STAT_KEYS = (
    *MEASURED_KEYS,
    "grad_weight_ratio",
    "dead_fraction",
    "saturated_fraction",
    "distinct_units",
    "forward_gain",
    "backward_gain",
    # added later (keys are only ever added within a schema version): the gain from the data of a
    # row whose input is the data, and the sizes (root-mean-square) of the weights and their gradient
    "data_gain",
    "weight_rms",
    "grad_weight_rms",
)


@dataclass
class LayerStats:
    """One layer's statistics; with several trials each is the mean and ``sd[key]`` its spread.

    ``forward_gain`` is E[z_l^2] / E[z_1^2] (cumulative from the first layer); ``backward_gain`` is
    E[(dL/dx_l)^2] / E[(dL/dx_L)^2] (cumulative from the output back to this layer); both with
    pooling layers' own factors divided out, and the backward gain of a residual branch's layer
    divided by the square of its branch scale (see `probing._gains`).
    """

    name: str
    kind: str
    fan_in: int | None  # None: the layer has no weights
    fan_out: int | None
    act: str | None  # None: the layer applies no activation
    init: str | None
    bias_init: str | None
    weight_std: float | None  # None without weights (a normalization layer reports gamma)
    preact_mean: float
    preact_var: float
    act_mean: float
    act_var: float
    grad_input_var: float
    grad_weight_var: float | None
    grad_weight_ratio: float | None
    dead_fraction: float
    saturated_fraction: float
    distinct_units: float | None  # None: a layer without weights of its own
    forward_gain: float
    backward_gain: float
    # E[z^2] / E[x^2] of what enters a row whose input is the data (None elsewhere): the absolute
    # scale the first layer sets, which the forward gains, ratios to the first layer, cannot see
    data_gain: float | None = None
    weight_rms: float | None = None  # root-mean-square of the weights (gamma for a norm)
    grad_weight_rms: float | None = None  # root-mean-square of dL/dW: its size (grad_weight_var: spread)
    flags: list[str] = field(default_factory=list)
    # what raised each vanishing / exploding flag: fwd, bwd, no-signal, no-grad
    flag_sources: dict[str, list[str]] = field(default_factory=dict)
    sd: dict[str, float] = field(default_factory=dict)
    # with several trials: the trials (from 1) that raised each flag, when not all did
    flag_trials: dict[str, list[int]] = field(default_factory=dict)
    theory_preact_var: float | None = None  # mean-field prediction (with the theory on)
    theory_grad_input_var: float | None = None
    units: int = 0  # output features, or channels of an image-shaped output
    output_shape: tuple[int, ...] = ()  # one sample, PyTorch's order: (C, H, W) or (width,)
    depth: int = 0  # nesting in residual branches (for the table; not in JSON)
    theory_on: bool = False  # whether the theory keys belong in JSON
    # how the probe judged the row (not in JSON: the flags and the summary's reasons carry it)
    gain_judged: tuple[bool, bool] = (False, False)  # (forward, backward)
    forward_reference: str | None = None  # the row the forward gain is measured against
    silent: bool = False  # z = 0 for every input (in a finite forward pass)
    gradient_stop: str | None = None  # weights get no gradient: the row where the gradient stops
    # what stopped it: None (a dL/dx of 0), "zero-scale" (a residual branch of fixed scale 0, the
    # sum row in gradient_stop), "batchnorm" / "layernorm" (a norm over 2 values, in gradient_stop)
    stop_kind: str | None = None
    dead_judged: bool = True  # enough values per unit for dead_fraction to mean dead
    bias_varies: bool = False  # a weighted row whose units have different biases
    norm_values: int | None = None  # a normalization row: the values it normalizes each unit over
    norm_positions: int = 1  # ... of which one sample gives this many (a batch norm's positions)
    mean_flags: list[str] = field(default_factory=list)  # the flags of the means alone (several trials)
    # the transformer block the row is part of (not in JSON: the row's name says it, block.row); where
    # per-block statistics are read
    block: str | None = None
    # a transformer's statistics (`analysis.blocks`), in JSON at the rows that take them
    residual_sq: float | None = None
    branch_var: float | None = None
    attn_logit_std: float | None = None
    attn_entropy: float | None = None
    token_cosine: float | None = None
    stream_growth: float | None = None
    grad_weight_norm: dict[str, float] | None = None  # |dL/dW| of each weight of a row of several

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "fan_in": self.fan_in,
            "fan_out": self.fan_out,
            "units": self.units,
            "output_shape": list(self.output_shape),
            "act": self.act,
            "init": self.init,
            "bias_init": self.bias_init,
        }
        for key in STAT_KEYS:
            value = getattr(self, key)
            if key == "distinct_units" and not self.sd and value is not None and math.isfinite(value):
                value = int(value)
            out[key] = value
        if self.theory_on:
            out["theory_preact_var"] = self.theory_preact_var
            out["theory_grad_input_var"] = self.theory_grad_input_var
        out["flags"] = list(self.flags)
        out["flag_sources"] = {flag: list(sources) for flag, sources in self.flag_sources.items()}
        if self.sd:  # several trials
            out["flag_trials"] = {flag: list(trials) for flag, trials in self.flag_trials.items()}
        for key in STAT_KEYS:
            if key in self.sd:
                out[f"{key}_sd"] = self.sd[key]
        for key in TOKEN_STAT_KEYS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
                if key in self.sd:
                    out[f"{key}_sd"] = self.sd[key]
        if self.grad_weight_norm is not None:
            out["grad_weight_norm"] = dict(self.grad_weight_norm)
        return out


class Reason(NamedTuple):
    """One sentence of a verdict: the flag it is about (or is close to, for ``warn``), its worst
    layer, and the words (``layer dense7: forward gain 0.004 < 1/10 (vanishing)``)."""

    flag: str
    layer: str
    text: str


@dataclass
class Summary:
    """``forward_gain``: E[z^2] of the last layer over the first's (or, after a normalization layer,
    over that layer's: ``forward_gain_from``); ``backward_gain``: E[(dL/dx)^2] over the last
    layer's, at the first layer whose gradient reaches weights (``backward_gain_at``: the second
    layer of a chain; the first layer's own dL/dx is the data's gradient, not judged). ``verdict``
    is ok, warn or fail, ``reasons`` say why, ``notes`` what limits the reading."""

    forward_gain: float
    backward_gain: float
    loss: float
    verdict: str
    flags: list[str]
    findings: list[Reason]
    worst_layer: str | None
    sd: dict[str, float] = field(default_factory=dict)
    # the row the forward gain is measured from: None for the first layer, else the last
    # normalization layer (gains restart there: it erases the scale of everything before it)
    forward_gain_from: str | None = None
    # the row the backward gain is read at: the first whose dL/dx reaches weights (not the data's)
    backward_gain_at: str | None = None
    notes: list[str] = field(default_factory=list)  # what limits the reading (batch too small, ...)
    theory: dict[str, Any] | None = None  # with the theory on: StackTheory, or {"reason": ...}
    jacobian: dict[str, Any] | None = None  # with --jacobian: `initdiag.jacobian`'s summary
    # with several trials, each judged on its own numbers: each one's verdict (``verdict`` is the worst)
    trial_verdicts: list[str] | None = None

    @property
    def reasons(self) -> list[str]:
        return [finding.text for finding in self.findings]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "forward_gain": self.forward_gain,
            "backward_gain": self.backward_gain,
            "loss": self.loss,
            "verdict": self.verdict,
            "flags": list(self.flags),
            "reasons": self.reasons,
            "worst_layer": self.worst_layer,
            "forward_gain_from": self.forward_gain_from,
            "backward_gain_at": self.backward_gain_at,
            "notes": list(self.notes),
        }
        for key, value in self.sd.items():
            out[f"{key}_sd"] = value
        if self.trial_verdicts is not None:
            out["trial_verdicts"] = list(self.trial_verdicts)
        if self.theory is not None:
            out["theory"] = self.theory
        if self.jacobian is not None:
            out["jacobian"] = self.jacobian
        return out


@dataclass
class ProbeResult:
    """A whole probe: the resolved stack, the settings, one `LayerStats` per layer, the summary."""

    spec: StackSpec
    settings: ProbeSettings
    layers: list[LayerStats]
    summary: Summary
    blocks: list[dict[str, Any]] = field(default_factory=list)  # a transformer's (`analysis.blocks`)

    def settings_dict(self) -> dict[str, Any]:
        s, t = self.settings, self.settings.thresholds
        return {
            "batch": s.batch,
            "seed": s.seed,
            "trials": s.trials,
            "loss": s.loss,
            "input": s.input,
            "dtype": s.dtype,
            "max_forward_gain": t.max_forward_gain,
            "max_backward_gain": t.max_backward_gain,
            "max_dead_fraction": t.max_dead_fraction,
            "max_saturated_fraction": t.max_saturated_fraction,
            "theory": s.theory,
            "jacobian": s.jacobian,
            **({"device": s.device} if hasattr(self.spec, "model") else {}),
            **({key: getattr(t, key) for key in TOKEN_THRESHOLDS} if self.blocks else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain Python; non-finite numbers stay float (`to_json` writes null)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "initdiag_version": __version__,
            "spec": self.spec.to_dict(),
            "settings": self.settings_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
            "summary": self.summary.to_dict(),
            **({"blocks": self.blocks} if self.blocks else {}),
        }

    def layer(self, name: str) -> LayerStats:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)
