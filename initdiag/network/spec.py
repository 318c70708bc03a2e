"""The description of a layer stack: what the shorthand ``--layers 784,256x8,10`` and spec files
both build.

A `StackSpec` holds the input shape, stack-wide defaults (hidden activation, output activation,
weight and bias initializer) and an ordered list of `LayerSpec`; a layer's own ``act`` / ``init`` /
``bias_init`` override the defaults, and a ``residual`` block's own values are the defaults of its
branch. `resolve` returns the same stack with every layer named and its values filled in and
canonical (``he`` -> ``he_normal``), which is what results report as ``spec``; `graph.rows` then
works out each layer's shapes.

Activation defaults follow the usual ``Linear -> BatchNorm -> ReLU`` pattern: a dense or conv2d
layer directly followed by batchnorm/layernorm stays linear and the normalization layer takes the
activation. The output activation goes to the last top-level layer that takes an activation
(unless a residual block comes after it).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

from ..errors import InitdiagError, one_line

# what a layer can be flagged with (see Thresholds)
FLAGS = ("vanishing", "exploding", "dead", "saturated", "symmetric", "nonfinite")


class KindInfo(NamedTuple):
    """What a layer kind takes: its keys (besides kind and name), the required ones, whether it
    has sampled weights, whether it applies an activation, and the prefix of its automatic name."""

    keys: tuple[str, ...]
    required: tuple[str, ...]
    weighted: bool
    takes_act: bool
    prefix: str
    doc: str


KINDS: dict[str, KindInfo] = {
    "dense": KindInfo(("units", "act", "init", "bias_init"), ("units",), True, True, "dense",
                      "z = x @ W + b, W of shape (fan_in, units)"),
    "conv2d": KindInfo(("channels", "kernel", "stride", "padding", "act", "init", "bias_init"), ("channels",),
                       True, True, "conv", "2-D convolution, W of shape (channels, in_channels, kh, kw)"),
    "flatten": KindInfo((), (), False, False, "flatten", "(C, H, W) -> C*H*W features, in PyTorch's order"),
    "maxpool2d": KindInfo(("size",), (), False, False, "maxpool", "max of size x size windows"),
    "global_avgpool": KindInfo((), (), False, False, "avgpool", "(C, H, W) -> (C,), the mean over H and W"),
    "batchnorm": KindInfo(("eps", "act"), (), False, True, "bn",
                          "training-mode batch statistics per feature / channel, gamma 1, beta 0"),
    "layernorm": KindInfo(("eps", "act"), (), False, True, "ln",
                          "per-sample statistics over all features, gamma 1, beta 0"),
    "dropout": KindInfo(("rate",), ("rate",), False, False, "dropout", "inverted dropout, own random stream"),
    "activation": KindInfo(("act",), (), False, True, "act", "a = act(x)"),
    "residual": KindInfo(("layers", "scale", "act", "init", "bias_init"), ("layers",), False, False, "res",
                         "x + scale * branch(x), with a projection of x when shapes differ"),
}  # fmt: skip
LAYER_KINDS = tuple(KINDS)
NORM_KINDS = ("batchnorm", "layernorm")
POOL_KINDS = ("maxpool2d", "global_avgpool")
PADDINGS = ("same", "valid")
NORMS = ("none", "batch", "layer")
# defaults of the optional keys
DEFAULTS: dict[str, Any] = {"kernel": 3, "stride": 1, "padding": "same", "size": 2, "eps": 1e-5, "scale": 1.0}
# keys that are the layer's structure (not the act/init it inherits)
_STRUCTURE_KEYS = ("units", "channels", "kernel", "stride", "padding", "size", "rate", "eps", "scale")


class SpecLayerError(InitdiagError):
    """A problem with one layer; ``path`` locates it in a spec file (``("layers", 3, "layers", 0)``)."""

    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.path = path


@dataclass
class LayerSpec:
    """One layer of a kind in `KINDS`; only the keys its kind takes may be set (None = unset)."""

    units: int | None = None
    kind: str = "dense"
    name: str | None = None
    act: str | None = None
    init: str | None = None
    bias_init: str | None = None
    channels: int | None = None
    kernel: int | tuple[int, int] | None = None
    stride: int | None = None
    padding: str | int | None = None
    size: int | None = None
    rate: float | None = None
    eps: float | None = None
    scale: float | None = None
    layers: tuple[LayerSpec, ...] = ()

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    def get(self, key: str) -> Any:
        """The value of *key*, or its default when unset."""
        value = getattr(self, key)
        return DEFAULTS.get(key) if value is None else value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        for key in KINDS[self.kind].keys:
            value = getattr(self, key)
            if key == "layers":
                out["layers"] = [layer.to_dict() for layer in value]
            elif value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


def _is_int(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_layer(layer: LayerSpec, label: str, path: tuple) -> None:
    """The layer's keys and values, each problem one message naming the layer."""
    if layer.kind not in KINDS:
        from ..errors import did_you_mean

        hint = did_you_mean(str(layer.kind), KINDS) or f"; allowed: {', '.join(KINDS)}"
        raise SpecLayerError(f"{label}: unknown kind '{layer.kind}'{hint}", path)
    info = KINDS[layer.kind]
    for key in (*_STRUCTURE_KEYS, "act", "init", "bias_init"):
        if getattr(layer, key) is not None and key not in info.keys:
            takes = ", ".join(info.keys) or "no keys besides name"
            raise SpecLayerError(f"{label}: a {layer.kind} layer takes no '{key}' (it takes {takes})", path)
    if layer.layers and layer.kind != "residual":
        raise SpecLayerError(f"{label}: only a residual block has layers", path)
    for key in info.required:
        if key == "layers" and not layer.layers:
            raise SpecLayerError(f"{label}: a residual block needs at least one layer in its branch", path)
        if key != "layers" and getattr(layer, key) is None:
            raise SpecLayerError(f"{label}: a {layer.kind} layer needs '{key}'", path)
    problems = {
        "units": (lambda v: _is_int(v), "a positive integer"),
        "channels": (lambda v: _is_int(v), "a positive integer"),
        "stride": (lambda v: _is_int(v), "a positive integer"),
        "size": (lambda v: _is_int(v), "a positive integer"),
        "kernel": (
            lambda v: (
                _is_int(v) or (isinstance(v, tuple | list) and len(v) == 2 and all(_is_int(k) for k in v))
            ),
            "a positive integer or a pair [kh, kw]",
        ),
        "padding": (lambda v: v in PADDINGS or _is_int(v, 0), "same, valid or a non-negative integer"),
        "rate": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "eps": (lambda v: _is_number(v) and v > 0, "a positive number"),
        "scale": (lambda v: _is_number(v), "a finite number"),
    }
    for key, (ok, allowed) in problems.items():
        value = getattr(layer, key)
        if value is not None and not ok(value):
            raise SpecLayerError(f"{label}: {key} must be {allowed}, got {value!r}", path)


def _walk(layers: tuple[LayerSpec, ...]):
    """Every layer, depth first (a residual block before its branch)."""
    for layer in layers:
        yield layer
        yield from _walk(layer.layers)


class _Canon:
    """Canonical names of activations and initializers, each parsed once."""

    def __init__(self):
        from ..core.activations import get_activation
        from ..core.initializers import get_bias_initializer, get_initializer

        self._parsers = {"act": get_activation, "init": get_initializer, "bias_init": get_bias_initializer}
        self._seen: dict[tuple[str, str], str] = {}

    def __call__(self, key: str, text: str | None, label: str = "", path: tuple = ()) -> str | None:
        if text is None:
            return None
        if (key, text) not in self._seen:
            try:
                self._seen[key, text] = str(self._parsers[key](text))
            except InitdiagError as exc:
                if not label:
                    raise
                raise SpecLayerError(f"{label}: {exc}", path) from None
        return self._seen[key, text]


def output_index(entries) -> int | None:
    """The layer that takes the output activation: the last that takes an activation, unless a
    residual block comes after it."""
    for k in range(len(entries) - 1, -1, -1):
        if entries[k].kind == "residual":
            return None
        if KINDS[entries[k].kind].takes_act:
            return k
    return None


def default_act(
    entries, k: int, act: str, out_act: str | None, out_index: int | None, prev_open: bool
) -> str:
    """The activation layer *k* of a sequence gets when it sets none: the output activation at
    *out_index*; ``linear`` for a dense/conv2d layer a normalization layer follows, which then takes
    the hidden activation (Linear -> Norm -> act) when *prev_open* (its predecessor set no act);
    else the hidden activation."""
    entry = entries[k]
    if k == out_index:
        return out_act
    if KINDS[entry.kind].weighted and k + 1 < len(entries) and entries[k + 1].kind in NORM_KINDS:
        return "linear"
    if entry.kind in NORM_KINDS:
        paired = k > 0 and KINDS[entries[k - 1].kind].weighted and prev_open
        return act if paired else "linear"
    return act


def auto_name(kind: str, count: int, prefix: str = "") -> str:
    return f"{prefix}{KINDS[kind].prefix}{count}"


def _resolve_sequence(
    entries: tuple[LayerSpec, ...],
    canon: _Canon,
    *,
    act: str,
    init: str,
    bias_init: str | None,
    out_act: str | None,
    prefix: str,
    path: tuple,
) -> tuple[LayerSpec, ...]:
    """Name the layers of one sequence (the stack, or a residual branch) and fill in their values."""
    for k, entry in enumerate(entries):
        label = f"layer {prefix}{entry.name}" if entry.name else where((*path, k))
        _check_layer(entry, label, (*path, k))
    out_index = output_index(entries) if out_act is not None else None
    counters: dict[str, int] = {}
    resolved = []
    for k, entry in enumerate(entries):
        info = entry.info
        counters[info.prefix] = counters.get(info.prefix, 0) + 1
        name = prefix + entry.name if entry.name else auto_name(entry.kind, counters[info.prefix], prefix)
        at = (*path, k)
        values: dict[str, Any] = {"name": name}
        if info.takes_act:
            chosen = entry.act
            if chosen is None:
                chosen = default_act(
                    entries, k, act, out_act, out_index, k > 0 and entries[k - 1].act is None
                )
            values["act"] = canon("act", chosen, f"layer {name}", at)
        if info.weighted or entry.kind == "residual":
            values["init"] = canon("init", entry.init, f"layer {name}", at) or init
            given_bias = canon("bias_init", entry.bias_init, f"layer {name}", at)
            values["bias_init"] = given_bias if given_bias is not None else bias_init
        for key in info.keys:
            if key in DEFAULTS and getattr(entry, key) is None:
                values[key] = DEFAULTS[key]
        if isinstance(entry.kernel, list | tuple):
            values["kernel"] = tuple(entry.kernel)
        if entry.scale is not None:
            values["scale"] = float(entry.scale)
        if entry.rate is not None:
            values["rate"] = float(entry.rate)
        if entry.kind == "residual":
            values["act"] = canon("act", entry.act, f"layer {name}", at)
            values["layers"] = _resolve_sequence(
                entry.layers,
                canon,
                act=values["act"] or act,
                init=values["init"],
                bias_init=values["bias_init"],
                out_act=None,
                prefix=f"{name}.",
                path=(*at, "layers"),
            )
        resolved.append(replace(entry, **values))
    return tuple(resolved)


MAX_ROWS = 10_000
"""The most rows a stack may have: every layer, counting those inside residual blocks and each
block's own sum row (what `graph.rows` gives). `StackSpec.resolve`, the ``--layers`` shorthand and
a spec file's ``repeat`` refuse a larger stack at once, before building it: a probe of one would run
for minutes and its table could not be read."""

MAX_NESTING = 32
"""How deep residual blocks may nest inside one another (a block in a block is 2 deep)."""


def too_many_rows(rows: int) -> InitdiagError:
    """The refusal of a stack of *rows* rows (more than `MAX_ROWS`)."""
    return InitdiagError(f"the stack has {rows:,} layers; initdiag takes at most {MAX_ROWS:,}")


def _check_size(layers) -> None:
    """Refuse a stack of more than `MAX_ROWS` rows or residual blocks nested deeper than
    `MAX_NESTING`: one pass over the layers, without recursion, before anything is resolved."""
    rows = 0
    todo = [(layers, ("layers",), 1)]
    while todo:
        sequence, path, depth = todo.pop()
        rows += len(sequence)
        for k, layer in enumerate(sequence):
            if layer.layers:
                if depth > MAX_NESTING:
                    raise SpecLayerError(
                        f"residual blocks nest more than {MAX_NESTING} deep; "
                        f"initdiag takes at most {MAX_NESTING}",
                        (*path, k),
                    )
                todo.append((layer.layers, (*path, k, "layers"), depth + 1))
    if rows > MAX_ROWS:
        raise too_many_rows(rows)


@dataclass
class StackSpec:
    """A whole stack. ``out_act`` is the last layer's activation unless that layer sets its own;
    ``bias_init`` None means each initializer's own default (zeros; torch_default's uniform).
    ``input_shape`` is one sample's shape: ``(width,)`` or ``(channels, height, width)``."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    act: str = "relu"
    out_act: str = "linear"
    init: str = "he_normal"
    bias_init: str | None = None
    name: str | None = None

    def resolve(self) -> StackSpec:
        """Every layer named and given its act/init/bias_init, each in canonical form; the keys of
        every layer and the shapes through the stack checked (`graph.rows`). A stack of more than
        `MAX_ROWS` rows, or with residual blocks nested deeper than `MAX_NESTING`, is refused first.
        Linear in the number of layers."""
        if not self.layers:
            raise InitdiagError("a stack needs at least one layer")
        _check_size(self.layers)
        shape = tuple(self.input_shape)
        if len(shape) not in (1, 3) or not all(_is_int(w) for w in shape):
            raise SpecLayerError(
                "input shape must be [width] or [channels, height, width] of positive integers, "
                f"got {list(shape)}",
                ("input_shape",),
            )
        canon = _Canon()
        act, out_act, init = canon("act", self.act), canon("act", self.out_act), canon("init", self.init)
        bias_init = canon("bias_init", self.bias_init)
        layers = _resolve_sequence(
            tuple(self.layers),
            canon,
            act=act,
            init=init,
            bias_init=bias_init,
            out_act=out_act,
            prefix="",
            path=("layers",),
        )
        seen: set[str] = set()
        repeated: set[str] = set()
        for layer in _walk(layers):
            (repeated if layer.name in seen else seen).add(layer.name)
        duplicates = sorted(repeated)
        if duplicates:
            raise InitdiagError(f"layer names must be unique; repeated: {', '.join(duplicates)}")
        resolved = replace(
            self, input_shape=shape, layers=layers, act=act, out_act=out_act, init=init, bias_init=bias_init
        )
        from .graph import rows

        rows(resolved)  # shapes: raises on a kernel larger than its input, a dense layer on images, ...
        return resolved

    @property
    def is_dense_chain(self) -> bool:
        """Only dense layers, one after another (what the plain shorthand describes)."""
        return len(self.input_shape) == 1 and all(layer.kind == "dense" for layer in self.layers)

    @property
    def widths(self) -> tuple[int, ...]:
        """The input width and every layer's units, for a dense chain."""
        if not self.is_dense_chain:
            raise ValueError("widths: the stack is not a chain of dense layers")
        return (self.input_shape[-1], *(layer.units for layer in self.layers))

    def shorthand(self) -> str | None:
        """``784,256x3,10``: the widths, runs of more than two layers folded (None unless the
        stack is a dense chain)."""
        if not self.is_dense_chain:
            return None
        parts = [str(self.widths[0])]
        for width, run in itertools.groupby(self.widths[1:]):
            count = len(list(run))
            parts.append(f"{width}x{count}" if count > 2 else ",".join([str(width)] * count))
        return ",".join(parts)

    def walk(self):
        """Every layer, depth first: a residual block comes before the layers of its branch."""
        return _walk(self.layers)

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


def where(path: tuple) -> str:
    """("layers", 3, "units") -> "layers[3].units"; the document itself is "the spec"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the spec"


def parse_widths(text: str) -> list[int]:
    """``"784,256x3,10"`` -> [784, 256, 256, 256, 10]; one clear error per malformed entry. More than
    `MAX_ROWS` layers are refused before the list is built (``256x1000000000000`` at once)."""
    text = str(text)
    shown = one_line(text)
    entries: list[tuple[int, int]] = []
    for position, raw in enumerate(text.split(","), start=1):
        item = raw.strip()
        if not item:
            raise InitdiagError(
                f"--layers '{shown}': empty width at position {position}; "
                "write comma-separated positive integers, e.g. 784,256,10"
            )
        if item.lower().count("x") > 1:
            raise InitdiagError(
                f"--layers '{shown}': '{one_line(item)}' looks like an image shape; the shorthand builds "
                "dense stacks, so describe a conv stack in a spec file "
                '(input_shape = [3, 32, 32], kind = "conv2d")'
            )
        base, sep, count = item.lower().partition("x")
        width = _positive_int(base, shown, item, "width")
        repeat = _positive_int(count, shown, item, "repeat count") if sep else 1
        entries.append((width, repeat))
    layers = sum(repeat for _, repeat in entries) - 1  # the first width is the input
    if layers < 1:
        raise InitdiagError(
            f"--layers '{shown}': needs an input width and at least one layer, e.g. 784,256,10"
        )
    if layers > MAX_ROWS:
        raise InitdiagError(f"--layers '{shown}': {too_many_rows(layers)}")
    return [width for width, repeat in entries for _ in range(repeat)]


def _positive_int(token: str, text: str, item: str, what: str) -> int:
    """*token* as a positive integer (ASCII digits, as Python writes them), or one clear error;
    *text* is the shorthand as messages show it."""
    token = token.strip()
    try:
        if not token.isascii():
            raise ValueError(token)
        value = int(token)
    except ValueError:
        if token.isascii() and token.lstrip("+").isdigit():  # more digits than int() reads
            raise InitdiagError(f"--layers '{text}': {what} '{one_line(token, 20)}' is too large") from None
        raise InitdiagError(
            f"--layers '{text}': '{one_line(item)}' is not a {what}; write positive integers, "
            "a width may repeat as 256x8"
        ) from None
    if value < 1:
        raise InitdiagError(
            f"--layers '{text}': {what} must be a positive integer, got {one_line(str(value), 20)}"
        )
    return value


def parse_layers(
    text: str,
    *,
    act: str = "relu",
    out_act: str = "linear",
    init: str = "he_normal",
    bias_init: str | None = None,
    norm: str | None = None,
    residual: bool = False,
    residual_scale: float | None = None,
    dropout: float | None = None,
) -> StackSpec:
    """The shorthand: first width is the input, each further width a dense layer.

    On every hidden layer (not the last): *norm* (``batch`` or ``layer``) adds a normalization
    layer after the dense one, which takes the activation (Linear -> Norm -> act); *dropout* adds
    ``dropout`` with that rate after it. *residual* makes each hidden layer that keeps its width a
    pre-activation residual block (He et al. 2016): ``x + residual_scale * W act(norm(x))``, the
    branch being [norm], activation, dense (linear), [dropout].
    """
    widths = parse_widths(text)
    if norm is not None and norm not in NORMS:
        raise InitdiagError(f"--norm '{norm}': allowed: {', '.join(NORMS)}")
    if dropout is not None and not (_is_number(dropout) and 0 <= dropout < 1):
        raise InitdiagError(f"--dropout must be a number in [0, 1), got {dropout:g}")
    if residual_scale is not None:
        if not residual:
            raise InitdiagError("--residual-scale needs --residual")
        if not _is_number(residual_scale):
            raise InitdiagError(f"--residual-scale must be a finite number, got {residual_scale}")
    layers: list[LayerSpec] = []
    blocks = 0
    normalization = [LayerSpec(kind=f"{norm}norm")] if norm in ("batch", "layer") else []
    drop = [LayerSpec(kind="dropout", rate=dropout)] if dropout else []
    for fan_in, units in itertools.pairwise(widths[:-1]):
        if residual and fan_in == units:
            # pre-activation (He et al. 2016, "Identity mappings"): x + scale * W act(norm(x))
            branch = (
                *normalization,
                LayerSpec(kind="activation"),
                LayerSpec(units=units, act="linear"),
                *drop,
            )
            layers.append(LayerSpec(kind="residual", layers=branch, scale=residual_scale))
            blocks += 1
        else:
            layers.extend([LayerSpec(units=units), *normalization, *drop])
    if residual and not blocks:
        raise InitdiagError(
            f"--residual: no hidden layer of '{text}' keeps its width, so none can add its input "
            "to its output; e.g. 256,256x8,10"
        )
    layers.append(LayerSpec(units=widths[-1]))
    return StackSpec(
        input_shape=(widths[0],),
        layers=tuple(layers),
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
    theory: bool = True  # mean-field predictions beside the measurement (dense stacks)
    jacobian: bool = False  # the input-output Jacobian's singular values (dense stacks)


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


_SHORTHAND_OPTIONS = ("norm", "residual", "residual_scale", "dropout")


def _without(layers: tuple[LayerSpec, ...], values: dict[str, None]) -> tuple[LayerSpec, ...]:
    """The layers (and their branches) with the given keys unset, so the stack's defaults apply."""
    return tuple(replace(layer, **values, layers=_without(layer.layers, values)) for layer in layers)


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
    *stack_options* (act, out_act, init, bias_init) replace the stack's defaults; ``init`` and
    ``bias_init`` also replace the values a file's layers set themselves, unless
    ``keep_layer_inits`` is given and true (a layer's ``act`` is its architecture and is kept);
    norm, residual, residual_scale and dropout shape the shorthand only. Options that are None were
    not given.
    """
    from_file = config is not None or spec is not None
    if layers is not None:
        layers = as_shorthand(layers)
    if layers and from_file:
        raise InitdiagError("give --layers or --config, not both")
    if not layers and not from_file:
        raise InitdiagError("a stack is needed: --layers 784,256,10 or --config SPEC.toml")
    stack_options = {k: v for k, v in (stack_options or {}).items() if v is not None and v is not False}
    keep_layer_inits = bool(stack_options.pop("keep_layer_inits", False))
    if keep_layer_inits and not from_file:
        raise InitdiagError(
            "--keep-layer-inits keeps the inits a spec file's layers set; give it with --config"
        )
    shorthand_only = [k for k in _SHORTHAND_OPTIONS if k in stack_options]
    if from_file and shorthand_only:
        option = "--" + shorthand_only[0].replace("_", "-")
        raise InitdiagError(
            f"{option} shapes a --layers shorthand; in a spec file, write the layers "
            "(batchnorm, layernorm, dropout, residual) where you want them"
        )
    defaults = {**PROBE_DEFAULTS, **(probe_defaults or {})}
    if from_file:
        if spec is None:
            from .specfile import load_spec  # only when a file is read

            spec = load_spec(config)
        stack, check = replace(spec.stack, **stack_options), spec.check
        if not keep_layer_inits:
            given = {k: None for k in ("init", "bias_init") if k in stack_options}
            stack = replace(stack, layers=_without(stack.layers, given)) if given else stack
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


def as_shorthand(layers: Any) -> str:
    """The ``--layers`` text of *layers*: the text itself, or any sequence of widths, input first
    (``[784, 256, 10]``, a tuple, a numpy array) joined as ``784,256,10``."""
    if isinstance(layers, str):
        return layers
    import numbers

    try:
        widths = list(layers)
    except TypeError:
        widths = None
    if widths is None or not all(isinstance(w, numbers.Integral) and not isinstance(w, bool) for w in widths):
        raise InitdiagError(
            f"--layers must be text like '784,256,10' or a sequence of integer widths like [784, 256, 10], "
            f"got {layers!r}"
        )
    return ",".join(str(int(w)) for w in widths)
