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

Here: `StackSpec` and its resolution. A resolved stack holds objects, not text: each layer's
activation is an `Activation` and its initializers `Initializer` instances, parsed once."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InitdiagError, SpecLayerError, did_you_mean
from .kinds import (
    KINDS,
    NORM_KINDS,
    LayerSpec,
    check_layer,
    default_of,
    is_int,
    row_count,
    walk_layers,
    where,
)


class _Canon:
    """Activations and initializers parsed into objects, each text once (a stack of a thousand
    layers with one init parses it once). An object given instead of text is kept as it is."""

    def __init__(self):
        from ..core.activations import get_activation
        from ..core.init_parser import get_bias_initializer, get_initializer

        self._parsers = {"act": get_activation, "init": get_initializer, "bias_init": get_bias_initializer,
                         "mlp_act": _mlp_activation}  # fmt: skip
        self._seen: dict[tuple[str, str], Any] = {}

    def __call__(self, key: str, text: Any, label: str = "", path: tuple = ()) -> Any:
        if text is None or not isinstance(text, str):
            return text
        if (key, text) not in self._seen:
            try:
                self._seen[key, text] = self._parsers[key](text)
            except InitdiagError as exc:
                if not label:
                    raise
                raise SpecLayerError(f"{label}: {exc}", path) from None
        return self._seen[key, text]


def _mlp_activation(text: str):
    # imported on first use: core.mlp brings the transformer's layers, which a dense stack never needs
    from ..core.mlp import get_mlp_activation

    return get_mlp_activation(text)


def text_of(value: Any) -> str | None:
    """A resolved activation's or initializer's canonical text (``he_normal:mode=fan_out``)."""
    return None if value is None else str(value)


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
        check_layer(entry, label, (*path, k))
    out_index = output_index(entries) if out_act is not None else None
    counters: dict[str, int] = {}
    resolved = []
    for k, entry in enumerate(entries):
        info = entry.info
        counters[info.prefix] = counters.get(info.prefix, 0) + 1
        name = prefix + entry.name if entry.name else auto_name(entry.kind, counters[info.prefix], prefix)
        at = (*path, k)
        values: dict[str, Any] = {"name": name}
        if entry.kind == "transformer":  # blocks = N: N blocks, named as N entries of repeat would be
            blocks = entry.blocks or 1
            first = counters[info.prefix]
            counters[info.prefix] += blocks - 1
            if entry.block_names:  # resolved before
                values["block_names"] = entry.block_names
            elif entry.name:
                values["block_names"] = (
                    (name,) if blocks == 1 else tuple(f"{name}_{b + 1}" for b in range(blocks))
                )
            else:
                values["block_names"] = tuple(
                    auto_name("transformer", first + b, prefix) for b in range(blocks)
                )
        if entry.kind in ("mlp", "transformer"):  # the MLP's own activation (gelu unless given)
            values["act"] = canon("mlp_act", entry.act or "gelu", f"layer {name}", at)
        if info.takes_act:
            chosen = entry.act
            if chosen is None:
                chosen = default_act(
                    entries, k, act, out_act, out_index, k > 0 and entries[k - 1].act is None
                )
            values["act"] = canon("act", chosen, f"layer {name}", at)
        if info.weighted or entry.kind == "residual":
            values["init"] = canon("init", entry.init, f"layer {name}", at) or init
            if "bias_init" in info.keys:  # (an embedding has none)
                given_bias = canon("bias_init", entry.bias_init, f"layer {name}", at)
                values["bias_init"] = given_bias if given_bias is not None else bias_init
        for key in info.keys:
            if getattr(entry, key) is None and default_of(entry.kind, key) is not None:
                values[key] = default_of(entry.kind, key)
        for key in ("mult", "alpha"):
            if getattr(entry, key) is not None:
                values[key] = float(getattr(entry, key))
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


# The most rows a stack may have: every layer, counting those inside residual blocks and each block's
# own sum row (what `graph.rows` gives). `StackSpec.resolve`, the ``--layers`` shorthand and a spec
# file's ``repeat`` refuse a larger stack at once, before building it: a probe of one would run for
# minutes and its table could not be read.
MAX_ROWS = 10_000


# How deep residual blocks may nest inside one another (a block in a block is 2 deep).
MAX_NESTING = 32


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
        rows += sum(row_count(layer) for layer in sequence)
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
    ``input_shape`` is one sample's shape: ``(width,)``, ``(seq, d)`` (a sequence of float tokens) or
    ``(channels, height, width)``; token ids are ``(seq,)`` with ``vocab`` set (``"seq=64,vocab=1000"``
    as text, or a `model.InputShape`, is read so by `resolve`). ``role_init`` maps the roles of
    `initdiag.core.role_inits.ROLE_KEYS` (``qkv``, ``out_proj``, ...) to the initializer of every weight
    of that role, over the layers' own (a spec file's ``[init]`` table)."""

    input_shape: Any
    layers: tuple[LayerSpec, ...]
    act: Any = "relu"  # text, or once resolved an `Activation` (so are the three below)
    out_act: Any = "linear"
    init: Any = "he_normal"
    bias_init: Any = None
    name: str | None = None
    vocab: int | None = None  # token ids below vocab: input_shape is (seq,)
    role_init: dict[str, Any] = field(default_factory=dict)

    @property
    def takes_tokens(self) -> bool:
        return self.vocab is not None

    def resolve(self) -> StackSpec:
        """Every layer named and given its act/init/bias_init, each parsed once into an object
        (`Activation`, `Initializer`: nothing after this reads their text); the keys of every layer
        and the shapes through the stack checked (`graph.rows`). A stack of more than
        `MAX_ROWS` rows, or with residual blocks nested deeper than `MAX_NESTING`, is refused first.
        Linear in the number of layers."""
        if not self.layers:
            raise InitdiagError("a stack needs at least one layer")
        _check_size(self.layers)
        shape, vocab = _input_shape(self.input_shape, self.vocab)
        canon = _Canon()

        def stack_wide(key: str, option: str, value: Any) -> Any:
            """The stack's own act/out_act/init/bias_init; an error names the option it came from."""
            try:
                return canon(key, value)
            except InitdiagError as exc:
                raise InitdiagError(f"{option}: {exc}", getattr(exc, "keywords", None)) from None

        act, out_act = stack_wide("act", "--act", self.act), stack_wide("act", "--out-act", self.out_act)
        init, bias_init = (
            stack_wide("init", "--init", self.init),
            stack_wide("bias_init", "--bias-init", self.bias_init),
        )
        role_init = _role_inits(self.role_init, canon)
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
        for layer in walk_layers(layers):
            (repeated if layer.name in seen else seen).add(layer.name)
        duplicates = sorted(repeated)
        if duplicates:
            raise InitdiagError(f"layer names must be unique; repeated: {', '.join(duplicates)}")
        resolved = replace(self, input_shape=shape, layers=layers, act=act, out_act=out_act, init=init,
                           bias_init=bias_init, vocab=vocab, role_init=role_init)  # fmt: skip
        from .graph import rows

        rows(resolved)  # shapes: raises on a kernel larger than its input, a dense layer on images, ...
        return resolved

    @property
    def is_dense_chain(self) -> bool:
        """Only dense layers, one after another (what the plain shorthand describes)."""
        return (
            len(self.input_shape) == 1
            and not self.takes_tokens
            and all(layer.kind == "dense" for layer in self.layers)
        )

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
        return walk_layers(self.layers)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "input_shape": self.input_text if self.takes_tokens else list(self.input_shape),
            "defaults": {
                "act": text_of(self.act),
                "out_act": text_of(self.out_act),
                "init": text_of(self.init),
                "bias_init": text_of(self.bias_init),
            },
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.role_init:
            out["init"] = {role: text_of(value) for role, value in self.role_init.items()}
        return out

    @property
    def input_text(self) -> str:
        """``seq=64,vocab=1000`` for token ids, ``784`` / ``64x256`` / ``3x32x32`` otherwise."""
        if self.takes_tokens:
            return f"seq={self.input_shape[0]},vocab={self.vocab}"
        return "x".join(map(str, self.input_shape))

    def as_text(self) -> StackSpec:
        """The same stack with every activation and initializer back as its canonical text."""
        return replace(self, act=text_of(self.act), out_act=text_of(self.out_act), init=text_of(self.init),
                       bias_init=text_of(self.bias_init), layers=_layers_as_text(self.layers),
                       role_init={k: text_of(v) for k, v in self.role_init.items()})  # fmt: skip


def _input_shape(given: Any, vocab: int | None) -> tuple[tuple[int, ...], int | None]:
    """One sample's shape and the vocabulary of token ids (None: floats), checked."""
    if isinstance(given, str) or hasattr(given, "vocab"):
        from .model import parse_input_shape

        try:
            parsed = parse_input_shape(given)
        except InitdiagError as exc:
            raise SpecLayerError(str(exc).replace("--input-shape", "input_shape"), ("input_shape",)) from None
        given, vocab = parsed.shape, parsed.vocab if parsed.kind == "tokens" else vocab
    shape = tuple(given)
    if vocab is not None:
        if len(shape) != 1 or not is_int(shape[0]) or not is_int(vocab, 2):
            raise SpecLayerError(
                "token ids are one sequence per sample, e.g. seq=64,vocab=1000, got "
                f"{list(shape)} with vocab {vocab}",
                ("input_shape",),
            )
        return shape, int(vocab)
    if len(shape) not in (1, 2, 3) or not all(is_int(w) for w in shape):
        raise SpecLayerError(
            "input shape must be [width], [seq, d] (a sequence of vectors), [channels, height, width] of "
            f"positive integers, or seq=S,vocab=V for token ids, got {list(shape)}",
            ("input_shape",),
        )
    return shape, None


def _role_inits(given: dict, canon: _Canon) -> dict[str, Any]:
    """The ``[init]`` table: each role's initializer, parsed once; an unknown role is one error."""
    from ..core.role_inits import ROLE_KEYS

    out = {}
    for role, text in (given or {}).items():
        if role not in ROLE_KEYS:
            hint = did_you_mean(str(role), ROLE_KEYS) or f"; allowed: {', '.join(ROLE_KEYS)}"
            raise SpecLayerError(f"init.{role}: unknown role{hint}", ("init", role))
        out[role] = canon("init", text, f"init.{role}", ("init", role))
    return out


def _layers_as_text(layers) -> tuple:
    return tuple(
        replace(
            layer,
            act=text_of(layer.act),
            init=text_of(layer.init),
            bias_init=text_of(layer.bias_init),
            layers=_layers_as_text(layer.layers),
        )
        for layer in layers
    )
