"""One exception type for bad input, and the helpers that word its messages.

Every `InitdiagError` message is a single line naming what was wrong and what is allowed; the CLI
prints it on stderr and exits with code 2. Library callers catch it like any ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable


class InitdiagError(ValueError):
    """Bad input (usage, unknown name, malformed value or file, impossible shape, too much memory)."""


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
