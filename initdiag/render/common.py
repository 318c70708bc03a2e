"""The one rendering layer: a result becomes a rich table, JSON, CSV or markdown.

The table and markdown share one column list; CSV and JSON use the contract's keys. Nothing here
computes statistics or decides flags: it only reads a `ProbeResult`.
"""

from __future__ import annotations

import math
from typing import Any

from ..analysis.result import WARN_FRACTION, LayerStats
from ..analysis.result import format_number as fmt

FORMATS = ("table", "json", "csv", "markdown")

# one distinct style per meaning, from the 8 basic colours every terminal shows as itself (a 256-colour
# orange is drawn red on a 16-colour terminal): red exploding, blue vanishing, cyan dead, magenta
# saturated, inverse symmetric, white on red not a number; green ok, yellow close to a limit (warn),
# dim not judged. A theory cell far from its measurement is underlined, not coloured.
FLAG_STYLES = {
    "vanishing": "bold blue",
    "exploding": "bold red",
    "dead": "bold cyan",
    "saturated": "bold magenta",
    "symmetric": "bold reverse",
    "nonfinite": "bold white on red",
    "collapse": "bold black on yellow",
    "attn_saturated": "bold white on magenta",
    "stream_growth": "bold white on blue",
}
WARN_STYLE = "yellow"  # a gain in the warn band, a warn verdict
NOTE_STYLE = "italic"  # a note that qualifies the reading
OFF_THEORY_STYLE = "underline"  # a prediction more than 10% from its measurement
VERDICT_STYLES = {"ok": "bold green", "warn": f"bold {WARN_STYLE}", "fail": "bold red"}
VERDICT_MARKS = {"ok": "✔", "warn": "!", "fail": "✘"}


def fmt_percent(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if x == 0:
        return "0"
    return f"{100 * x:.3g}"


def std_of(var: float | None) -> float | None:
    if var is None:
        return None
    return math.sqrt(var) if var >= 0 else math.nan


NOT_APPLICABLE = "·"  # a statistic the layer does not have (no weights, no units of its own)


def num(x: float | None) -> str:
    return NOT_APPLICABLE if x is None else fmt(x)


# the table's marks for layers that are not plain weighted layers
MARKS = {"batchnorm": " ↺", "layernorm": " ↺", "residual": " Σ"}
MARK_LEGEND = {
    " ↺": "↺ normalization: resets the scale, so its gains are not judged",
    " Σ": "Σ residual sum: shortcut + scale × branch (the rows above it, indented)",
}


def layer_shape(s: LayerStats) -> str:
    if s.kind == "dense":
        return f"{s.fan_in}→{s.fan_out}"
    return "×".join(map(str, s.output_shape))


def layer_name(s: LayerStats) -> str:
    return "  " * s.depth + s.name + MARKS.get(s.kind, "")


# --- JSON / CSV -------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """Non-finite floats become None (JSON null); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(data: Any) -> str:
    """Strict JSON (no NaN literals: non-finite numbers are null)."""
    import json

    return json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"


def csv_text(header: list[str], rows: list[dict[str, Any]]) -> str:
    """CSV with *header*; lists joined by ';', non-finite numbers spelled inf/nan."""
    import csv
    import io

    def cell(value: Any) -> Any:
        if isinstance(value, list):
            return ";".join(str(v) for v in value)
        if isinstance(value, float):
            return fmt(value) if not math.isfinite(value) else repr(value)
        return "" if value is None else value

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(row.get(key)) for key in header])
    return buffer.getvalue()


def markdown_table(headers: list[str], left: set[str], rows: list[list[str]]) -> list[str]:
    """A pipe table; columns named in *left* are left-aligned, the others right-aligned."""
    aligns = [":--" if h in left else "--:" for h in headers]

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
    return lines + ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]


# --- the shared column list for table and markdown ------------------------------------------------


# --- the cumulative gains on a log scale ----------------------------------------------------------


def gain_style(gain: float, limit: float) -> str:
    if math.isnan(gain) or math.isinf(gain):
        return FLAG_STYLES["nonfinite"] if math.isinf(gain) else "dim"
    if gain > limit:
        return FLAG_STYLES["exploding"]
    if gain < 1 / limit:
        return FLAG_STYLES["vanishing"]
    if abs(math.log(gain)) > WARN_FRACTION * math.log(limit):  # the verdict's warn band
        return WARN_STYLE
    return "green"


# --- rich table -----------------------------------------------------------------------------------


# --- markdown -------------------------------------------------------------------------------------


# --- initdiag check -------------------------------------------------------------------------------


# --- initdiag compare ------------------------------------------------------------------------------

SPARKS = "▁▂▃▄▅▆▇"  # one decade each, log10(gain) from -3 to 3: 1 is ▄
SPARK_RANGE = (-3, 3)


def spark(value: float, lo: float, hi: float, flat: int = 0, sparks: str = SPARKS) -> str:
    """One bar of a sparkline: log10(value) on [lo, hi] as one of the *sparks* heights (*flat* when
    the scale is empty), clamped at its ends; × for a value that is not a positive number."""
    if not (value > 0 and math.isfinite(value)):
        return "×"
    if hi == lo:
        return sparks[flat]
    return sparks[round((min(max(math.log10(value), lo), hi) - lo) / (hi - lo) * (len(sparks) - 1))]


# --- initdiag sweep ---------------------------------------------------------------------------------


class Adaptive:
    """A renderable built for the console it is printed on: ``build(width, colour)`` gives its
    parts, for the console's width and whether it shows colour (a pipe or a log does not)."""

    def __init__(self, build):
        self.build = build

    def __rich_console__(self, console, options):
        yield from indented(self.build(options.max_width, console.color_system is not None))


# --- initdiag train ----------------------------------------------------------------------------------


# --- initdiag inits / explain -------------------------------------------------------------------------


# CSV cells hold text: names joined by "; ", traps (sentences with ";" of their own) by " | "


def indented(parts: list) -> list:
    """Lines of text that start with spaces (legends, notes, reasons) as blocks indented by that
    much, so that a line the terminal wraps goes on at its indent instead of at column 0."""
    from rich.padding import Padding
    from rich.text import Text

    out = []
    for part in parts:
        if isinstance(part, Text) and part.plain.startswith(" ") and part.plain.strip():
            n = len(part.plain) - len(part.plain.lstrip(" "))
            out.append(Padding(part[n:], (0, 0, 0, n)))
        else:
            out.append(part)
    return out
