"""Architecture spec files: TOML, YAML or JSON, one schema (`initdiag.network.schema`).

A document is read by `initdiag.network.parse` into plain data and a source map (key paths to
line numbers), checked against the schema, and built here into a `SpecFile`; every error names the
file, the line and the key (``spec.toml:12: layers[3].units must be a positive integer, got 0``),
as do ``initdiag check``'s GitHub annotations. `to_data` and `dump` go the other way, for
``--emit-spec``.

A spec file and the ``--layers`` shorthand build the same objects: a `StackSpec` for the layers, the
probe settings it gives explicitly, and the `CheckSettings` of its ``check`` section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InitdiagError, SpecLayerError
from .document import read_document
from .kinds import KINDS, TOKEN_KINDS, LayerSpec, default_of, walk_layers, where
from .parse import SourceMap, SpecError
from .schema import validate
from .settings import FLAGS, CheckSettings, ProbeSettings, Thresholds
from .stack import MAX_ROWS, StackSpec, auto_name, default_act, output_index, too_many_rows

# the layer keys copied as they are (kind, name, act/init and the nested layers are handled apart)
_VALUE_KEYS = ("units", "channels", "stride", "padding", "size", "rate", "eps", "scale", "d", "vocab",
               "positions", "max_seq", "heads", "head_dim", "causal", "bias", "qk_norm", "mult", "hidden",
               "norm", "sandwich", "norm_type", "alpha", "blocks", "tied")  # fmt: skip


# --- source maps: key path -> line ------------------------------------------------------------------


# --- parsing ------------------------------------------------------------------------------------


# --- validation against SCHEMA --------------------------------------------------------------------


# --- building the objects -----------------------------------------------------------------------


@dataclass
class SpecFile:
    """A loaded spec: the stack as written (checked, not yet resolved, so command-line options can
    still replace its defaults), the probe settings the file gives, its check settings, and the
    source line of each (expanded) layer."""

    path: str
    stack: StackSpec
    probe: dict[str, Any]
    check: CheckSettings
    layer_lines: list[int | None]
    source: SourceMap

    def settings(
        self, defaults: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
    ) -> ProbeSettings:
        """Probe settings: *defaults* < the file's ``probe`` section < *overrides* (command line)."""
        values = {
            **(defaults or {}),
            **self.probe,
            **{k: v for k, v in (overrides or {}).items() if v is not None},
        }
        return ProbeSettings(thresholds=self.check.thresholds, **values)


def build(data: Any, source: SourceMap, path: str = "<spec>") -> SpecFile:
    """Check *data* against the schema and the names it uses, and build a `SpecFile`; every
    problem found is reported at once in one `SpecError`."""
    from ..core.activations import get_activation
    from ..core.init_parser import get_bias_initializer, get_initializer

    if not isinstance(data, dict):
        raise SpecError(path, [(1, "a spec must be a table of keys (input_shape, layers, ...)")])
    rows = _expanded_rows(data.get("layers"))
    if rows > MAX_ROWS:  # refused before the layers are validated or built
        raise SpecError(path, [(source.line(("layers",)), str(too_many_rows(rows)))])
    problems = [(source.line(p), message) for p, message in validate(data)]
    base = Path(path).parent

    def relative(value: str | None) -> str | None:
        """Paths inside a spec are relative to the spec file (file:PATH.npz, probe.input)."""
        if not isinstance(value, str) or not value.lower().startswith("file:"):
            return value
        target = Path(value[5:].strip())
        return value if target.is_absolute() else f"file:{base / target}"

    def check_names(table: Any, key_path: tuple, keys) -> None:
        """Parse the activation / initializer names of one table, each error at its own line."""
        if not isinstance(table, dict):
            return
        for key, parse in keys:
            value = table.get(key)
            if isinstance(value, str):
                try:
                    parse(relative(value))
                except InitdiagError as exc:
                    problems.append((source.line((*key_path, key)), f"{where((*key_path, key))}: {exc}"))

    from ..core.mlp import get_mlp_activation

    acts = (("act", get_activation), ("out_act", get_activation))
    inits = (("init", get_initializer), ("bias_init", get_bias_initializer))
    check_names(data.get("defaults"), ("defaults",), acts + inits)

    def check_layer_names(entries: Any, key_path: tuple) -> None:
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            mlp = isinstance(entry, dict) and entry.get("kind") in ("mlp", "transformer")
            check_names(
                entry, (*key_path, index), ((("act", get_mlp_activation),) if mlp else acts[:1]) + inits
            )
            if isinstance(entry, dict):
                check_layer_names(entry.get("layers"), (*key_path, index, "layers"))

    check_layer_names(data.get("layers"), ("layers",))
    from ..core.role_inits import ROLE_KEYS

    check_names(data.get("init"), ("init",), tuple((role, get_initializer) for role in ROLE_KEYS))
    if "model" in data and "layers" in data:
        problems.append(
            (source.line(("model",)), "give layers (a stack) or model (a PyTorch model), not both")
        )
    elif "model" not in data and "layers" not in data:
        problems.append((1, "missing key 'layers' (a stack), or 'model' (a PyTorch model)"))
    elif isinstance(data.get("input_shape"), str | list if "model" in data else str):
        from .model import parse_input_shape

        try:
            parse_input_shape(data["input_shape"])
        except InitdiagError as exc:
            problems.append((source.line(("input_shape",)), str(exc).replace("--input-shape", "input_shape")))
    if problems:
        problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
        raise SpecError(path, problems)

    if "model" in data:
        return _model_file(data, source, path)
    defaults = {**data.get("defaults", {})}
    defaults["init"] = relative(defaults.get("init", "he_normal"))
    layer_lines: list[int | None] = []  # in `StackSpec.walk` order
    expanded_lines: dict[tuple, int | None] = {}  # a layer's path after `repeat` -> its line

    def make(entries: list, file_path: tuple, path: tuple) -> tuple[LayerSpec, ...]:
        out: list[LayerSpec] = []
        for index, entry in enumerate(entries):
            repeat = entry.get("repeat", 1)
            for k in range(repeat):
                at = (*path, len(out))
                line = source.line((*file_path, index))
                expanded_lines[at] = line
                layer_lines.append(line)
                name = entry.get("name")
                kernel = entry.get("kernel")
                out.append(
                    LayerSpec(
                        kind=entry.get("kind", "dense"),
                        name=f"{name}_{k + 1}" if name and repeat > 1 else name,
                        act=entry.get("act"),
                        init=relative(entry.get("init")),
                        bias_init=entry.get("bias_init"),
                        kernel=tuple(kernel) if isinstance(kernel, list) else kernel,
                        layers=make(entry.get("layers", []), (*file_path, index, "layers"), (*at, "layers")),
                        **{key: entry.get(key) for key in _VALUE_KEYS},
                    )
                )
        return tuple(out)

    layers = make(data["layers"], ("layers",), ("layers",))

    shape = data["input_shape"]
    stack = StackSpec(
        input_shape=shape if isinstance(shape, str) else tuple(shape),
        role_init={role: relative(text) for role, text in data.get("init", {}).items()},
        layers=tuple(layers),
        act=defaults.get("act", "relu"),
        out_act=defaults.get("out_act", "linear"),
        init=defaults["init"],
        bias_init=defaults.get("bias_init"),
        name=data.get("name") or Path(path).stem,
    )
    try:
        stack.resolve()
    except SpecLayerError as exc:
        at = exc.path
        while at and at not in expanded_lines:
            at = at[:-1]
        line = expanded_lines.get(at) if at else None
        raise SpecError(path, [(line or source.line(exc.path or ("layers",)), str(exc))]) from None
    except InitdiagError as exc:
        raise SpecError(path, [(source.line(("layers",)), str(exc))]) from None
    return SpecFile(path, stack, _probe_section(data, base), _check_section(data), layer_lines, source)


def _probe_section(data: dict, base: Path) -> dict[str, Any]:
    probe = dict(data.get("probe", {}))
    if (
        "input" in probe
        and probe["input"].lower().endswith(".npy")
        and not Path(probe["input"]).is_absolute()
    ):
        probe["input"] = str(base / probe["input"])
    return probe


def _model_file(data: dict, source: SourceMap, path: str) -> SpecFile:
    """A spec that names a PyTorch model: its factory, arguments and input; no layers."""
    from .model import ModelSpec, parse_input_shape

    model = ModelSpec(
        data["model"],
        parse_input_shape(data["input_shape"]),
        dict(data.get("model_args", {})),
        name=data.get("name") or Path(path).stem,
        base_dir=str(Path(path).parent),
    )
    return SpecFile(path, model, _probe_section(data, Path(path).parent), _check_section(data), [], source)


def _check_section(data: dict) -> CheckSettings:
    check_data = data.get("check", {})
    thresholds = Thresholds(
        **{
            key: float(check_data[key])
            for key in (
                "max_forward_gain",
                "max_backward_gain",
                "max_dead_fraction",
                "max_saturated_fraction",
                "max_token_cosine",
                "min_attn_entropy",
                "max_stream_growth",
            )
            if key in check_data
        }
    )
    return CheckSettings(
        thresholds=thresholds,
        allow_symmetric=check_data.get("allow_symmetric", False),
        fail_on=tuple(check_data.get("fail_on", FLAGS)),
    )


def _expanded_rows(entries: Any) -> int:
    """The rows a list of layer entries makes once each ``repeat`` is expanded (a residual block is
    its sum row and its branch's rows), counted without expanding; entries that are not valid
    count once, for `validate` to report."""
    rows = 0
    todo = [(entries, 1)]
    while todo:
        sequence, times = todo.pop()
        if not isinstance(sequence, list):
            continue
        for entry in sequence:
            repeat = entry.get("repeat", 1) if isinstance(entry, dict) else 1
            if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
                repeat = 1
            blocks = (
                entry.get("blocks", 1)
                if isinstance(entry, dict) and entry.get("kind") == "transformer"
                else 0
            )
            rows += times * repeat * (8 * blocks if isinstance(blocks, int) and blocks > 0 else 1)
            if isinstance(entry, dict):
                todo.append((entry.get("layers"), times * repeat))
    return rows


def load_spec(path: str | Path) -> SpecFile:
    """Read, check and build a spec file (.toml, .yaml/.yml or .json)."""
    path = str(path)
    data, source = read_document(path)
    return build(data, source, path)


# --- writing ------------------------------------------------------------------------------------


def to_data(stack: StackSpec, settings: ProbeSettings, check: CheckSettings | None = None) -> dict[str, Any]:
    """The spec-file document for a stack, its probe settings and check settings; runs of identical
    unnamed layers are folded with ``repeat``."""
    check = check or CheckSettings(thresholds=settings.thresholds)
    data: dict[str, Any] = {}
    if stack.name:
        data["name"] = stack.name
    if hasattr(stack, "model"):  # a PyTorch model: its factory, arguments and input
        data["model"] = stack.model
        if stack.args:
            data["model_args"] = dict(stack.args)
        data["input_shape"] = str(stack.input_shape)
    else:
        stack = stack.as_text()  # a resolved stack holds objects; the document holds their text
        data["input_shape"] = stack.input_text if stack.takes_tokens else list(stack.input_shape)
        data["defaults"] = {"act": stack.act, "out_act": stack.out_act, "init": stack.init}
        if stack.bias_init is not None:
            data["defaults"]["bias_init"] = stack.bias_init
        if stack.role_init:
            data["init"] = dict(stack.role_init)
        data["layers"] = _layer_entries(
            stack.layers,
            act=stack.act,
            out_act=stack.out_act,
            init=stack.init,
            bias_init=stack.bias_init,
            prefix="",
        )

    t = check.thresholds
    data["probe"] = {
        "batch": settings.batch,
        "seed": settings.seed,
        "trials": settings.trials,
        "loss": settings.loss,
        "dtype": settings.dtype,
        "input": settings.input,
    }
    data["check"] = {
        "max_forward_gain": t.max_forward_gain,
        "max_backward_gain": t.max_backward_gain,
        "max_dead_fraction": t.max_dead_fraction,
        "max_saturated_fraction": t.max_saturated_fraction,
    }
    tokens = not hasattr(stack, "model") and any(
        layer.kind in TOKEN_KINDS for layer in walk_layers(stack.layers)
    )
    defaults = Thresholds()
    for key in ("max_token_cosine", "min_attn_entropy", "max_stream_growth"):  # a transformer's
        if tokens or getattr(t, key) != getattr(defaults, key):
            data["check"][key] = getattr(t, key)
    data["check"] |= {"allow_symmetric": check.allow_symmetric, "fail_on": list(check.fail_on)}
    return data


def _layer_entries(layers, *, act, out_act, init, bias_init, prefix) -> list[dict[str, Any]]:
    """The entries of one sequence of resolved layers: each key that resolving the entry without
    it would not give back; runs of identical unnamed entries folded with ``repeat``."""
    out_index = output_index(layers) if out_act is not None else None
    entries: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    open_act = False  # whether the previous entry's act was left out
    for k, layer in enumerate(layers):
        info = KINDS[layer.kind]
        counters[info.prefix] = counters.get(info.prefix, 0) + 1
        entry: dict[str, Any] = {} if layer.kind == "dense" else {"kind": layer.kind}
        auto = layer.name == auto_name(layer.kind, counters[info.prefix], prefix)
        if layer.kind == "transformer":  # its blocks took a count each
            counters[info.prefix] += (layer.blocks or 1) - 1
        if not auto:
            entry["name"] = layer.name.removeprefix(prefix)
        for key in info.keys:
            value = getattr(layer, key)
            if (
                key in ("act", "init", "bias_init", "layers")
                or value is None
                or value == default_of(layer.kind, key)
            ):
                continue
            entry[key] = list(value) if isinstance(value, tuple) else value
        was_open, open_act = open_act, False
        if layer.kind in ("mlp", "transformer") and str(layer.act) != "gelu":
            entry["act"] = str(layer.act)
        if info.takes_act:
            if layer.act != default_act(layers, k, act, out_act, out_index, was_open):
                entry["act"] = layer.act
            else:
                open_act = True
        if info.weighted or layer.kind == "residual":
            if layer.init != init:
                entry["init"] = layer.init
            if layer.bias_init != bias_init:
                entry["bias_init"] = layer.bias_init
        if layer.kind == "residual":
            if layer.act is not None and layer.act != act:
                entry["act"] = layer.act
            entry["layers"] = _layer_entries(layer.layers, act=layer.act or act, out_act=None,
                                             init=layer.init, bias_init=layer.bias_init,
                                             prefix=f"{layer.name}.")  # fmt: skip
        previous = entries[-1] if entries else None
        if auto and previous is not None and {k: v for k, v in previous.items() if k != "repeat"} == entry:
            previous["repeat"] = previous.get("repeat", 1) + 1
        else:
            entries.append(entry)
    return entries


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # TOML basic strings share JSON's escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def dump(data: dict[str, Any], fmt: str) -> str:
    """Write a spec document as TOML, YAML or JSON."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)

    def is_table_list(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)

    def table(values: dict[str, Any], prefix: str) -> list[str]:
        """Plain keys first, then [tables] and [[arrays of tables]] (a residual block's layers are
        ``[[layers.layers]]`` under their block), as TOML requires."""
        lines = [
            f"{k} = {_toml_value(v)}"
            for k, v in values.items()
            if not isinstance(v, dict) and not is_table_list(v)
        ]
        for key, value in values.items():
            if isinstance(value, dict):
                lines += ["", f"[{prefix}{key}]", *table(value, f"{prefix}{key}.")]
            elif is_table_list(value):
                for entry in value:
                    lines += ["", f"[[{prefix}{key}]]", *table(entry, f"{prefix}{key}.")]
        return lines

    return "\n".join(table(data, "")) + "\n"
