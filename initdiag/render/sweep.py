"""initdiag sweep: the heat map of end-to-end gains, one cell per probe, and its legend."""

from __future__ import annotations

import math

from ..analysis.result import WARN_FRACTION
from ..analysis.result import format_number as fmt
from .common import VERDICT_MARKS, Adaptive, csv_text, json_text, markdown_table

# (label, style) of the heat map's bands, in units of log T; backgrounds from the 16 standard colours,
# so that a terminal (or a CI log) that has only those still shows every band in its own colour
HEAT_BANDS = (
    ("< 1/T^2", "white on blue"),
    ("< 1/T", "black on cyan"),
    ("near 1/T", "black on bright_cyan"),
    ("inside", "black on green"),
    ("near T", "black on yellow"),
    ("> T", "black on bright_red"),
    ("> T^2", "white on red"),
    ("not finite", "white on magenta"),
)


def heat_band(gain: float, limit: float) -> int:
    """The index in `HEAT_BANDS` of a gain: beyond T^2 either way, beyond T, in the warn band (past
    T^0.75, where the verdict turns to warn), inside, or not a number."""
    if not (gain >= 0 and math.isfinite(gain)):
        return 7
    if gain == 0:
        return 0
    x = math.log(gain) / math.log(limit)  # in units of log T
    for index, bound in ((0, -2), (1, -1), (2, -WARN_FRACTION)):
        if x < bound:
            return index
    for index, bound in ((6, 2), (5, 1), (4, WARN_FRACTION)):
        if x > bound:
            return index
    return 3


def heat_style(gain: float, limit: float) -> str:
    return HEAT_BANDS[heat_band(gain, limit)][1]


def _heat_legend(limit: float) -> list[tuple[str, str]]:
    t, w = fmt(limit), fmt(limit**WARN_FRACTION)
    labels = (f"< 1/{fmt(limit**2)}", f"< 1/{t}", f"< 1/{w}", "inside", f"> {w}", f"> {t}",
              f"> {fmt(limit**2)}", "not finite")  # fmt: skip
    return [(f" {label} ", style) for label, (_, style) in zip(labels, HEAT_BANDS, strict=True)]


def _axis_label(values: dict) -> str:
    return " · ".join(str(v) for v in values.values())


def sweep_title(sweep) -> str:
    s = sweep.settings
    fixed = []
    for key in ("init", "act", "depth"):
        if key != sweep.column_key and key not in sweep.row_keys:
            fixed.append(f"{key} {sweep.cells[0][0].values[key]}")
    trials = f" · {s.trials} trials" if s.trials > 1 else ""
    width = f" · width {sweep.width}" if len(sweep.widths or [sweep.width]) == 1 else ""
    return (f"sweep · {sweep.metric} gain{width}{''.join(' · ' + f for f in fixed)} · batch "
            f"{s.batch} · seed {s.seed}{trials} · {s.dtype}")  # fmt: skip


def sweep_table(sweep):
    """The heat map: a row per row value, a column per column value, each cell the end-to-end gain
    and the verdict's mark, coloured by band on a terminal; split into several tables when the
    terminal is narrow; the legend says what is printed (colours only where there are colours)."""
    return Adaptive(lambda width, colour: _sweep_parts(sweep, width, colour))


def _sweep_parts(sweep, width: int | None, colour: bool):
    from rich.text import Text

    from .tables import Cells, chunks, table, wrap_pairs

    limit = sweep.settings.thresholds.max_forward_gain
    corner = " · ".join(sweep.row_keys)
    labels = Cells(f"{corner} \\ {sweep.column_key}" if corner else "",
                   [Text(_axis_label(row) or sweep.metric) for row in sweep.rows], "left")  # fmt: skip
    groups = []
    for j, column in enumerate(sweep.columns):
        cells = []
        for row in sweep.cells:
            cell = row[j]
            g = cell.gain(sweep.metric)
            cells.append(Text(f" {fmt(g)} {VERDICT_MARKS[cell.verdict]} ", style=heat_style(g, limit)))
        groups.append([Cells(Text(_axis_label(column)), cells)])
    parts: list = [Text(sweep_title(sweep))]
    for columns in chunks([labels], groups, width):
        parts.append(table(None, columns, width))
    marks = Text(
        f"  each cell: the end-to-end {sweep.metric} gain in E[x^2] and the verdict of its probe "
        "(✔ ok, ! warn, ✘ fail: a cell fails on any flag, not only its gain)",
        style="dim",
    )
    parts.append(marks)
    parts += [Text(f"  note: {note}", style="dim") for note in sweep.notes]
    if colour:  # whole words and whole swatches to a line: a wrap never splits "> 5.62"
        words = [
            Text(word, style="dim") for word in f"colour: the {sweep.metric} gain, T = {fmt(limit)}:".split()
        ]
        swatches = [Text(label, style=style) for label, style in _heat_legend(limit)]
        parts += wrap_pairs(words + swatches, width, indent=2, gap=" ")
    return parts


def sweep_markdown(sweep) -> str:
    corner = " · ".join(sweep.row_keys) or ""
    headers = [f"{corner} \\ {sweep.column_key}" if corner else sweep.column_key]
    headers += [_axis_label(c) for c in sweep.columns]
    rows = []
    for row, cells in zip(sweep.rows, sweep.cells, strict=True):
        marks = [f"{fmt(c.gain(sweep.metric))} {VERDICT_MARKS[c.verdict]}" for c in cells]
        rows.append([_axis_label(row) or sweep.metric, *marks])
    lines = [f"**initdiag {sweep_title(sweep)}**", "", *markdown_table(headers, {headers[0]}, rows), "",
             f"{sweep.metric} gain per cell; ✔ ok, ! warn, ✘ fail"]  # fmt: skip
    return "\n".join(lines) + "\n"


def sweep_csv(sweep) -> str:
    rows = [cell.to_dict() for row in sweep.cells for cell in row]
    header = list(dict.fromkeys(key for row in rows for key in row))
    return csv_text(header, rows)


def sweep_text(sweep, fmt_name: str) -> str:
    renderers = {"json": lambda s: json_text(s.to_dict()), "csv": sweep_csv, "markdown": sweep_markdown}
    return renderers[fmt_name](sweep)
