"""Architecture spec files: TOML, YAML or JSON, one schema.

The schema is written once, as a JSON Schema (`SCHEMA`): ``initdiag schema`` prints it for editors
and other tools, and `validate` enforces the same document here, with messages that name the file,
the line and the key (``spec.toml:12: layers[3].units must be a positive integer, got 0``). Each
parser also returns a *source map* from key paths to line numbers, so that errors, and ``initdiag
check``'s GitHub annotations, point at the offending line.

A spec file and the ``--layers`` shorthand build the same objects: a `StackSpec` for the layers, the
probe settings it gives explicitly, and the `CheckSettings` of its ``check`` section.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InitdiagError, did_you_mean, one_line
from .spec import (
    DEFAULTS,
    FLAGS,
    KINDS,
    LAYER_KINDS,
    MAX_ROWS,
    PADDINGS,
    CheckSettings,
    LayerSpec,
    ProbeSettings,
    SpecLayerError,
    StackSpec,
    Thresholds,
    auto_name,
    default_act,
    output_index,
    too_many_rows,
    where,
)

# the layer keys copied as they are (kind, name, act/init and the nested layers are handled apart)
_VALUE_KEYS = ("units", "channels", "stride", "padding", "size", "rate", "eps", "scale")
FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}
# Bounds on a document, so that any file is read, or refused, at once, and never deeper than Python's
# recursion limit: how deep its lists and tables nest (a residual block inside a block is 2 levels
# deeper; spec.MAX_NESTING allows 32 blocks), how many values YAML aliases may expand to (a "billion
# laughs" document is a few lines), and its size.
MAX_DEPTH = 100
MAX_VALUES = 1_000_000
MAX_BYTES = 4 << 20  # a spec of 10,000 layers written out one by one is about 1 MiB

_STRING_NAME = {"type": "string"}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "initdiag architecture spec",
    "description": "A layer stack to probe, how to probe it, and what `initdiag check` accepts.",
    "type": "object",
    "additionalProperties": False,
    "required": ["input_shape", "layers"],
    "properties": {
        "name": {"type": "string", "description": "Shown in tables and reports; default: the file name."},
        "description": {"type": "string", "description": "Free text."},
        "input_shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "minItems": 1,
            "maxItems": 3,
            "description": "Shape of one input sample: [width], e.g. [784], or [channels, height, width], "
            "e.g. [3, 32, 32].",
        },
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "description": "Values every layer takes unless it sets its own.",
            "properties": {
                "act": {**_STRING_NAME, "description": "Hidden activation, e.g. relu, leaky_relu:0.2, gelu."},
                "out_act": {**_STRING_NAME, "description": "The last layer's activation (default linear)."},
                "init": {**_STRING_NAME, "description": "Weight initializer NAME[:ARGS], e.g. he_normal."},
                "bias_init": {**_STRING_NAME, "description": "Bias initializer (default zeros)."},
            },
        },
        "layers": {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/layer"},
            "description": "The layers, input side first.",
        },
        "probe": {
            "type": "object",
            "additionalProperties": False,
            "description": "How to probe; command-line options override these.",
            "properties": {
                "batch": {"type": "integer", "minimum": 1, "description": "Rows of the random input batch."},
                "seed": {"type": "integer", "minimum": 0, "description": "Root seed."},
                "trials": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Seeds to average over (probe default 1, check default 3).",
                },
                "loss": {
                    "enum": ["unit", "mse", "xent"],
                    "description": "The loss whose gradient is probed.",
                },
                "dtype": {"enum": ["float32", "float64"], "description": "Compute dtype."},
                "input": {
                    "type": "string",
                    "description": "normal, uniform, normal:STD, uniform:low=L,high=H or FILE.npy.",
                },
                "jacobian": {
                    "type": "boolean",
                    "description": "The input-output Jacobian's singular values (default false).",
                },
                "theory": {
                    "type": "boolean",
                    "description": "Mean-field predictions beside the measurement (default true).",
                },
            },
        },
        "check": {
            "type": "object",
            "additionalProperties": False,
            "description": "What `initdiag check` accepts.",
            "properties": {
                "max_forward_gain": {
                    "type": "number",
                    "exclusiveMinimum": 1,
                    "description": "A layer whose cumulative forward gain leaves [1/T, T] is flagged.",
                },
                "max_backward_gain": {
                    "type": "number",
                    "exclusiveMinimum": 1,
                    "description": "The same for the backward gain.",
                },
                "max_dead_fraction": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "A layer with more dead units than this share is flagged dead.",
                },
                "max_saturated_fraction": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "A layer with more saturated entries than this share is saturated.",
                },
                "allow_symmetric": {
                    "type": "boolean",
                    "description": "Do not fail on symmetric layers (e.g. a deliberate constant init).",
                },
                "fail_on": {
                    "type": "array",
                    "items": {"enum": list(FLAGS)},
                    "uniqueItems": True,
                    "description": "The flags that fail the check (default: all).",
                },
            },
        },
    },
    "$defs": {
        "layer": {
            "type": "object",
            "additionalProperties": False,
            "description": "One layer; which keys a kind takes is listed under each key.",
            "properties": {
                "kind": {"enum": list(LAYER_KINDS), "description": "Layer kind (default dense)."},
                "name": {
                    "type": "string",
                    "pattern": "^[A-Za-z_][A-Za-z0-9_.-]*$",
                    "description": "Layer name (default: a prefix of its kind and a count, dense1, conv2, "
                    "bn1, res1; inside a residual block prefixed by the block's name, res1.dense1).",
                },
                "units": {"type": "integer", "minimum": 1, "description": "dense: output width."},
                "channels": {"type": "integer", "minimum": 1, "description": "conv2d: output channels."},
                "kernel": {
                    "anyOf": [
                        {"type": "integer", "minimum": 1},
                        {
                            "type": "array",
                            "items": {"type": "integer", "minimum": 1},
                            "minItems": 2,
                            "maxItems": 2,
                        },
                    ],
                    "description": "conv2d: kernel size, k or [kh, kw] (default 3).",
                },
                "stride": {"type": "integer", "minimum": 1, "description": "conv2d: stride (default 1)."},
                "padding": {
                    "anyOf": [{"enum": list(PADDINGS)}, {"type": "integer", "minimum": 0}],
                    "description": "conv2d: same (default), valid, or zeros on each side.",
                },
                "size": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "maxpool2d: window and stride (default 2).",
                },
                "rate": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMaximum": 1,
                    "description": "dropout: the share of entries zeroed.",
                },
                "eps": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "batchnorm, layernorm: added to the variance (default 1e-5).",
                },
                "scale": {
                    "type": "number",
                    "description": "residual: the branch's factor, x + scale * branch(x) (default 1).",
                },
                "layers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/layer"},
                    "description": "residual: the branch.",
                },
                "act": {
                    **_STRING_NAME,
                    "description": "dense, conv2d, batchnorm, layernorm, activation: the activation; "
                    "residual: the default of its branch.",
                },
                "init": {
                    **_STRING_NAME,
                    "description": "dense, conv2d: the weight initializer; residual: the default of its "
                    "branch and the shortcut projection's.",
                },
                "bias_init": {
                    **_STRING_NAME,
                    "description": "dense, conv2d (residual: its branch's default).",
                },
                "repeat": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Repeat this layer N times (names get _1, _2, ... when given).",
                },
            },
            "allOf": [
                {
                    # a layer without kind is dense
                    "if": {
                        "properties": {"kind": {"const": kind}},
                        **({} if kind == "dense" else {"required": ["kind"]}),
                    },
                    "then": {"required": list(info.required)},
                }
                for kind, info in KINDS.items()
                if info.required
            ],
        }
    },
}


class SpecError(InitdiagError):
    """A malformed spec file: every problem found, each as ``file:line: message``."""

    def __init__(self, path: str, problems: list[tuple[int | None, str]]):
        self.path = path
        self.problems = problems
        first = self.lines[0]
        more = len(problems) - 1
        super().__init__(first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))

    @property
    def lines(self) -> list[str]:
        """``file:line: message`` for each problem, each on one line."""
        return [
            f"{self.path}:{line}: {_escape(message)}" if line else f"{self.path}: {_escape(message)}"
            for line, message in self.problems
        ]

    @property
    def first_line(self) -> int | None:
        return self.problems[0][0]


def _escape(message: str) -> str:
    """*message* on one line: control characters (a newline in a key, say) written as escapes."""
    if message.isprintable():
        return message
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)


class _Refused(Exception):
    """A document refused while it is read: its line and the message."""

    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line = line


# --- source maps: key path -> line ------------------------------------------------------------------


@dataclass
class SourceMap:
    """Line numbers (1-based) of the keys and items of a parsed document."""

    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, path: tuple) -> int | None:
        """The line of *path*, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def _offset_to_line(text: str):
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return lambda offset: bisect.bisect_right(starts, offset)


def _json_source_map(text: str) -> tuple[SourceMap, list[tuple[int, str]]]:
    """Lines of every value of a (valid) JSON document, by a small recursive scan (`_json_depth`
    bounds its depth first); and its problems, each (line, message): a key given twice in one
    object, and Python's NaN and Infinity, which ``json.loads`` takes but JSON does not have."""
    from json.decoder import scanstring

    line_of = _offset_to_line(text)
    found: dict[tuple, int] = {}
    problems: list[tuple[int, str]] = []
    number = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
    space = re.compile(r"\s*")

    def skip(i: int) -> int:
        return space.match(text, i).end()

    def value(i: int, path: tuple) -> int:
        i = skip(i)
        found[path] = line_of(i)
        ch = text[i]
        if ch == "{":
            i = skip(i + 1)
            if text[i] == "}":
                return i + 1
            first: dict[str, int] = {}  # key -> its line
            while True:
                key, i = scanstring(text, skip(i) + 1)
                line = line_of(i)
                if key in first:
                    problems.append((line, _duplicate(path, key, first[key])))
                else:
                    first[key] = line
                found[(*path, key)] = line
                i = skip(i) + 1  # the colon
                start = skip(i)
                i = value(i, (*path, key))
                found[(*path, key)] = min(found[(*path, key)], line_of(start))
                i = skip(i)
                if text[i] == "}":
                    return i + 1
                i += 1  # the comma
        if ch == "[":
            i = skip(i + 1)
            if text[i] == "]":
                return i + 1
            index = 0
            while True:
                i = skip(value(i, (*path, index)))
                index += 1
                if text[i] == "]":
                    return i + 1
                i += 1
        if ch == '"':
            return scanstring(text, i + 1)[1]
        for literal in ("true", "false", "null", "NaN", "Infinity", "-Infinity"):
            if text.startswith(literal, i):
                if literal not in ("true", "false", "null"):
                    problems.append(
                        (line_of(i), f"invalid JSON: {literal} is not a JSON value; write a number")
                    )
                return i + len(literal)
        end = number.match(text, i).end()
        if end - i > 100 and (message := _too_long(text[i:end])):
            problems.append((line_of(i), message))
        return end

    value(0, ())
    found[()] = 1
    return SourceMap(found), problems


def _duplicate(path: tuple, key: Any, first_line: int) -> str:
    """The message for a key given twice in the mapping at *path*."""
    where_ = f"{where(path)}: " if path else ""
    return f"{where_}duplicate key '{one_line(str(key))}' (first at line {first_line})"


def _json_depth(text: str) -> int | None:
    """The line where a JSON document nests deeper than `MAX_DEPTH`, else None (no recursion)."""
    depth = 0
    for match in re.finditer(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return text.count("\n", 0, match.start()) + 1
        elif bracket in "]}":
            depth -= 1
    return None


def _yaml_source_map(root) -> tuple[SourceMap, list[tuple[int, str]]]:
    """Lines of every key and value of a composed YAML document (`_parse_yaml` has bounded its
    depth and size); and each key given twice in one mapping, as (line, message). Keys merged in
    with ``<<`` may be overridden, as YAML intends."""
    import yaml

    found: dict[tuple, int] = {}
    problems: list[tuple[int, str]] = []

    def visit(node, path: tuple) -> None:
        found.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple, int] = {}  # (tag, text) of a key -> its line
            for key, child in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue  # a list or table as a key: construction refuses it
                line = key.start_mark.line + 1
                if key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in first:
                        problems.append((line, _duplicate(path, key.value, first[key.tag, key.value])))
                    else:
                        first[key.tag, key.value] = line
                child_path = (*path, key.value)
                found[child_path] = line
                visit(child, child_path)
        elif isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                visit(child, (*path, index))

    visit(root, ())
    return SourceMap(found), problems


def _yaml_size(root) -> int:
    """How many values the document has once its aliases are expanded, counted without expanding
    them (each node once, without recursion); refuses an alias inside itself and more than
    `MAX_VALUES` values."""
    import yaml

    size: dict[int, int] = {}
    open_: set[int] = set()  # the nodes on the way down to the current one
    todo = [(root, False)]
    while todo:
        node, done = todo.pop()
        children = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(child)] for child in children)
            if size[id(node)] > MAX_VALUES:
                raise _Refused(
                    node.start_mark.line + 1,
                    f"the document has more than {MAX_VALUES:,} values once its aliases are expanded",
                )
            continue
        if id(node) in size:
            continue
        open_.add(id(node))
        todo.append((node, True))
        for child in children:
            if id(child) in open_:
                raise _Refused(
                    child.start_mark.line + 1, "the value anchored here contains an alias of itself"
                )
            if id(child) not in size:
                todo.append((child, False))
    return size[id(root)]


_TOML_ARRAY_TABLE = re.compile(r"^\[\[\s*([A-Za-z0-9_.\-]+)\s*\]\]")
_TOML_TABLE = re.compile(r"^\[\s*([A-Za-z0-9_.\-]+)\s*\]")
_TOML_KEY = re.compile(r"([A-Za-z0-9_\-]+)\s*=")


def _toml_source_map(text: str) -> SourceMap:
    """Lines of tables, array-of-tables entries, keys, and the items of arrays (also inline arrays
    of inline tables spread over several lines). Best effort: an unknown path falls back to its
    nearest known ancestor."""
    found: dict[tuple, int] = {(): 1}
    table: tuple = ()
    counts: dict[tuple, int] = {}
    stack: list[list] = []  # open brackets: [path, next item index] for arrays, [path, None] for tables

    def resolve(parts: list[str]) -> tuple:
        """A header's path: ``[[layers.layers]]`` is under the latest ``[[layers]]`` entry."""
        path: tuple = ()
        for part in parts[:-1]:
            path = (*path, part)
            if path in counts:
                path = (*path, counts[path])
        return (*path, parts[-1])

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not stack:
            if match := _TOML_ARRAY_TABLE.match(line):
                name = resolve(match.group(1).split("."))
                counts[name] = counts.get(name, -1) + 1
                table = (*name, counts[name])
                found.setdefault(name, number)
                found[table] = number
                continue
            if match := _TOML_TABLE.match(line):
                table = resolve(match.group(1).split("."))
                found[table] = number
                continue
        i = 0
        pending_key: str | None = None
        while i < len(line):
            ch = line[i]
            if ch == "#":
                break
            container = stack[-1] if stack else None
            if ch in "\"'":  # a string: skip it, counting it as an item when it is one
                if container is not None and container[1] is not None:
                    found.setdefault((*container[0], container[1]), number)
                    container[1] += 1
                end = line.find(ch, i + 1)
                while end > 0 and ch == '"' and line[end - 1] == "\\":
                    end = line.find(ch, end + 1)
                i = len(line) if end < 0 else end + 1
                continue
            if ch in "[{":
                if container is not None and container[1] is not None:  # a new item of an array
                    item_path = (*container[0], container[1])
                    found.setdefault(item_path, number)
                    container[1] += 1
                    path = item_path
                elif pending_key is not None:
                    path = (*(container[0] if container else table), pending_key)
                else:
                    path = container[0] if container else table
                stack.append([path, 0 if ch == "[" else None])
                pending_key = None
                i += 1
                continue
            if ch in "]}":
                if stack:
                    stack.pop()
                i += 1
                continue
            if match := _TOML_KEY.match(line, i):
                key = match.group(1)
                owner = stack[-1][0] if stack and stack[-1][1] is None else (table if not stack else None)
                if owner is not None:
                    found.setdefault((*owner, key), number)
                    pending_key = key
                i = match.end()
                continue
            if container is not None and container[1] is not None and not ch.isspace() and ch != ",":
                # a scalar item of an array: record it once, at its first character
                found.setdefault((*container[0], container[1]), number)
                while i < len(line) and line[i] not in ",]":
                    i += 1
                container[1] += 1
                continue
            i += 1
    return SourceMap(found)


# --- parsing ------------------------------------------------------------------------------------


def spec_format(path: str | Path) -> str:
    """The format a spec file's suffix names; a directory, or any other suffix, is one clear error."""
    if Path(path).is_dir():
        raise InitdiagError(
            f"'{path}' is a directory, not a spec file; name one .toml, .yaml, .yml or .json file, or check "
            f"every spec in it with: initdiag check {path}"
        )
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        got = f", got '{suffix}'" if suffix else " (it has no suffix)"
        raise InitdiagError(f"'{path}': a spec file must end in .toml, .yaml, .yml or .json{got}")
    return FORMATS[suffix]


def parse_text(text: str, fmt: str, path: str = "<spec>") -> tuple[Any, SourceMap]:
    """(data, source map) of a spec document; a syntax error is a `SpecError` with its line, and so
    are a key given twice in one table, nesting deeper than `MAX_DEPTH` and an integer too long
    to read."""
    try:
        if fmt == "json":
            return _parse_json(text, path)
        if fmt == "yaml":
            return _parse_yaml(text, path)
        return _parse_toml(text, path)
    except _Refused as exc:
        raise SpecError(path, [(exc.line, str(exc))]) from None


def _parse_json(text: str, path: str) -> tuple[Any, SourceMap]:
    line = _json_depth(text)
    if line is not None:
        raise _Refused(line, f"nested more than {MAX_DEPTH} levels deep")
    try:
        data = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise _Refused(exc.lineno, f"invalid JSON: {exc.msg}") from None
    except RecursionError:  # not reached after _json_depth, but never a traceback
        raise _Refused(None, f"nested more than {MAX_DEPTH} levels deep") from None
    source, problems = _json_source_map(text)
    if problems:
        raise SpecError(path, sorted(problems))
    return data, source


def _json_int(text: str) -> int | float:
    """An integer of the JSON document; one too long for ``int`` becomes inf here and a problem
    at its line in `_json_source_map`."""
    try:
        return int(text)
    except ValueError:
        return math.inf


def _too_long(literal: str) -> str | None:
    """The message for an integer literal of more digits than Python reads (4300), else None."""
    digits = sum(ch.isdigit() for ch in literal)
    limit = sys.get_int_max_str_digits()
    if limit and digits > limit:
        return f"an integer of {digits:,} digits is too large"
    return None


def _parse_yaml(text: str, path: str) -> tuple[Any, SourceMap]:
    import yaml

    loader = None
    try:
        loader = _yaml_loader()(text)  # reading starts here: a control character is refused at once
        root = loader.get_single_node()
        if root is None:  # an empty document
            return None, SourceMap({(): 1})
        _yaml_size(root)
        source, problems = _yaml_source_map(root)  # before construction, which merges "<<" keys
        if problems:
            raise SpecError(path, sorted(problems))
        return loader.construct_document(root), source
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark else None
        if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
            line = text.count("\n", 0, exc.position) + 1
        raise _Refused(line, f"invalid YAML: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()


@functools.cache
def _yaml_loader():
    """PyYAML's safe loader, refusing documents nested deeper than `MAX_DEPTH`, and values it
    cannot construct (an integer too long to read, a date like 2024-13-45) with their line."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.depth >= MAX_DEPTH and self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
                line = self.peek_event().start_mark.line + 1
                raise _Refused(line, f"nested more than {MAX_DEPTH} levels deep")
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_object(self, node, deep=False):
            try:
                return super().construct_object(node, deep=deep)
            except (ValueError, OverflowError) as exc:  # a scalar that matched a tag's pattern only
                line = node.start_mark.line + 1
                message = _too_long(node.value) if isinstance(node.value, str) else None
                raise _Refused(line, message or f"invalid YAML: {one_line(str(exc))}") from None

    return Loader


def _parse_toml(text: str, path: str) -> tuple[Any, SourceMap]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = (
            int(match.group(1)) if match else (text.count("\n") + 1 if "end of document" in message else None)
        )
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise _Refused(line, f"invalid TOML: {message}") from None
    except ValueError as exc:  # an integer too long for int()
        match = re.search(r"\d[\d_]{100,}", text)
        message = _too_long(match.group()) if match else None
        if message is None:
            problem = "an integer too large" if "digits" in str(exc) else one_line(str(exc))
            raise _Refused(None, f"invalid TOML: {problem}") from None
        raise _Refused(text.count("\n", 0, match.start()) + 1, message) from None
    except RecursionError:
        raise _Refused(None, f"nested more than {MAX_DEPTH} levels deep") from None
    source = _toml_source_map(text)
    deep = _too_deep(data)
    if deep is not None:
        raise _Refused(source.line(deep), f"nested more than {MAX_DEPTH} levels deep")
    return data, source


def _too_deep(data: Any) -> tuple | None:
    """The path of a list or table nested deeper than `MAX_DEPTH` in *data*, else None (no
    recursion)."""
    todo = [(data, ())]
    while todo:
        value, path = todo.pop()
        if isinstance(value, dict | list) and len(path) >= MAX_DEPTH:
            return path
        if isinstance(value, dict):
            todo += [(v, (*path, k)) for k, v in value.items()]
        elif isinstance(value, list):
            todo += [(v, (*path, i)) for i, v in enumerate(value)]
    return None


# --- validation against SCHEMA --------------------------------------------------------------------


def _describe(schema: dict) -> str:
    """What a schema accepts, in words ("a positive integer", "a number in [0, 1]", ...)."""
    if "anyOf" in schema:
        return " or ".join(_describe(option) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        low = schema.get("minimum")
        return {1: "a positive integer", 0: "a non-negative integer"}.get(low, "an integer")
    if kind == "number":
        if "exclusiveMinimum" in schema:
            return f"a number greater than {schema['exclusiveMinimum']}"
        if "minimum" in schema and "maximum" in schema:
            return f"a number in [{schema['minimum']}, {schema['maximum']}]"
        if "minimum" in schema and "exclusiveMaximum" in schema:
            return f"a number in [{schema['minimum']}, {schema['exclusiveMaximum']})"
        return "a number"
    if kind == "array":
        return "a list of " + _describe(schema.get("items", {})).removeprefix("a ").removeprefix("an ") + "s"
    return {"string": "a string", "boolean": "true or false", "object": "a table of keys"}.get(
        kind, "a value"
    )


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "boolean": bool, "array": list, "object": dict}[kind])


def _show(value: Any) -> str:
    """A value as a message quotes it: JSON-like, on one line, cut short when long."""
    if isinstance(value, list | dict) and len(value) > 20:
        return f"a {'list' if isinstance(value, list) else 'table'} of {len(value):,} items"
    text = json.dumps(value) if isinstance(value, str | bool) or value is None else repr(value)
    return one_line(text, 80)


def validate(
    data: Any, schema: dict = SCHEMA, path: tuple = (), root: dict = SCHEMA
) -> list[tuple[tuple, str]]:
    """Every way *data* breaks *schema* (the subset of JSON Schema that SCHEMA uses), as
    (path, message) pairs; an empty list when it conforms."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    name = where(path)
    if "anyOf" in schema:
        if all(validate(data, option, path, root) for option in schema["anyOf"]):
            return [(path, f"{name} must be {_describe(schema)}, got {_show(data)}")]
        return []
    if "const" in schema and data != schema["const"]:
        return [(path, f"{name} must be {_show(schema['const'])}, got {_show(data)}")]
    if "enum" in schema and data not in schema["enum"]:
        return [(path, f"{name} must be {_describe(schema)}, got {_show(data)}")]
    kind = schema.get("type")
    if kind and not _type_ok(data, kind):
        return [(path, f"{name} must be {_describe(schema)}, got {_show(data)}")]
    problems: list[tuple[tuple, str]] = []
    if kind in ("integer", "number"):
        if (
            ("minimum" in schema and data < schema["minimum"])
            or ("exclusiveMinimum" in schema and data <= schema["exclusiveMinimum"])
            or ("maximum" in schema and data > schema["maximum"])
            or ("exclusiveMaximum" in schema and data >= schema["exclusiveMaximum"])
        ):
            problems.append((path, f"{name} must be {_describe(schema)}, got {_show(data)}"))
    elif kind == "string" and "pattern" in schema and not re.match(schema["pattern"], data):
        problems.append(
            (
                path,
                f"{name} must be letters, digits, _ . - (not starting with a digit), got {_show(data)}",
            )
        )
    elif kind == "array":
        if len(data) < schema.get("minItems", 0):
            problems.append(
                (
                    path,
                    f"{name} needs at least {schema['minItems']} item{'s' if schema['minItems'] > 1 else ''}",
                )
            )
        if len(data) > schema.get("maxItems", len(data)):
            problems.append(
                (
                    path,
                    f"{name} takes at most {schema['maxItems']}, got {len(data)}",
                )
            )
        if schema.get("uniqueItems") and len({json.dumps(v) for v in data}) < len(data):
            problems.append((path, f"{name} lists an item twice"))
        for index, item in enumerate(data):
            problems += validate(item, schema.get("items", {}), (*path, index), root)
    elif kind == "object":
        for rule in schema.get("allOf", []):  # only the if/then form SCHEMA uses
            if not validate(data, {"type": "object", **rule["if"]}, path, root):
                problems += validate(data, {"type": "object", **rule["then"]}, path, root)
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in data:
                problems.append((path, f"{name}: missing key '{key}'" if path else f"missing key '{key}'"))
        for key, value in data.items():
            if key in properties:
                problems += validate(value, properties[key], (*path, key), root)
            elif schema.get("additionalProperties") is False:
                hint = did_you_mean(str(key)[:100], properties) or f"; allowed: {', '.join(properties)}"
                unknown = f"unknown key '{one_line(str(key))}'{hint}"
                problems.append(((*path, key), f"{name}: {unknown}" if path else unknown))
    return problems


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
    from ..core.initializers import get_bias_initializer, get_initializer

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

    acts = (("act", get_activation), ("out_act", get_activation))
    inits = (("init", get_initializer), ("bias_init", get_bias_initializer))
    check_names(data.get("defaults"), ("defaults",), acts + inits)

    def check_layer_names(entries: Any, key_path: tuple) -> None:
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            check_names(entry, (*key_path, index), acts[:1] + inits)
            if isinstance(entry, dict):
                check_layer_names(entry.get("layers"), (*key_path, index, "layers"))

    check_layer_names(data.get("layers"), ("layers",))
    if problems:
        problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
        raise SpecError(path, problems)

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
    probe = dict(data.get("probe", {}))
    if (
        "input" in probe
        and probe["input"].lower().endswith(".npy")
        and not Path(probe["input"]).is_absolute()
    ):
        probe["input"] = str(base / probe["input"])

    stack = StackSpec(
        input_shape=tuple(data["input_shape"]),
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
    check_data = data.get("check", {})
    thresholds = Thresholds(
        **{
            key: float(check_data[key])
            for key in (
                "max_forward_gain",
                "max_backward_gain",
                "max_dead_fraction",
                "max_saturated_fraction",
            )
            if key in check_data
        }
    )
    check = CheckSettings(
        thresholds=thresholds,
        allow_symmetric=check_data.get("allow_symmetric", False),
        fail_on=tuple(check_data.get("fail_on", FLAGS)),
    )
    return SpecFile(path, stack, probe, check, layer_lines, source)


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
            rows += times * repeat
            if isinstance(entry, dict):
                todo.append((entry.get("layers"), times * repeat))
    return rows


def load_spec(path: str | Path) -> SpecFile:
    """Read, check and build a spec file (.toml, .yaml/.yml or .json)."""
    path = str(path)
    fmt = spec_format(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InitdiagError(f"file not found: '{path}'") from None
    except (OSError, ValueError) as exc:
        raise SpecError(path, [(None, f"cannot be read: {getattr(exc, 'strerror', None) or exc}")]) from None
    if len(raw) > MAX_BYTES:
        raise SpecError(
            path,
            [(None, f"larger than {MAX_BYTES >> 20} MiB, too large for a spec file (runs of equal layers "
                    "can be one entry with repeat)")],
        )  # fmt: skip
    try:
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text reads
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problem = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise SpecError(path, [(line, problem)]) from None
    data, source = parse_text(text, fmt, path)
    return build(data, source, path)


# --- writing ------------------------------------------------------------------------------------


def to_data(stack: StackSpec, settings: ProbeSettings, check: CheckSettings | None = None) -> dict[str, Any]:
    """The spec-file document for a stack, its probe settings and check settings; runs of identical
    unnamed layers are folded with ``repeat``."""
    check = check or CheckSettings(thresholds=settings.thresholds)
    data: dict[str, Any] = {}
    if stack.name:
        data["name"] = stack.name
    data["input_shape"] = list(stack.input_shape)
    data["defaults"] = {"act": stack.act, "out_act": stack.out_act, "init": stack.init}
    if stack.bias_init is not None:
        data["defaults"]["bias_init"] = stack.bias_init
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
        "allow_symmetric": check.allow_symmetric,
        "fail_on": list(check.fail_on),
    }
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
        if not auto:
            entry["name"] = layer.name.removeprefix(prefix)
        for key in info.keys:
            value = getattr(layer, key)
            if key in ("act", "init", "bias_init", "layers") or value is None or value == DEFAULTS.get(key):
                continue
            entry[key] = list(value) if isinstance(value, tuple) else value
        was_open, open_act = open_act, False
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


def schema_text() -> str:
    return json.dumps(SCHEMA, indent=2) + "\n"
