"""Reading a spec document: TOML, YAML or JSON text into plain data and a source map from key paths to
line numbers, refusing at once, at their line, documents that cannot be read (keys given twice, too
deep, too large, not UTF-8)."""

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

from ..errors import InitdiagError, one_line
from .kinds import where

FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


# Bounds on a document, so that any file is read, or refused, at once, and never deeper than Python's
# recursion limit: how deep its lists and tables nest (a residual block inside a block is 2 levels
# deeper; spec.MAX_NESTING allows 32 blocks), how many values YAML aliases may expand to (a "billion
# laughs" document is a few lines), and its size.
MAX_DEPTH = 100


MAX_VALUES = 1_000_000


MAX_BYTES = 4 << 20  # a spec of 10,000 layers written out one by one is about 1 MiB


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

    # YAML 1.1's floats need a dot (1.0e-3); 1e-3 is a float in YAML 1.2, TOML, JSON and Python, and
    # a string to PyYAML without this (lr: 1e-3 would be refused as "must be a number")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_EXPONENT, list("-+0123456789"))
    return Loader


_YAML12_EXPONENT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


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
