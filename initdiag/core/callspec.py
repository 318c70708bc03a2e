"""The ``NAME[:ARGS]`` grammar shared by ``--init``, ``--bias-init``, ``--act`` and ``--input``.

``ARGS`` is one positional value or ``key=value`` pairs separated by commas
(``normal:0.01``, ``uniform:low=-1,high=1``, ``he_uniform:mode=fan_out,gain=auto``).
Each consumer declares which keys it takes and their types; every mistake becomes one
`InitdiagError` line that names the call, the key and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import InitdiagError, one_line


@dataclass
class Call:
    """A parsed ``NAME[:ARGS]``: the name (lower-cased), an optional positional value, and keys."""

    text: str
    name: str
    positional: str | None = None
    kwargs: dict[str, str] = field(default_factory=dict)

    def bind(self, keys: tuple[str, ...], positional_key: str | None) -> dict[str, str]:
        """Map the positional value onto *positional_key* and check every key is one of *keys*."""
        values = dict(self.kwargs)
        if self.positional is not None:
            if positional_key is None:
                raise InitdiagError(
                    f"'{self.text}': {self.name} takes no positional value"
                    + (f"; keys: {', '.join(keys)}" if keys else "")
                )
            if positional_key in values:
                raise InitdiagError(f"'{self.text}': {positional_key} given twice")
            values[positional_key] = self.positional
        for key in values:
            if key not in keys:
                allowed = f"allowed: {', '.join(keys)}" if keys else "it takes no arguments"
                raise InitdiagError(f"'{self.text}': unknown key '{key}' for {self.name}; {allowed}")
        return values


def parse_call(text: str, what: str) -> Call:
    """Split ``NAME[:ARGS]``; *what* names the option in messages (``initializer``, ...)."""
    text = text.strip()
    name, sep, args = text.partition(":")
    name = name.strip().lower()
    if not name:
        raise InitdiagError(f"empty {what} name in '{text}'")
    if not sep:
        return Call(text, name)
    if not args.strip():
        raise InitdiagError(f"'{text}': nothing after ':' (write {name}:VALUE or {name}:key=value)")
    positional: str | None = None
    kwargs: dict[str, str] = {}
    for part in args.split(","):
        part = part.strip()
        if not part:
            raise InitdiagError(f"'{text}': empty argument (arguments are separated by commas)")
        key, eq, value = part.partition("=")
        if eq:
            key, value = key.strip().lower(), value.strip()
            if not key or not value:
                raise InitdiagError(f"'{text}': '{part}' is not key=value")
            if key in kwargs:
                raise InitdiagError(f"'{text}': {key} given twice")
            kwargs[key] = value
        elif positional is None and not kwargs:
            positional = part
        else:
            raise InitdiagError(f"'{text}': only the first argument may be positional, got '{part}'")
    return Call(text, name, positional, kwargs)


def to_float(call: Call, key: str, value: str) -> float:
    """A finite number, or one clear error naming the call and key."""
    try:
        number = float(value)
    except ValueError:
        raise InitdiagError(f"'{call.text}': {key} must be a number, got '{value}'") from None
    if not math.isfinite(number):
        raise InitdiagError(f"'{call.text}': {key} must be finite, got '{value}'")
    return number


def to_int(call: Call, key: str, value: str, minimum: int = 1) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InitdiagError(f"'{call.text}': {key} must be an integer, got '{value}'") from None
    if number < minimum:
        raise InitdiagError(f"'{call.text}': {key} must be >= {minimum}, got {number}")
    return number


def to_choice(call: Call, key: str, value: str, choices: tuple[str, ...]) -> str:
    value = value.lower()
    if value not in choices:
        raise InitdiagError(f"'{call.text}': {key} must be one of {', '.join(choices)}, got '{value}'")
    return value


def fmt_number(x: float) -> str:
    """Shortest round-tripping text for a number in a canonical spec string (0.5, 2, 1e-05)."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def split_list(text: str, option: str) -> list[str]:
    """``"he,xavier,uniform:low=-1,high=1"`` -> ``["he", "xavier", "uniform:low=-1,high=1"]``: a
    comma-separated list of ``NAME[:ARGS]``, where a ``key=value`` piece (no colon) continues the
    arguments of the item before it. Empty items and repeats are one clear error."""

    items: list[str] = []
    for piece in str(text).split(","):
        piece = piece.strip()
        if not piece:
            raise InitdiagError(
                f"{option} '{one_line(text)}': an empty item; write comma-separated names, e.g. he,xavier"
            )
        if "=" in piece and ":" not in piece and items and ":" in items[-1]:
            items[-1] += "," + piece
        else:
            items.append(piece)
    seen: set[str] = set()
    repeated: set[str] = set()
    for item in items:
        (repeated if item in seen else seen).add(item)
    if repeated:
        twice = one_line(", ".join(sorted(repeated)))
        raise InitdiagError(f"{option} '{one_line(text)}': {twice} given twice")
    return items
