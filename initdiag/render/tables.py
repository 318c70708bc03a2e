"""The one table helper every command renders through: a rich table that never cuts a cell.

A table is a list of `Cells` columns. Numbers, flags and verdicts sit in columns that never wrap;
prose and file names sit in columns that wrap at spaces (and fold a word longer than the column).
`fit` decides, for a width in terminal cells, which columns to show: it hides the columns of lowest
importance (highest ``priority``) one at a time until the rest fit, and never hides a column of
priority 0. When even those do not fit, it says so (None), and the command switches to a list (one
block per row) or splits the table, so that no number is ever shown as ``0.…``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# the table's own cells around its columns: with the house style (padding 1, collapsed, no edge
# padding, a simple head) each column costs 2 cells besides its content
CELLS_PER_COLUMN = 2
WRAP_MIN_WIDTH = 14  # a prose column is not squeezed below this (or its header), it folds instead


@dataclass
class Cells:
    """One column: its header (``\\n`` for a second line), one cell per row (str or rich Text),
    how it is justified, whether it wraps (prose, paths), and its priority (0: never hidden; the
    highest is hidden first)."""

    header: Any
    cells: list[Any]
    justify: str = "right"
    priority: int = 0
    wrap: bool = False
    style: str | None = None
    min_width: int | None = None  # a wrapping column's narrowest (default `WRAP_MIN_WIDTH`)

    @property
    def natural(self) -> int:
        """The width the column takes when nothing wraps."""
        return max(_width(self.header), *(_width(c) for c in self.cells), 1)

    @property
    def minimum(self) -> int:
        """The narrowest the column may be: its natural width, or for a wrapping column the width
        below which its words would fold (at most `WRAP_MIN_WIDTH`, at least the header's)."""
        if not self.wrap:
            return self.natural
        least = WRAP_MIN_WIDTH if self.min_width is None else self.min_width
        return min(self.natural, max(least, _width(self.header)))


def _width(value: Any) -> int:
    """Terminal cells of the widest line of a str or rich Text."""
    from rich.cells import cell_len

    text = value.plain if hasattr(value, "plain") else str(value)
    return max((cell_len(line) for line in text.split("\n")), default=0)


def table_width(columns: list[Cells], minimum: bool = False) -> int:
    return sum((c.minimum if minimum else c.natural) + CELLS_PER_COLUMN for c in columns)


def fit(columns: list[Cells], width: int | None) -> tuple[list[Cells], list[Cells]] | None:
    """(shown, hidden): the columns that fit in *width* cells, hiding the highest priority first;
    None when the columns of priority 0 alone do not fit. Without a width, every column."""
    shown = list(columns)
    if width is None:
        return shown, []
    hidden: list[Cells] = []
    while table_width(shown, minimum=True) > width:
        candidates = [c for c in shown if c.priority > 0]
        if not candidates:
            return None
        drop = max(candidates, key=lambda c: c.priority)
        shown.remove(drop)
        hidden.append(drop)
    return shown, hidden


# above this many rows a table that fits without wrapping is laid out here, line by line: rich's
# Table measures and renders every cell through its general layout (3 ms a row of 17 columns)
FAST_ROWS = 60


def table(title: Any, columns: list[Cells], width: int | None = None):
    """The house style of every table: a rule under the header, no frame, the title on the left.
    Text given as str is taken literally (never as rich markup). A long table that fits in *width*
    without wrapping is laid out by `Lines`, which prints the very same characters faster."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rows = len(columns[0].cells) if columns else 0
    if rows > FAST_ROWS and (width is None or table_width(columns) <= width):
        return Lines(title, columns)
    heading = title if title is None or isinstance(title, Text) else Text(title, style="table.title")
    out = Table(title=heading, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False,
                collapse_padding=True, padding=(0, 1))  # fmt: skip
    for column in columns:
        header = column.header if isinstance(column.header, Text) else Text(str(column.header))
        out.add_column(header, justify=column.justify, no_wrap=not column.wrap,
                       overflow="fold" if column.wrap else "ellipsis", min_width=column.minimum)  # fmt: skip
    for i in range(len(columns[0].cells) if columns else 0):
        out.add_row(*(_text(c.cells[i], c.style) for c in columns))
    return out


def _text(value: Any, style: str | None):
    from rich.text import Text

    if isinstance(value, Text):
        return value
    return Text(str(value), style=style or "")


def chunks(fixed: list[Cells], groups: list[list[Cells]], width: int | None) -> list[list[Cells]]:
    """Split a wide table into several, each with the *fixed* columns (the row labels) and as many
    whole *groups* of columns (one candidate's, one depth's) as fit in *width*; at least one group
    per table. Without a width, one table."""
    if width is None or not groups:
        return [fixed + [c for g in groups for c in g]]
    out: list[list[Cells]] = []
    current: list[Cells] = []
    for group in groups:
        if current and table_width(fixed + current + group, minimum=True) > width:
            out.append(fixed + current)
            current = []
        current += group
    out.append(fixed + current)
    return out


def wrap_pairs(pairs: list[Any], width: int | None, indent: int = 2, gap: str = "  "):
    """Lines of rich Text, each *indent* spaces then as many whole *pairs* (Text such as "z std 1.42")
    as fit in *width*, joined by *gap*: a list layout that never breaks inside a pair."""
    from rich.text import Text

    lines: list[Text] = []
    line = Text(" " * indent)
    used = indent
    for pair in pairs:
        pair = pair if isinstance(pair, Text) else Text(str(pair))
        need = pair.cell_len + (len(gap) if used > indent else 0)
        if used > indent and width is not None and used + need > width:
            lines.append(line)
            line, used = Text(" " * indent), indent
            need = pair.cell_len
        if used > indent:
            line.append(gap)
        line.append_text(pair)
        used += need
    lines.append(line)
    return lines


def fitted(title: Any, columns: list[Cells], width: int | None) -> tuple[list, list[Cells]]:
    """The parts that show *columns* in *width* cells, and the columns hidden: a table of the
    columns that fit (`fit`), or, when the essential ones do not, one block per row: the first
    column's cell in bold, the other short cells as ``header value`` pairs, each wrapping cell
    under them. Every cell of priority 0 is shown either way."""
    from rich.text import Text

    chosen = fit(columns, width)
    if chosen is not None:
        return [table(title, chosen[0], width)], chosen[1]
    parts: list = []
    if title is not None:
        parts += [title if isinstance(title, Text) else Text(str(title), style="table.title"), Text("")]
    label, rest = columns[0], columns[1:]
    for i in range(len(label.cells)):
        head = _text(label.cells[i], label.style).copy()
        head.stylize("bold")
        parts.append(head)
        pairs = []
        for column in rest:
            if column.wrap or not _text(column.cells[i], None).plain.strip():
                continue
            pair = Text(f"{_plain_header(column.header)} ", style="dim")
            pair.append_text(_text(column.cells[i], column.style))
            pairs.append(pair)
        if pairs:
            parts += wrap_pairs(pairs, width)
        for column in rest:
            cell = _text(column.cells[i], column.style)
            if column.wrap and cell.plain.strip():
                line = Text(f"  {_plain_header(column.header)}: ", style="dim")
                line.append_text(cell)
                parts.append(line)
    return parts, []


def _plain_header(header: Any) -> str:
    text = header.plain if hasattr(header, "plain") else str(header)
    return " ".join(text.split())


class Lines:
    """A table in the house style laid out directly: each column at its natural width, cells
    justified, two spaces between columns and one at each edge, the header (top-aligned, bold), a
    rule, the rows; as rich's Table prints it when nothing wraps (`tests/test_widths.py` compares)."""

    def __init__(self, title: Any, columns: list[Cells]):
        self.title, self.columns = title, columns

    def __rich_console__(self, console, options):
        from rich.text import Text

        widths = [c.natural for c in self.columns]
        total = sum(widths) + 2 * len(widths)
        if self.title is not None:
            title = self.title if isinstance(self.title, Text) else Text(str(self.title), style="table.title")
            for line in title.wrap(console, total):  # as rich does: wrapped and padded to the table
                line.pad_right(total - line.cell_len)
                yield line
        yield Text(" " * total)
        headers = [_text(c.header, None).plain.split("\n") for c in self.columns]
        depth = max(len(h) for h in headers)
        for k in range(depth):
            yield self._line([Text(h[k] if k < len(h) else "") for h in headers], widths, "table.header")
        yield Text(" " + "─" * (total - 2) + " ")
        for i in range(len(self.columns[0].cells)):
            yield self._line([_text(c.cells[i], c.style) for c in self.columns], widths)
        yield Text(" " * total)

    def _line(self, cells, widths, style: str | None = None):
        from rich.text import Text

        line = Text(" ")
        for k, (cell, column, width) in enumerate(zip(cells, self.columns, widths, strict=True)):
            if k:
                line.append("  ")
            pad = " " * (width - cell.cell_len)
            if style:
                cell = cell.copy()
                cell.stylize(style)
            if column.justify == "right":
                line.append(pad)
                line.append_text(cell)
            else:
                line.append_text(cell)
                line.append(pad)
        line.append(" ")
        return line
