"""One exception type for bad input, and the helpers that word its messages.

Every `InitdiagError` message is a single line naming what was wrong and what is allowed; the CLI
prints it on stderr and exits with code 2. Library callers catch it like any ``ValueError``.

Messages are written once, naming options as the command line spells them (``--max-gain``); outside
the command line (a notebook, pytest) the same message names the keyword argument instead
(``max_gain``), so a library caller is never told about a flag they did not type. Where a function's
keyword is not the flag's spelling (``sweep(depths=...)`` for ``--depth``), the function says so with
`keyword_names`, and its errors name its own keyword.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
import re
from collections.abc import Iterable
from typing import Any

_COMMAND_LINE = contextvars.ContextVar("initdiag_command_line", default=False)
_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


@contextlib.contextmanager
def command_line_spelling():
    """Within this block, error messages name options as the command line spells them."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def spelled_for_command_line() -> bool:
    """Whether messages name options as the command line does, here and now."""
    return _COMMAND_LINE.get()


def python_spelling(message: str, keywords: dict[str, str] | None = None) -> str:
    """``--max-gain must be > 1`` -> ``max_gain must be > 1``; an option in *keywords*
    (``{"--depth": "depths"}``) becomes the keyword given there."""
    keywords = keywords or {}
    return _OPTION.sub(lambda m: keywords.get(m.group(0), m.group(1).replace("-", "_")), message)


class InitdiagError(ValueError):
    """Bad input (usage, unknown name, malformed value or file, impossible shape, too much memory)."""

    def __init__(self, message: str = "", keywords: dict[str, str] | None = None):
        super().__init__(message)
        self.keywords = dict(keywords or {})  # option -> the keyword a Python caller typed

    def __str__(self) -> str:
        message = super().__str__()
        return message if _COMMAND_LINE.get() else python_spelling(message, getattr(self, "keywords", None))


@contextlib.contextmanager
def keyword_names(keywords: dict[str, str]):
    """Errors raised within (a block, or a function this decorates) name these options by the
    keywords given (``{"--depth": "depths"}``) when spelled for Python; the command line's own
    spelling is unchanged."""
    try:
        yield
    except InitdiagError as exc:
        exc.keywords = {**getattr(exc, "keywords", {}), **keywords}
        raise


def _shown(value: Any) -> str:
    return one_line(
        value if isinstance(value, numbers.Number) and not isinstance(value, bool) else repr(value)
    )


def integer(option: str, value: Any, low: int = 1, high: int | None = None, hint: str = "") -> int:
    """*value* as an int when it is an integer (a bool is not) in [low, high]; else one error line
    naming *option* (``--batch``; ``batch`` from Python)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and value >= low and (high is None or value <= high):
        return int(value)
    if ok and high is not None and value > high:
        raise InitdiagError(f"{option} {_shown(value)} is more than initdiag takes (at most {high:,}){hint}")
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
    raise InitdiagError(f"{option} must be {what}, got {_shown(value)}")


def gain_limit(option: str, value: Any) -> float:
    """A threshold T of the gain band [1/T, T]: a number greater than 1 (inf: no limit)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and value > 1):  # NaN fails too
        raise InitdiagError(f"{option} must be greater than 1, got {_shown(value)}")
    return float(value)


class SpecLayerError(InitdiagError):
    """A problem with one layer; ``path`` locates it in a spec file (``("layers", 3, "layers", 0)``)."""

    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.path = path


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'he'?"`` when a choice is close to *name*, else ``""``."""
    import difflib  # only on the error path

    close = difflib.get_close_matches(name.lower(), list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_name(what: str, name: str, choices: Iterable[str]) -> InitdiagError:
    """The error for an unknown name: a suggestion when one is close, else the allowed list."""
    choices = list(choices)
    hint = did_you_mean(name, choices)
    if not hint:
        hint = "; allowed: " + ", ".join(choices)
    return InitdiagError(f"unknown {what} '{name}'{hint}")


def one_line(text: str, limit: int = 60) -> str:
    """*text* for an error message: on one line (control characters escaped) and at most about
    *limit* characters."""
    raw = str(text)
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in raw[: limit + 1])
    return shown if len(raw) <= limit and len(shown) <= limit else shown[: limit - 1] + "…"
