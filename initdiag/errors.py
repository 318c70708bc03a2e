"""One exception type for bad input, and the helpers that word its messages.

Every `InitdiagError` message is a single line naming what was wrong and what is allowed; the CLI
prints it on stderr and exits with code 2. Library callers catch it like any ``ValueError``.

Messages are written once, naming options as the command line spells them (``--max-gain``); outside
the command line (a notebook, pytest) the same message names the keyword argument instead
(``max_gain``), so a library caller is never told about a flag they did not type.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable

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


def python_spelling(message: str) -> str:
    """``--max-gain must be > 1`` -> ``max_gain must be > 1``."""
    return _OPTION.sub(lambda m: m.group(1).replace("-", "_"), message)


class InitdiagError(ValueError):
    """Bad input (usage, unknown name, malformed value or file, impossible shape, too much memory)."""

    def __str__(self) -> str:
        message = super().__str__()
        return message if _COMMAND_LINE.get() else python_spelling(message)


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
