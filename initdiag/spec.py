"""The description of a layer stack: what the shorthand ``--layers 784,256x8,10`` and spec files
both build.

A `StackSpec` holds the input shape, stack-wide defaults (hidden activation, output activation,
weight and bias initializer) and an ordered list of `LayerSpec`; a layer's own ``act`` / ``init`` /
``bias_init`` override the defaults. `resolve` returns the same stack with every layer's values
filled in and canonical (``he`` -> ``he_normal``), which is what results report as ``spec``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import InitdiagError

LAYER_KINDS = ("dense",)
# what a layer can be flagged with (see Thresholds)
FLAGS = ("vanishing", "exploding", "dead", "saturated", "symmetric", "nonfinite")


@dataclass
class LayerSpec:
    """One layer: a dense layer of ``units`` outputs, ``z = x @ W + b``, ``a = act(z)``."""

    units: int
    kind: str = "dense"
    name: str | None = None
    act: str | None = None
    init: str | None = None
    bias_init: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "units": self.units}
        for key in ("act", "init", "bias_init"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass
class StackSpec:
    """A whole stack. ``out_act`` is the last layer's activation unless that layer sets its own;
    ``bias_init`` None means each initializer's own default (zeros; torch_default's uniform)."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    act: str = "relu"
    out_act: str = "linear"
    init: str = "he_normal"
    bias_init: str | None = None
    name: str | None = None

    def resolve(self) -> StackSpec:
        """Every layer named and given its act/init/bias_init, each in canonical form; checked."""
        from .activations import get_activation
        from .initializers import get_bias_initializer, get_initializer

        if not self.layers:
            raise InitdiagError("a stack needs at least one layer")
        for width in self.input_shape:
            if not isinstance(width, int) or width < 1:
                raise InitdiagError(f"input shape must be positive integers, got {self.input_shape}")
        canonical_init: dict[str, str] = {}

        def init_text(text: str) -> str:
            if text not in canonical_init:
                canonical_init[text] = str(get_initializer(text))
            return canonical_init[text]

        default_act = str(get_activation(self.act))
        default_out_act = str(get_activation(self.out_act))
        default_init = init_text(self.init)
        default_bias = None if self.bias_init is None else str(get_bias_initializer(self.bias_init))
        layers = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if layer.kind not in LAYER_KINDS:
                raise InitdiagError(
                    f"layer {i + 1}: unknown kind '{layer.kind}'; allowed: {', '.join(LAYER_KINDS)}"
                )
            if not isinstance(layer.units, int) or isinstance(layer.units, bool) or layer.units < 1:
                raise InitdiagError(f"layer {i + 1}: units must be a positive integer, got {layer.units!r}")
            act = layer.act if layer.act is not None else (default_out_act if i == last else default_act)
            bias = layer.bias_init if layer.bias_init is not None else default_bias
            layers.append(
                replace(
                    layer,
                    name=layer.name or f"{layer.kind}{i + 1}",
                    act=str(get_activation(act)),
                    init=init_text(layer.init) if layer.init is not None else default_init,
                    bias_init=None if bias is None else str(get_bias_initializer(bias)),
                )
            )
        names = [layer.name for layer in layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InitdiagError(f"layer names must be unique; repeated: {', '.join(duplicates)}")
        return replace(
            self,
            layers=tuple(layers),
            act=default_act,
            out_act=default_out_act,
            init=default_init,
            bias_init=default_bias,
        )

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.input_shape[-1], *(layer.units for layer in self.layers))

    def shorthand(self) -> str:
        """``784,256x3,10``: the widths, runs of more than two layers folded."""
        parts = [str(self.widths[0])]
        for width, run in itertools.groupby(self.widths[1:]):
            count = len(list(run))
            parts.append(f"{width}x{count}" if count > 2 else ",".join([str(width)] * count))
        return ",".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "defaults": {
                "act": self.act,
                "out_act": self.out_act,
                "init": self.init,
                "bias_init": self.bias_init,
            },
            "layers": [layer.to_dict() for layer in self.layers],
        }


def parse_widths(text: str) -> list[int]:
    """``"784,256x3,10"`` -> [784, 256, 256, 256, 10]; one clear error per malformed entry."""
    parts = str(text).split(",")
    widths: list[int] = []
    for position, raw in enumerate(parts, start=1):
        item = raw.strip()
        if not item:
            raise InitdiagError(
                f"--layers '{text}': empty width at position {position}; "
                "write comma-separated positive integers, e.g. 784,256,10"
            )
        base, sep, count = item.lower().partition("x")
        width = _positive_int(base, text, item, "width")
        repeat = _positive_int(count, text, item, "repeat count") if sep else 1
        widths.extend([width] * repeat)
    if len(widths) < 2:
        raise InitdiagError(
            f"--layers '{text}': needs an input width and at least one layer, e.g. 784,256,10"
        )
    return widths


def _positive_int(token: str, text: str, item: str, what: str) -> int:
    token = token.strip()
    try:
        value = int(token)
    except ValueError:
        raise InitdiagError(
            f"--layers '{text}': '{item}' is not a {what}; write positive integers, "
            "a width may repeat as 256x8"
        ) from None
    if value < 1:
        raise InitdiagError(f"--layers '{text}': {what} must be a positive integer, got {value}")
    return value


def parse_layers(
    text: str,
    *,
    act: str = "relu",
    out_act: str = "linear",
    init: str = "he_normal",
    bias_init: str | None = None,
) -> StackSpec:
    """The shorthand: first width is the input, each further width a dense layer."""
    widths = parse_widths(text)
    return StackSpec(
        input_shape=(widths[0],),
        layers=tuple(LayerSpec(units=w) for w in widths[1:]),
        act=act,
        out_act=out_act,
        init=init,
        bias_init=bias_init,
    )


@dataclass
class Thresholds:
    """When a layer is flagged. A layer is ``vanishing``/``exploding`` when its cumulative gain
    leaves [1/T, T]; ``dead``/``saturated`` when more than the given share is."""

    max_forward_gain: float = 10.0
    max_backward_gain: float = 10.0
    max_dead_fraction: float = 0.5
    max_saturated_fraction: float = 0.5

    def check(self) -> Thresholds:
        for key in ("max_forward_gain", "max_backward_gain"):
            value = getattr(self, key)
            if not value > 1:
                raise InitdiagError(f"{key.replace('_', '-')} must be greater than 1, got {value:g}")
        for key in ("max_dead_fraction", "max_saturated_fraction"):
            value = getattr(self, key)
            if not 0 <= value <= 1:
                raise InitdiagError(f"{key.replace('_', '-')} must be in [0, 1], got {value:g}")
        return self


@dataclass
class ProbeSettings:
    """How the probe runs: batch size, seed, number of trials, loss, input, dtype."""

    batch: int = 256
    seed: int = 0
    trials: int = 1
    loss: str = "unit"
    input: str = "normal"
    dtype: str = "float32"
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass
class CheckSettings:
    """What ``initdiag check`` gates on: the thresholds that set the flags, whether symmetric layers
    are allowed (e.g. a deliberate constant init), and which flags fail the spec."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    allow_symmetric: bool = False
    fail_on: tuple[str, ...] = FLAGS

    def failing(self, flags: list[str]) -> list[str]:
        """The flags among *flags* that fail the check."""
        return [f for f in flags if f in self.fail_on and not (f == "symmetric" and self.allow_symmetric)]


# ProbeSettings' own defaults, as a dict that file values and options are layered over
PROBE_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(ProbeSettings) if f.name != "thresholds"}


def job(
    *,
    layers: str | None = None,
    config: str | None = None,
    spec: Any = None,
    stack_options: dict[str, Any] | None = None,
    probe_options: dict[str, Any] | None = None,
    max_gain: float | None = None,
    probe_defaults: dict[str, Any] | None = None,
) -> tuple[StackSpec, ProbeSettings, CheckSettings]:
    """What to probe, from a shorthand or a spec file, with command-line options on top.

    *config* is a spec file's path; *spec* an already loaded `SpecFile` (as ``check`` has).
    Precedence: built-in defaults (*probe_defaults* over `PROBE_DEFAULTS`) < the file < options.
    *stack_options* (act, out_act, init, bias_init) replace the stack's defaults; a layer that sets
    its own value in the file keeps it. Options that are None were not given.
    """
    from_file = config is not None or spec is not None
    if layers and from_file:
        raise InitdiagError("give --layers or --config, not both")
    if not layers and not from_file:
        raise InitdiagError("a stack is needed: --layers 784,256,10 or --config SPEC.toml")
    stack_options = {k: v for k, v in (stack_options or {}).items() if v is not None}
    defaults = {**PROBE_DEFAULTS, **(probe_defaults or {})}
    if from_file:
        if spec is None:
            from .specfile import load_spec  # only when a file is read

            spec = load_spec(config)
        stack, check = replace(spec.stack, **stack_options), spec.check
        settings = spec.settings(defaults, probe_options)
    else:
        stack, check = parse_layers(layers, **stack_options), CheckSettings()
        given = {k: v for k, v in (probe_options or {}).items() if v is not None}
        settings = ProbeSettings(**{**defaults, **given})
    if max_gain is not None:
        check = replace(
            check, thresholds=replace(check.thresholds, max_forward_gain=max_gain, max_backward_gain=max_gain)
        )
    return stack.resolve(), replace(settings, thresholds=check.thresholds), check
