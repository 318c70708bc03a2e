"""Coordcheck spec files: a ``[coordcheck]`` table (TOML, YAML or JSON) that holds what
``initdiag coordcheck`` takes on its command line, so a parametrization can be gated in CI from a
file under version control (``initdiag coordcheck -c mlp_mup.toml``).

The stack marks the widths that scale with ``W`` (``layers = "64,W,W,W,10"``, or a list
``[64, "W", "2W", 10]``); every other key is the option of the same name (``fail_on`` is
``--fail-on``). Every problem is reported at its line (``mlp.toml:4: coordcheck.steps must be a
positive integer, got 0``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InitdiagError, did_you_mean, python_spelling
from ..network.document import read_document
from ..network.parse import SourceMap, SpecError
from .coordcheck import FLAGS, CoordSettings, _check_data, _names, parse_stack
from .coordtransformer import TransformerStack, check_data

TOP_KEYS = ("name", "description", "coordcheck")
_TEXT = ("act", "init", "bias_init", "optimizer", "loss", "data", "dtype")
_INTEGERS = ("steps", "seeds", "seed", "batch", "base_width")
_NUMBERS = ("lr", "tolerance")
_LISTS = ("params", "fail_on")  # a list of names, or one comma-separated string
KEYS = ("layers", "widths", *_LISTS, *_TEXT, *_NUMBERS, *_INTEGERS)
# the option each key is on the command line, where the two differ
_OPTIONS = {
    "params": "--param",
    "fail_on": "--fail-on",
    "bias_init": "--bias-init",
    "base_width": "--base-width",
}


@dataclass
class CoordSpec:
    """A loaded coordcheck spec: its settings, the flags it fails on, and the line of each key."""

    path: str
    settings: CoordSettings
    fail_on: list[str] = field(default_factory=list)
    name: str | None = None


def load_coord_spec(path: str | Path) -> CoordSpec:
    """Read and check a coordcheck spec file; `SpecError` (file:line: message) on any problem."""
    path = str(path)
    data, source = read_document(path)
    problems: list[tuple[int | None, str]] = []

    def bad(key_path: tuple, message: str) -> None:
        problems.append((source.line(key_path), message))

    if not isinstance(data, dict):
        raise SpecError(path, [(1, "a coordcheck spec is a table with a [coordcheck] table in it")])
    for key in data:
        if key not in TOP_KEYS:
            hint = (
                "; an architecture spec (layers, input_shape) is for probe and check: coordcheck reads "
                "a [coordcheck] table"
                if key in ("layers", "input_shape", "defaults")
                else did_you_mean(str(key), TOP_KEYS) or f"; allowed: {', '.join(TOP_KEYS)}"
            )
            bad((key,), f"unknown key '{key}'{hint}")
    table = data.get("coordcheck")
    if not isinstance(table, dict):
        line = source.line(("coordcheck",)) if table is not None else None
        problems.append(
            (line, "needs a [coordcheck] table (layers, widths, params, ...; see the coordcheck docs)")
        )
        raise SpecError(path, problems)
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = ("coordcheck", key)
        if key not in KEYS:
            bad(
                where,
                f"coordcheck: unknown key '{key}'"
                + (did_you_mean(str(key), KEYS) or f"; allowed: {', '.join(KEYS)}"),
            )
            continue
        problem = _type_problem(key, value)
        if problem:
            bad(where, f"coordcheck.{key} must be {problem}, got {value!r}"[:300])
            continue
        values[key] = _converted(key, value)
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            bad((key,), f"{key} must be a string, got {data[key]!r}"[:300])
    if problems:
        raise SpecError(path, problems)
    fail_on = values.pop("fail_on", [])
    settings = CoordSettings(**values)
    _check_values(path, source, settings, fail_on)
    return CoordSpec(path, settings, fail_on, data.get("name"))


def _type_problem(key: str, value: Any) -> str | None:
    def integer(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if key == "layers":
        items = value if isinstance(value, list) else None
        ok = isinstance(value, str) or (items and all(integer(v) or isinstance(v, str) for v in items))
        return None if ok else 'the widths with W where they scale: "64,W,W,W,10" or [64, "W", "W", 10]'
    if key == "widths":
        return None if isinstance(value, list) and all(integer(v) for v in value) else "a list of integers"
    if key in _LISTS:
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        return None if ok else "a list of names (or one comma-separated string)"
    if key in _TEXT:
        return None if isinstance(value, str) else "a string"
    if key in _INTEGERS:
        return None if integer(value) else "an integer"
    return None if isinstance(value, numbers.Real) and not isinstance(value, bool) else "a number"


def _converted(key: str, value: Any) -> Any:
    from ..core.callspec import split_list

    if key == "layers" and isinstance(value, list):
        return ",".join(str(v) for v in value)
    if key in _LISTS:
        return split_list(value, _OPTIONS[key]) if isinstance(value, str) else list(value)
    if key == "lr" or key == "tolerance":
        return float(value)
    return value


def _check_values(path: str, source: SourceMap, settings: CoordSettings, fail_on: list[str]) -> None:
    """The values' ranges and names, each problem at its key's line: the checks the command makes,
    made here before anything is trained."""
    from ..core.activations import get_activation
    from ..core.init_parser import get_initializer
    from ..core.parametrizations import get_parametrization

    keywords = {option: key for key, option in _OPTIONS.items()}

    def at(key: str, check) -> None:
        try:
            check()
        except InitdiagError as exc:
            message = python_spelling(exc.args[0] if exc.args else str(exc), keywords)
            message = message if message.startswith(key) else f"{key}: {message}"
            raise SpecError(path, [(source.line(("coordcheck", key)), f"coordcheck.{message}")]) from None

    at("layers", lambda: parse_stack(settings.layers))
    at("params", lambda: [get_parametrization(p) for p in _names("--param", settings.params)])
    at("act", lambda: get_activation(settings.act))
    at("init", lambda: get_initializer(settings.init))
    at("bias_init", lambda: get_initializer(settings.bias_init))
    at("data", lambda: _check_data_of(settings))
    unknown = [f for f in fail_on if f.strip().lower() not in (*FLAGS, "any")]
    at("fail_on", lambda: _refuse_flags(unknown))
    try:
        settings.check()
    except InitdiagError as exc:
        message = python_spelling(exc.args[0], keywords)
        key = next((k for k in (f.name for f in fields(CoordSettings)) if message.startswith(k)), None)
        raise SpecError(
            path, [(source.line(("coordcheck", key)) if key else None, f"coordcheck.{message}")]
        ) from None


def _refuse_flags(unknown: list[str]) -> None:
    if unknown:
        raise InitdiagError(f"unknown flag '{unknown[0]}'; allowed: {', '.join(FLAGS)} or any")


def _check_data_of(settings: CoordSettings) -> None:
    """The data and loss against the stack: a toy set's input width 2 and its classes; a transformer's
    random token ids and cross-entropy."""
    stack = parse_stack(settings.layers)
    if isinstance(stack, TransformerStack):
        check_data(settings)
    else:
        _check_data(settings, stack.tokens[0][0], stack.tokens[-1][0])
