"""The one rendering layer: a result becomes a rich table, JSON, CSV or markdown.

The table and markdown share one column list; CSV and JSON use the contract's keys. Nothing here
computes statistics or decides flags: it only reads a `ProbeResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from .result import FLAGS, GAIN_JUDGED_KINDS, STAT_KEYS, WARN_FRACTION, LayerStats, ProbeResult
from .result import format_number as fmt

FORMATS = ("table", "json", "csv", "markdown")

# one distinct style per flag
FLAG_STYLES = {
    "vanishing": "bold blue",
    "exploding": "bold red",
    "dead": "bold yellow",
    "saturated": "bold dark_orange",
    "symmetric": "bold magenta",
    "nonfinite": "bold white on red",
}
VERDICT_STYLES = {"ok": "bold green", "warn": "bold yellow", "fail": "bold red"}
VERDICT_MARKS = {"ok": "✔", "warn": "!", "fail": "✘"}


def fmt_percent(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if x == 0:
        return "0"
    return f"{100 * x:.3g}"


def _std(var: float | None) -> float | None:
    if var is None:
        return None
    return math.sqrt(var) if var >= 0 else math.nan


NOT_APPLICABLE = "·"  # a statistic the layer does not have (no weights, no units of its own)


def _num(x: float | None) -> str:
    return NOT_APPLICABLE if x is None else fmt(x)


# the table's marks for layers that are not plain weighted layers
MARKS = {"batchnorm": " ↺", "layernorm": " ↺", "residual": " Σ"}
MARK_LEGEND = {
    " ↺": "↺ normalization: resets the scale, so its gains are not judged",
    " Σ": "Σ residual sum: shortcut + scale × branch (the rows above it, indented)",
}


def _shape(s: LayerStats) -> str:
    if s.kind == "dense":
        return f"{s.fan_in}→{s.fan_out}"
    return "×".join(map(str, s.output_shape))


def _name(s: LayerStats) -> str:
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


def to_json(result: ProbeResult) -> str:
    """The contract's JSON for one probe."""
    return json_text(result.to_dict())


def to_csv(result: ProbeResult) -> str:
    """One row per layer with the JSON keys as header; flags joined by ';'."""
    rows = [layer.to_dict() for layer in result.layers]
    return csv_text(list(rows[0]), rows)


# --- the shared column list for table and markdown ------------------------------------------------


class Column(NamedTuple):
    header: str
    text: Callable[[LayerStats], str]
    # which flags colour this cell (the cell signals that problem)
    signals: tuple[str, ...] = ()
    justify: str = "right"
    priority: int = 0  # in a narrow terminal the highest numbers are hidden first; 0 never


def _outside(gain: float, limit: float) -> bool:
    return not math.isnan(gain) and not (1 / limit <= gain <= limit)


def flag_sources(layer: LayerStats, result: ProbeResult) -> dict[str, list[str]]:
    """What raised each vanishing / exploding flag of the layer: ``fwd`` or ``bwd`` (its gain in
    that direction left the band), ``no-signal`` (z = 0), ``no-grad`` (its weights get none)."""
    t = result.settings.thresholds
    sources: dict[str, list[str]] = {}
    for direction, gain, limit, judged in (
        ("fwd", layer.forward_gain, t.max_forward_gain, layer.gain_judged[0]),
        ("bwd", layer.backward_gain, t.max_backward_gain, layer.gain_judged[1]),
    ):
        if judged and _outside(gain, limit):
            sources.setdefault("exploding" if gain > 1 else "vanishing", []).append(direction)
    if layer.silent:
        sources.setdefault("vanishing", []).append("no-signal")
    if layer.gradient_stop is not None:
        sources.setdefault("vanishing", []).append("no-grad")
    return sources


def flags_text(layer: LayerStats, result: ProbeResult):
    """The flags cell: each flag in its colour, vanishing / exploding with what raised them."""
    from rich.text import Text

    sources = flag_sources(layer, result)
    out = Text()
    for k, flag in enumerate(layer.flags):
        if k:
            out.append(" ")
        why = sources.get(flag)
        out.append(flag + (f"({','.join(why)})" if why else ""), style=FLAG_STYLES[flag])
    return out


def _gain_cell(layer: LayerStats, result: ProbeResult, backward: bool):
    """A gain, coloured by its band (dim where it is not judged), with its spread over trials."""
    from rich.text import Text

    key = "backward_gain" if backward else "forward_gain"
    gain = getattr(layer, key)
    text = fmt(gain)
    if key in layer.sd and result.settings.trials > 1:
        text += f" ±{fmt(layer.sd[key])}"
    limit = (
        result.settings.thresholds.max_backward_gain
        if backward
        else result.settings.thresholds.max_forward_gain
    )
    if not layer.gain_judged[1 if backward else 0]:
        return Text(text, style=FLAG_STYLES["nonfinite"] if math.isinf(gain) else "dim")
    style = _gain_style(gain, limit)
    return Text(text, style="" if style == "green" else style)


def _cell_style(column: Column, layer: LayerStats, text: str, result: ProbeResult) -> str | None:
    if column.header in ("z th", "∂x th"):
        return _theory_style(column, layer)
    if text in ("nan", "inf", "-inf"):
        return FLAG_STYLES["nonfinite"]
    if column.header == "dead%" and not layer.dead_judged:
        return "dim"
    sources = flag_sources(layer, result)
    for flag in column.signals:
        if flag not in layer.flags:
            continue
        if flag in ("vanishing", "exploding"):
            # forward columns signal forward trouble, the gradient column backward trouble
            wanted = "bwd" if column.header == "∂x std" else "fwd"
            if wanted in sources.get(flag, ()):
                return FLAG_STYLES[flag]
            continue
        return FLAG_STYLES[flag]
    return None


COLUMNS: tuple[Column, ...] = (
    Column("layer", _name, justify="left"),
    Column("shape", _shape, priority=3),
    Column("act", lambda s: s.act or "", justify="left", priority=4),
    Column("W std", lambda s: _num(s.weight_std), priority=6),
    Column("z mean", lambda s: fmt(s.preact_mean), priority=7),
    Column("z std", lambda s: fmt(_std(s.preact_var)), ("vanishing", "exploding"), priority=1),
    Column("a mean", lambda s: fmt(s.act_mean), priority=7),
    Column("a std", lambda s: fmt(_std(s.act_var)), ("vanishing", "exploding"), priority=3),
    Column("∂x std", lambda s: fmt(_std(s.grad_input_var)), ("vanishing", "exploding"), priority=1),
    Column("∂W std", lambda s: _num(_std(s.grad_weight_var)), priority=6),
    Column("dead%", lambda s: fmt_percent(s.dead_fraction), ("dead",), priority=2),
    Column("sat%", lambda s: fmt_percent(s.saturated_fraction), ("saturated",), priority=2),
    Column(
        "distinct",
        lambda s: NOT_APPLICABLE if s.distinct_units is None else f"{s.distinct_units:.4g}",
        ("symmetric",),
        priority=2,
    ),
)


# mean-field predictions beside the measured std (with the theory on; `·` where it does not apply)
THEORY_COLUMNS = {
    "z std": Column("z th", lambda s: _num(_std(s.theory_preact_var)), priority=5),
    "∂x std": Column("∂x th", lambda s: _num(_std(s.theory_grad_input_var)), priority=5),
}
THEORY_TOLERANCE = 0.1  # a prediction further than this from the measured std is shown in yellow


def columns_for(result: ProbeResult) -> list[Column]:
    """The table's columns: `COLUMNS`, with the theory's beside the std they predict when it is on."""
    out = []
    for column in COLUMNS:
        out.append(column)
        if theory_shown(result) and column.header in THEORY_COLUMNS:
            out.append(THEORY_COLUMNS[column.header])
    return out


def theory_shown(result: ProbeResult) -> bool:
    """Whether the theory columns are shown: the theory is on and applies to this stack (where it
    does not, the line under the table says why, and the columns would be all ``·``)."""
    theory = result.summary.theory
    return bool(result.settings.theory and theory is not None and "reason" not in theory)


def _theory_style(column: Column, layer: LayerStats) -> str | None:
    measured, predicted = (
        (layer.preact_var, layer.theory_preact_var) if column.header == "z th"
        else (layer.grad_input_var, layer.theory_grad_input_var)
    )  # fmt: skip
    if predicted is None or not predicted > 0 or not measured >= 0:
        return "dim"
    return "yellow" if abs(math.sqrt(measured / predicted) - 1) > THEORY_TOLERANCE else "dim"


# --- the cumulative gains on a log scale ----------------------------------------------------------

BAR_CELLS = 13  # half a decade each: 1e-3 .. 1e3, gain 1 in the middle


def _position(gain: float) -> int | None:
    """The cell of a gain on the track (clamped to its ends), None when it is not a number."""
    if math.isnan(gain) or gain < 0:
        return None
    centre = BAR_CELLS // 2
    position = centre + (math.log10(gain) * 2 if gain > 0 else -math.inf)
    return min(max(round(position) if math.isfinite(position) else int(math.copysign(99, position)), 0),
               BAR_CELLS - 1)  # fmt: skip


def gain_track(forward: float, backward: float | None, limit: float) -> list[tuple[str, str]]:
    """A 13-cell track, log10(gain) from -3 to 3, as (character, role) per cell: the forward gain
    ``●``, the backward gain ``○``, both ``◉``; ``◀`` / ``▶`` (``◁`` / ``▷`` backward) for a gain
    beyond the ends. Cells inside [1/limit, limit] are ``─``, outside ``·``, gain 1 ``┼``. The role
    is ``fwd``, ``bwd``, ``both`` or ``track``."""
    centre = BAR_CELLS // 2
    band = math.log10(limit) * 2
    track = [
        ("┼" if k == centre else ("─" if abs(k - centre) <= band else "·"), "track") for k in range(BAR_CELLS)
    ]
    marks = {}
    for role, gain in (("fwd", forward), ("bwd", backward)):
        if gain is None:
            continue
        pos = _position(gain)
        if pos is None:
            continue
        beyond = (
            gain == 0
            or math.log10(gain) * 2 + centre < -0.5
            or math.log10(gain) * 2 + centre > BAR_CELLS - 0.5
        )
        if beyond:
            symbol = ("◀" if pos == 0 else "▶") if role == "fwd" else ("◁" if pos == 0 else "▷")
        else:
            symbol = "●" if role == "fwd" else "○"
        if pos in marks:
            marks[pos] = ("◉", "both")
        else:
            marks[pos] = (symbol, role)
    for pos, mark in marks.items():
        track[pos] = mark
    return track


def gain_bar(gain: float, limit: float) -> tuple[str, int | None]:
    """The forward gain alone on the track (the sweep and compare profiles use it)."""
    cells = gain_track(gain, None, limit)
    pos = next((k for k, (_, role) in enumerate(cells) if role != "track"), None)
    return "".join(c for c, _ in cells), pos


def _gain_style(gain: float, limit: float) -> str:
    if math.isnan(gain) or math.isinf(gain):
        return FLAG_STYLES["nonfinite"] if math.isinf(gain) else "dim"
    if gain > limit:
        return FLAG_STYLES["exploding"]
    if gain < 1 / limit:
        return FLAG_STYLES["vanishing"]
    if abs(math.log(gain)) > WARN_FRACTION * math.log(limit):  # the verdict's warn band
        return "yellow"
    return "green"


def _track_text(layer: LayerStats, result: ProbeResult):
    from rich.text import Text

    t = result.settings.thresholds
    styles = {
        "fwd": _gain_style(layer.forward_gain, t.max_forward_gain) if layer.gain_judged[0] else "dim",
        "bwd": _gain_style(layer.backward_gain, t.max_backward_gain) if layer.gain_judged[1] else "dim",
    }
    styles["both"] = styles["fwd"] if styles["fwd"] != "green" else styles["bwd"]
    out = Text()
    for ch, role in gain_track(layer.forward_gain, layer.backward_gain, t.max_forward_gain):
        out.append(ch, style="dim" if role == "track" else styles[role])
    return out


# --- rich table -----------------------------------------------------------------------------------


def _stack_text(result: ProbeResult) -> str:
    """``784 → 256 → 10`` for a dense chain (folded when long), else input → output and the count."""
    s = result.spec
    if s.is_dense_chain:
        return " → ".join(str(w) for w in s.widths) if len(s.widths) <= 8 else s.shorthand()
    first, last = "×".join(map(str, s.input_shape)), "×".join(map(str, result.layers[-1].output_shape))
    return f"{first} → {last}, {len(result.layers)} layers"


def title(result: ProbeResult) -> str:
    s, settings = result.spec, result.settings
    arrow = _stack_text(result)
    inits = sorted({x.init for x in result.layers if x.init is not None and x.kind != "residual"})
    hidden = [x.act for x in result.layers[:-1] if x.act is not None]
    acts = (sorted(set(hidden) - {"linear"}) or ["linear"]) if hidden else []
    out = result.layers[-1].act
    if out not in (None, "linear") or not hidden:
        acts.append(f"out {out or 'linear'}")
    trials = f" · {settings.trials} trials" if settings.trials > 1 else ""
    name = f"{s.name} · " if s.name else ""
    return (
        f"{name}{arrow} · {', '.join(acts)} · {', '.join(inits)} · batch {settings.batch} · "
        f"seed {settings.seed}{trials} · {settings.dtype}"
    )


def theory_line(result: ProbeResult) -> str:
    """The mean-field summary in words, or why it does not apply."""
    theory = result.summary.theory
    if "reason" in theory:
        return f"theory (th columns): not shown; {theory['reason']}"
    return f"theory (th columns, mean field): {theory['words']}"


def jacobian_line(result: ProbeResult) -> str:
    from .jacobian import words

    jac = result.summary.jacobian
    return f"jacobian: not computed; {jac['reason']}" if "reason" in jac else words(jac)


def verdict_line(result: ProbeResult) -> str:
    sm = result.summary
    since = f" (from {sm.forward_gain_from})" if sm.forward_gain_from else ""
    return (
        f"{VERDICT_MARKS[sm.verdict]} {sm.verdict}: forward gain {fmt(sm.forward_gain)}{since}, "
        f"backward gain {fmt(sm.backward_gain)}, loss {fmt(sm.loss)} ({result.settings.loss})"
    )


def _probe_columns(result: ProbeResult):
    """Every column of the probe table as `tables.Cells`, in order."""
    from rich.text import Text

    from .tables import Cells

    layers = result.layers
    out = []
    for column in columns_for(result):
        cells = []
        for layer in layers:
            text = column.text(layer)
            cells.append(Text(text, style=_cell_style(column, layer, text, result) or ""))
        out.append(Cells(column.header, cells, column.justify, column.priority))
    out.append(Cells("fwd gain", [_gain_cell(x, result, False) for x in layers]))
    out.append(Cells("bwd gain", [_gain_cell(x, result, True) for x in layers]))
    out.append(Cells("gain (log)", [_track_text(x, result) for x in layers], "left", priority=4))
    flags = [flags_text(x, result) for x in layers]
    longest = max((len(word) for f in flags for word in f.plain.split()), default=5)
    out.append(Cells("flags", flags, "left", wrap=True, min_width=longest))
    return out


def _layer_blocks(result: ProbeResult, columns, width: int | None):
    """The list layout, for a terminal too narrow for the table: per layer, its name, shape, act
    and flags on one line, then every statistic as ``header value`` pairs, never broken."""
    from rich.text import Text

    from .tables import wrap_pairs

    lines = []
    by_header = {c.header: c for c in columns}
    for i, layer in enumerate(result.layers):
        head = Text(_name(layer).strip(), style="bold")
        head.append(f"  {_shape(layer)}")
        if layer.act:
            head.append(f"  {layer.act}")
        if layer.flags:
            head.append("  ")
            head.append_text(flags_text(layer, result))
        lines.append(head)
        pairs = []
        for header in ("z std", "z th", "a std", "∂x std", "∂x th", "fwd gain", "bwd gain", "dead%", "sat%",
                       "distinct", "W std", "∂W std", "z mean", "a mean"):  # fmt: skip
            if header not in by_header:
                continue
            pair = Text(f"{header} ", style="dim")
            pair.append_text(by_header[header].cells[i])
            pairs.append(pair)
        lines += wrap_pairs(pairs, width)
    return lines


def probe_table(result: ProbeResult, width: int | None = None):
    """The rich renderable: the per-layer table, then the verdict line, reasons and a legend.
    With *width*, the least important columns are hidden until the table fits (and a note says
    so); a terminal too narrow for the essential columns gets one block per layer instead."""
    from rich.console import Group
    from rich.text import Text

    from .tables import fit, table

    every = _probe_columns(result)
    fitted = fit(every, width)
    parts: list = []
    hidden: list = []
    if fitted is None:
        parts.append(Text(title(result), style="table.title"))
        parts.append(Text(""))
        parts += _layer_blocks(result, every, width)
        parts.append(Text(""))
    else:
        shown, hidden = fitted
        parts.append(table(title(result), shown))

    sm = result.summary
    parts.append(Text(verdict_line(result), style=VERDICT_STYLES[sm.verdict]))
    for reason in sm.reasons:
        parts.append(Text(f"  · {reason}"))
    for note in sm.notes:
        parts.append(Text(f"  note: {note}", style="yellow"))
    if sm.theory:
        parts.append(Text(f"  {theory_line(result)}", style="dim"))
    if sm.jacobian:
        parts.append(Text(f"  {jacobian_line(result)}", style="dim"))
    parts += [Text(f"  {line}", style="dim") for line in legend_lines(result, hidden, fitted is None)]
    present = [f for f in FLAGS if f in sm.flags]
    if present:
        legend = Text("  flags: ", style="dim")
        for k, flag in enumerate(present):
            if k:
                legend.append("  ")
            legend.append(flag, style=FLAG_STYLES[flag])
        parts.append(legend)
    return Group(*parts)


def legend_lines(result: ProbeResult, hidden: list, as_list: bool = False) -> list[str]:
    """The words under a probe's table: what its marks mean, what is not judged, what is hidden."""
    lines = []
    kinds = {x.kind for x in result.layers}
    if kinds & {"batchnorm", "layernorm"}:
        lines.append("↺ normalization: it erases the scale before it, so forward gains restart at its output "
                     "and the rows whose scale it erases are not judged forward (dim); backward gains need "
                     "no restart (its backward pass divides by the same std)")  # fmt: skip
    if "residual" in kinds:
        lines.append("Σ residual sum: shortcut + scale × branch (the rows above it, indented)")
    unjudged = sorted(kinds - set(GAIN_JUDGED_KINDS) - {"batchnorm", "layernorm"})
    if unjudged:
        lines.append(
            f"dim gains ({', '.join(unjudged)}): not judged; the next weighted layer shows their effect"
        )
    first = result.layers[0]
    t = result.settings.thresholds
    if first.kind in GAIN_JUDGED_KINDS and _outside(first.backward_gain, t.max_backward_gain):
        lines.append(
            f"{first.name}'s backward gain ({fmt(first.backward_gain)}) is the gradient of the input data, "
            "which trains nothing, so it is not judged (He et al. 2015, sec. 2.2)"
        )
    if any(flag_sources(x, result) for x in result.layers):
        lines.append(
            "(fwd)/(bwd): the forward/backward gain left [1/T, T]; no-signal: z = 0 everywhere; "
            "no-grad: no gradient reaches the layer's weights"
        )
    if not as_list and not any(str(c.header) == "gain (log)" for c in hidden):
        lines.append("gain (log): ● forward, ○ backward, ◉ both, from 1e-3 to 1e3; ┼ is 1")
    if hidden:
        names = ", ".join(str(c.header) for c in hidden)
        lines.append(f"hidden to fit the terminal: {names} (widen it, or use --format json)")
    if as_list:
        lines.append("one block per layer: the terminal is too narrow for the table (or use --format json)")
    if result.settings.trials > 1:
        lines.append(f"means over {result.settings.trials} trials; JSON has each spread as <key>_sd")
    return lines


# --- markdown -------------------------------------------------------------------------------------


def to_markdown(result: ProbeResult) -> str:
    columns = columns_for(result)
    headers = [c.header for c in columns] + ["fwd gain", "bwd gain", "flags"]
    left = {c.header for c in columns if c.justify == "left"} | {"flags"}
    rows = [
        [c.text(layer) for c in columns]
        + [
            _gain_cell(layer, result, False).plain,
            _gain_cell(layer, result, True).plain,
            flags_text(layer, result).plain.replace(" ", ", "),
        ]
        for layer in result.layers
    ]
    lines = [f"**initdiag probe** · {title(result)}", "", *markdown_table(headers, left, rows)]
    lines += ["", f"**{verdict_line(result)}**"]
    lines += [f"- {reason}" for reason in result.summary.reasons]
    lines += [f"- note: {note}" for note in result.summary.notes]
    if result.summary.theory:
        lines += ["", theory_line(result)]
    if result.summary.jacobian:
        lines += ["", jacobian_line(result)]
    return "\n".join(lines) + "\n"


def render_text(result: ProbeResult, fmt_name: str) -> str:
    """JSON, CSV or markdown as a string (the table goes through `probe_table`)."""
    return {"json": to_json, "csv": to_csv, "markdown": to_markdown}[fmt_name](result)


# --- initdiag check -------------------------------------------------------------------------------

CHECK_FORMATS = (*FORMATS, "junit")
CHECK_STYLES = {"pass": "bold green", "fail": "bold red", "error": "bold white on red"}
CHECK_HEADERS = ["spec", "name", "result", "verdict", "worst layer", "reason"]


def _check_row(outcome) -> list[str]:
    """The cells of one spec's row: its file, name, PASS/FAIL/ERROR, the probe's verdict, the
    worst layer and the first reason (a pass shows the gains)."""
    if outcome.malformed:
        first = outcome.problems[0].removeprefix(f"{outcome.file}:").strip()
        line, _, message = first.partition(": ")
        reason = f"line {line}: {message}" if line.isdigit() else first
        return [outcome.file, outcome.name or "", "ERROR", "", "", reason]
    sm = outcome.result.summary
    if outcome.passed:
        reason = f"forward gain {fmt(sm.forward_gain)}, backward gain {fmt(sm.backward_gain)}"
        if sm.verdict == "warn" and sm.reasons:
            reason = sm.reasons[0]
    else:
        more = len(outcome.reasons) - 1
        reason = outcome.reasons[0] + (f" (+{more} more)" if more else "")
    result = "PASS" if outcome.passed else "FAIL"
    return [outcome.file, outcome.name or "", result, sm.verdict, outcome.worst_layer or "", reason]


def _check_summary(report) -> str:
    counts = report.counts()
    parts = [f"{counts[k]} {k}" for k in ("failed", "malformed", "passed") if counts[k]]
    mark = "✔" if report.exit_code == 0 else "✘"
    return f"{mark} {', '.join(parts) or 'no specs'}"


def _check_details(report) -> list[tuple[str, str]]:
    """(style, line) for every reason of every failing spec and every problem of a malformed one."""
    details = []
    for outcome in report.outcomes:
        if outcome.malformed:
            details += [(CHECK_STYLES["error"], f"  {p}") for p in outcome.problems]
        elif not outcome.passed:
            for reason, line in zip(outcome.reasons, outcome.reason_lines, strict=True):
                where = f"{outcome.file}:{line}" if line else outcome.file
                details.append(("", f"  {where}: {reason}"))
    return details


def check_table(report):
    """The rich renderable of a check: one row per spec (a block per spec in a narrow terminal), the
    tally, then every reason in full."""
    return Adaptive(lambda width, colour: _check_parts(report, width))


def _check_parts(report, width: int | None) -> list:
    from rich.text import Text

    from .tables import Cells, fitted

    rows = [_check_row(outcome) for outcome in report.outcomes]
    columns = []
    for j, header in enumerate(CHECK_HEADERS):
        cells = []
        for outcome, row in zip(report.outcomes, rows, strict=True):
            cell = Text(row[j])
            if header == "result":
                cell.stylize(CHECK_STYLES[outcome.status])
            elif header == "verdict" and not outcome.malformed:
                cell.stylize(VERDICT_STYLES[outcome.result.summary.verdict])
            cells.append(cell)
        wrap = header in ("spec", "name", "worst layer", "reason")
        columns.append(Cells(header, cells, "left", wrap=wrap))
    parts, _ = fitted("initdiag check", columns, width)
    parts.append(Text(_check_summary(report), style="bold green" if report.exit_code == 0 else "bold red"))
    parts += [Text(line, style=style) for style, line in _check_details(report)]
    return parts


def check_markdown(report) -> str:
    rows = [_check_row(outcome) for outcome in report.outcomes]
    lines = ["**initdiag check**", "", *markdown_table(CHECK_HEADERS, set(CHECK_HEADERS) - {"result"}, rows)]
    lines += ["", f"**{_check_summary(report)}**"]
    lines += [f"- {line.strip()}" for _, line in _check_details(report)]
    return "\n".join(lines) + "\n"


def check_csv(report) -> str:
    header = ["file", "name", "passed", "status", "verdict", "worst_layer", "line", "forward_gain",
              "backward_gain", "reasons"]  # fmt: skip
    rows = []
    for o in report.outcomes:
        sm = o.result.summary if o.result else None
        row = {"file": o.file, "name": o.name, "passed": o.passed, "status": o.status,
               "worst_layer": o.worst_layer, "line": o.line, "reasons": o.problems or o.reasons}  # fmt: skip
        if sm is not None:
            row.update(verdict=sm.verdict, forward_gain=sm.forward_gain, backward_gain=sm.backward_gain)
        rows.append(row)
    return csv_text(header, rows)


def check_junit(report) -> str:
    """JUnit XML, which CI systems read: one test case per spec; a failing spec is a failure, a
    malformed one an error."""
    import xml.etree.ElementTree as ET

    counts = report.counts()
    seconds = f"{sum(o.seconds for o in report.outcomes):.3f}"
    totals = {"tests": str(len(report.outcomes)), "failures": str(counts["failed"]),
              "errors": str(counts["malformed"]), "time": seconds}  # fmt: skip
    suites = ET.Element("testsuites", name="initdiag check", **totals)
    suite = ET.SubElement(suites, "testsuite", name="initdiag check", **totals)
    for o in report.outcomes:
        case = ET.SubElement(suite, "testcase", classname="initdiag.check", name=o.file, file=o.file,
                             time=f"{o.seconds:.3f}")  # fmt: skip
        if o.line:
            case.set("line", str(o.line))
        if o.malformed:
            error = ET.SubElement(case, "error", type="malformed spec", message=o.problems[0])
            error.text = "\n".join(o.problems)
        elif not o.passed:
            failure = ET.SubElement(case, "failure", type="initialization", message=o.reasons[0])
            failure.text = "\n".join(o.reasons)
        if o.result is not None:
            ET.SubElement(case, "system-out").text = verdict_line(o.result)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def check_text(report, fmt_name: str) -> str:
    """A check report as JSON, CSV, markdown or JUnit XML (the table goes through `check_table`)."""
    renderers = {"json": lambda r: json_text(r.to_dict()), "csv": check_csv, "markdown": check_markdown,
                 "junit": check_junit}  # fmt: skip
    return renderers[fmt_name](report)


def _gh_escape(text: str, is_property: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if is_property else text


def github_annotations(report) -> list[str]:
    """``::error file=...,line=...::message`` workflow commands, one per reason of each failing
    spec (at its layer's line) and per problem of each malformed one (at the problem's line)."""
    out = []
    for o in report.outcomes:
        if o.malformed:
            items = []
            for problem in o.problems:
                rest = problem.removeprefix(f"{o.file}:")
                line, sep, message = rest.partition(": ")
                items.append(
                    (int(line) if sep and line.strip().isdigit() else None, message if sep else problem)
                )
            title = "malformed spec"
        elif not o.passed:
            items = list(zip(o.reason_lines, o.reasons, strict=True))
            title = f"initdiag check: {o.name or o.file}"
        else:
            continue
        for line, message in items:
            props = f"file={_gh_escape(o.file, True)}" + (f",line={line}" if line else "")
            out.append(f"::error {props},title={_gh_escape(title, True)}::{_gh_escape(message)}")
    return out


# --- initdiag compare ------------------------------------------------------------------------------

SPARKS = "▁▂▃▄▅▆▇"  # one decade each, log10(gain) from -3 to 3: 1 is ▄
SPARK_RANGE = (-3, 3)


def _compare_title(comparison) -> str:
    result, settings = comparison.results[0], comparison.settings
    trials = f" · {settings.trials} trials" if settings.trials > 1 else ""
    name = f"{result.spec.name} · " if result.spec.name else ""
    where = f"{name}{_stack_text(result)}"
    return f"compare · {where} · batch {settings.batch} · seed {settings.seed}{trials} · {settings.dtype}"


def _worst_flag(result: ProbeResult) -> str:
    return result.summary.findings[0].flag if result.summary.findings else ""


def _summary_rows(comparison) -> list[list[str]]:
    rows = []
    for rank, i in enumerate(comparison.order(), start=1):
        result, sm = comparison.results[i], comparison.results[i].summary
        reason = sm.reasons[0] if sm.reasons else ""
        gains = [fmt(sm.forward_gain), fmt(sm.backward_gain)]
        if sm.sd:  # with --trials: the spread over seeds
            gains = [
                f"{gains[0]} ±{fmt(sm.sd['forward_gain'])}",
                f"{gains[1]} ±{fmt(sm.sd['backward_gain'])}",
            ]
        rows.append(
            [str(rank), comparison.candidates[i].label, *gains, _worst_flag(result), sm.verdict, reason]
        )
    return rows


SUMMARY_HEADERS = ["#", "candidate", "fwd gain", "bwd gain", "worst flag", "verdict", "reason"]


def _spark(value: float, lo: float, hi: float, flat: int = 0, sparks: str = SPARKS) -> str:
    """One bar of a sparkline: log10(value) on [lo, hi] as one of the *sparks* heights (*flat* when
    the scale is empty), clamped at its ends; × for a value that is not a positive number."""
    if not (value > 0 and math.isfinite(value)):
        return "×"
    if hi == lo:
        return sparks[flat]
    return sparks[round((min(max(math.log10(value), lo), hi) - lo) / (hi - lo) * (len(sparks) - 1))]


def sparkline(gains: list[float], limit: float) -> list[tuple[str, str]]:
    """(character, style) per gain on the fixed scale `SPARK_RANGE` (one decade per height, 1 is
    ▄), coloured by the band it is in; × for a gain that is not a positive number."""
    lo, hi = SPARK_RANGE
    return [(c, FLAG_STYLES["nonfinite"] if c == "×" else _gain_style(g, limit))
            for g, c in ((g, _spark(g, lo, hi)) for g in gains)]  # fmt: skip


def _profiles(comparison) -> list[list[float]]:
    """Forward gains of the layers each candidate judges forward."""
    return [[x.forward_gain for x in r.layers if x.gain_judged[0]] for r in comparison.results]


def _compare_groups(comparison):
    """Per candidate, its two columns: each layer's forward and backward gain (the probe's)."""
    from rich.text import Text

    from .tables import Cells

    groups = []
    for cand, result in zip(comparison.candidates, comparison.results, strict=True):
        fwd = [_gain_cell(x, result, False) for x in result.layers]
        bwd = [_gain_cell(x, result, True) for x in result.layers]
        groups.append([Cells(Text(f"{cand.label}\nfwd"), fwd), Cells(Text("\nbwd"), bwd)])
    return groups


def compare_table(comparison, width: int | None = None):
    """A row per layer and two columns per candidate, its forward and backward gain (the same
    numbers as ``probe``'s, split into several tables when the terminal is narrow); the candidates
    best first with their verdicts and reasons; and a depth profile of each on a fixed scale."""
    from rich.console import Group
    from rich.text import Text

    from .tables import Cells, chunks, fit, table

    results = comparison.results
    limit = comparison.settings.thresholds.max_forward_gain
    names = Cells("layer", [Text(_name(x)) for x in results[0].layers], "left")
    parts: list = [Text(_compare_title(comparison))]
    for columns in chunks([names], _compare_groups(comparison), width):
        parts.append(table(None, columns))
    parts.append(Text("  fwd, bwd: each layer's cumulative forward and backward gain in E[x^2] (the probe's "
                      "gains; dim where not judged)", style="dim"))  # fmt: skip
    rows = _summary_rows(comparison)
    summary = []
    for j, header in enumerate(SUMMARY_HEADERS):
        cells = []
        for row in rows:
            cell = Text(row[j])
            if header == "verdict":
                cell.stylize(VERDICT_STYLES[row[j]])
            elif header == "worst flag" and row[j]:
                cell.stylize(FLAG_STYLES[row[j]])
            cells.append(cell)
        justify = "right" if header in ("#", "fwd gain", "bwd gain") else "left"
        wrap = header in ("reason", "candidate")
        summary.append(Cells(header, cells, justify, priority=1 if header == "worst flag" else 0, wrap=wrap))
    fitted = fit(summary, width)
    parts.append(Text(""))
    if fitted is not None:
        parts.append(table("best first", fitted[0]))
    else:  # one block per candidate
        parts.append(Text("best first", style="table.title"))
        for row in rows:
            line = Text(f"{row[0]}. {row[1]}  ")
            line.append(row[5], style=VERDICT_STYLES[row[5]])
            line.append(f"  fwd {row[2]}  bwd {row[3]}")
            parts.append(line)
            if row[6]:
                parts.append(Text(f"   {row[6]}"))
    lo, hi = SPARK_RANGE
    label_width = max(len(c.label) for c in comparison.candidates)
    parts += [Text(""), Text(f"depth profile: forward gain per judged layer, log10 from {lo} (▁) to {hi} "
                             f"({SPARKS[-1]}); ▄ is 1, × not a number", style="bold")]  # fmt: skip
    for cand, row in zip(comparison.candidates, _profiles(comparison), strict=True):
        line = Text(f"  {cand.label:<{label_width}}  ")
        for ch, style in sparkline(row, limit):
            line.append(ch, style=style)
        if row:
            line.append(f"  {fmt(row[0])} → {fmt(row[-1])}", style="dim")
        parts.append(line)
    return Group(*parts)


def compare_markdown(comparison) -> str:
    headers = ["layer"]
    for cand in comparison.candidates:
        headers += [f"{cand.label} fwd", f"{cand.label} bwd"]
    rows = []
    for i, layer in enumerate(comparison.results[0].layers):
        row = [layer.name]
        for result in comparison.results:
            row += [
                _gain_cell(result.layers[i], result, False).plain,
                _gain_cell(result.layers[i], result, True).plain,
            ]
        rows.append(row)
    lines = [f"**initdiag {_compare_title(comparison)}**", "", *markdown_table(headers, {"layer"}, rows), "",
             "fwd, bwd: each layer's cumulative forward and backward gain in E[x^2] (the probe's gains)", "",
             *markdown_table(SUMMARY_HEADERS, {"candidate", "worst flag", "verdict", "reason"},
                             _summary_rows(comparison))]  # fmt: skip
    return "\n".join(lines) + "\n"


def compare_csv(comparison) -> str:
    """One row per candidate and layer: the candidate, then the layer's JSON keys."""
    rows = []
    for cand, result in zip(comparison.candidates, comparison.results, strict=True):
        for layer in result.layers:
            rows.append({"candidate": cand.label, "candidate_init": result.spec.init,
                         "candidate_act": result.spec.act, **layer.to_dict()})  # fmt: skip
    header = list(dict.fromkeys(key for row in rows for key in row))
    return csv_text(header, rows)


def compare_text(comparison, fmt_name: str) -> str:
    renderers = {"json": lambda c: json_text(c.to_dict()), "csv": compare_csv, "markdown": compare_markdown}
    return renderers[fmt_name](comparison)


# --- initdiag sweep ---------------------------------------------------------------------------------

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
    return (f"sweep · {sweep.metric} gain · width {sweep.width}{''.join(' · ' + f for f in fixed)} · batch "
            f"{s.batch} · seed {s.seed}{trials} · {s.dtype}")  # fmt: skip


def sweep_table(sweep):
    """The heat map: a row per row value, a column per column value, each cell the end-to-end gain
    and the verdict's mark, coloured by band on a terminal; split into several tables when the
    terminal is narrow; the legend says what is printed (colours only where there are colours)."""
    return Adaptive(lambda width, colour: _sweep_parts(sweep, width, colour))


def _sweep_parts(sweep, width: int | None, colour: bool):
    from rich.text import Text

    from .tables import Cells, chunks, table

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
        parts.append(table(None, columns))
    marks = Text(
        f"  each cell: the end-to-end {sweep.metric} gain in E[x^2] and the verdict of its probe "
        "(✔ ok, ! warn, ✘ fail: a cell fails on any flag, not only its gain)",
        style="dim",
    )
    parts.append(marks)
    if colour:
        legend = Text(f"  colour: the {sweep.metric} gain, T = {fmt(limit)}: ", style="dim")
        for label, style in _heat_legend(limit):
            legend.append(label, style=style)
            legend.append(" ")
        parts.append(legend)
    return parts


class Adaptive:
    """A renderable built for the console it is printed on: ``build(width, colour)`` gives its
    parts, for the console's width and whether it shows colour (a pipe or a log does not)."""

    def __init__(self, build):
        self.build = build

    def __rich_console__(self, console, options):
        yield from self.build(options.max_width, console.color_system is not None)


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


# --- initdiag train ----------------------------------------------------------------------------------

CLASS_STYLES = (("white on dark_blue", "bold bright_cyan on dark_blue"),
                ("white on dark_red", "bold bright_yellow on dark_red"),
                ("white on dark_green", "bold bright_white on dark_green"))  # fmt: skip
CURVE_CELLS = 30
# without colour (a pipe, a log, this README) the regions and points still read: class 0, 1, 2
REGION_MARKS = (" ", "·", ":")
POINT_MARKS = ("o", "x", "+")


def _mean_sd(values, percent: bool = False) -> str:
    import numpy as np

    mean = float(np.mean(values))
    text = f"{100 * mean:.3g}%" if percent else fmt(mean)
    if len(values) > 1:
        sd = float(np.std(values, ddof=1))
        text += f" ±{100 * sd:.2g}" if percent else f" ±{fmt(sd)}"
    return text


def _verdict_style(verdict: str) -> str:
    if verdict.startswith("learned"):
        return "bold green"
    if verdict.startswith(("still", "stuck")):
        return "bold yellow"
    return "bold red"


def train_title(report) -> str:
    s = report.settings
    arrow = " → ".join(s.layers.split(",")) if "x" not in s.layers else s.layers
    extras = [f"{s.optimizer} lr {fmt(s.lr)}"]
    if s.clip is not None:
        extras.append(f"clip {fmt(s.clip)}")
    if s.warmup:
        extras.append(f"warmup {s.warmup}")
    if s.weight_decay:
        extras.append(f"weight decay {fmt(s.weight_decay)}")
    trials = f" · {s.trials} trials" if s.trials > 1 else ""
    return (f"train · {s.dataset} ({s.n_train} train, {s.n_test} test, noise {fmt(s.noise_std)}) · {arrow} · "
            f"{s.act} · {', '.join(extras)} · {s.iters} iters · seed {s.seed}{trials}")  # fmt: skip


def _curves(report) -> list[list[float]]:
    """Each initializer's mean loss curve sampled to CURVE_CELLS points."""
    import numpy as np

    curves = []
    for result in report.results:
        mean = np.mean(result.loss_curve, axis=0)
        index = np.linspace(0, len(mean) - 1, CURVE_CELLS).round().astype(int)
        curves.append([float(mean[i]) for i in index])
    return curves


def _curve_text(values: list[float], style: str):
    """A sparkline of log10(loss) from the curve's own lowest to highest value (its shape: fast,
    slow or flat; the table's columns give the values). A curve that moves by less than 1% is flat."""
    from rich.text import Text

    logs = [math.log10(v) for v in values if v > 0 and math.isfinite(v)]
    lo, hi = (min(logs), max(logs)) if logs else (0.0, 0.0)
    if hi - lo < math.log10(1.01):
        lo = hi = logs[0] if logs else 0.0
    text = Text()
    for v in values:
        c = _spark(v, lo, hi, flat=3)
        text.append(c, style=FLAG_STYLES["nonfinite"] if c == "×" else style)
    return text


def _train_rows(report) -> list[list[str]]:
    return [[r.label, _mean_sd(r.initial_loss), _mean_sd(r.final_loss), _mean_sd(r.train_accuracy, True),
             _mean_sd(r.test_accuracy, True), r.verdict] for r in report.results]  # fmt: skip


def decision_boundary(report, result_index: int, width: int = 44, height: int = 18):
    """A trained model's decision boundary in the terminal: the plane coloured by the class the
    model predicts (trial 0), the training points on top in their own class's colours."""
    import numpy as np
    from rich.text import Text

    from .activations import get_activation
    from .train import CLASSES, Network, predict

    result = report.results[result_index]
    data = report.data[0]
    classes = CLASSES[report.settings.dataset]
    X = np.vstack([data.X_train, data.X_test])
    (x0, y0), (x1, y1) = X.min(axis=0), X.max(axis=0)
    pad_x, pad_y = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    xs = np.linspace(x0 - pad_x, x1 + pad_x, width)
    ys = np.linspace(y1 + pad_y, y0 - pad_y, height)  # top row first
    grid = np.array([(x, y) for y in ys for x in xs]).T[None]  # (1, 2, width*height)
    model = result.models[0]
    net = Network([W.T[None] for W, _ in model], [b[None, :, None] for _, b in model],
                  get_activation(report.settings.act))  # fmt: skip
    with np.errstate(all="ignore"):
        cells = predict(net.forward(grid)[0], classes)[0].reshape(height, width)
    points = {}
    for (px, py), label in zip(data.X_train, data.y_train, strict=True):
        col = round(float((px - xs[0]) / (xs[-1] - xs[0]) * (width - 1)))
        row = round(float((ys[0] - py) / (ys[0] - ys[-1]) * (height - 1)))
        points[(row, col)] = int(label)
    lines = []
    for row in range(height):
        line = Text()
        for col in range(width):
            region = int(cells[row, col]) % len(CLASS_STYLES)
            background = CLASS_STYLES[region][0]
            if (row, col) in points:  # the point's class colour on the predicted class's ground
                label = points[row, col] % len(CLASS_STYLES)
                colour = CLASS_STYLES[label][1].split(" on ")[0]
                line.append(POINT_MARKS[label], style=f"{colour} on {background.split(' on ')[1]}")
            else:
                line.append(REGION_MARKS[region], style=background)
        lines.append(line)
    return lines


def train_table(report, boundaries: bool = False):
    """One row per initializer (losses, accuracies, a loss curve on a log scale, the verdict in
    words); with *boundaries*, each model's decision boundary under it."""
    return Adaptive(lambda width, colour: _train_parts(report, boundaries, width))


TRAIN_HEADERS = ["init", "initial loss", "final loss", "train acc", "test acc", "loss curve (log)", "verdict"]


def _train_parts(report, boundaries: bool, width: int | None) -> list:
    from rich.console import Group
    from rich.text import Text

    from .tables import Cells, fitted

    rows = _train_rows(report)
    styles = [_verdict_style(result.verdict) for result in report.results]
    curves = [_curve_text(curve, style.replace("bold ", "")) for curve, style in zip(_curves(report), styles,
              strict=True)]  # fmt: skip
    priorities = {"initial loss": 2, "train acc": 1, "loss curve (log)": 3}
    columns = []
    for j, header in enumerate(TRAIN_HEADERS):
        if header == "loss curve (log)":
            cells = curves
        else:
            k = j if j < 5 else 5
            cells = [
                Text(row[k], style=style if header == "verdict" else "")
                for row, style in zip(rows, styles, strict=True)
            ]
        justify = "left" if header in ("init", "loss curve (log)", "verdict") else "right"
        columns.append(Cells(header, cells, justify, priorities.get(header, 0), wrap=header == "verdict"))
    table_parts, hidden = fitted(None, columns, width)
    legend = (f"  loss curve: the mean loss at {CURVE_CELLS} points from step 0 to {report.settings.iters}, "
              "on a log scale from its own lowest (▁) to highest (█) value")  # fmt: skip
    parts = [Text(train_title(report)), *table_parts, Text(legend, style="dim")]
    if hidden:
        names = ", ".join(str(c.header) for c in hidden)
        parts.append(
            Text(f"  hidden to fit the terminal: {names} (widen it, or use --format json)", style="dim")
        )
    if report.settings.trials > 1:
        parts.append(
            Text(f"  means ± sd over {report.settings.trials} trials (data and init seeds)", style="dim")
        )
    if boundaries:
        from rich import box
        from rich.columns import Columns
        from rich.panel import Panel

        plots = [
            Panel(Group(*decision_boundary(report, i)), box=box.SQUARE, expand=False, padding=0,
                  title=Text(f"{r.label}: {_mean_sd(r.test_accuracy[:1], True)} test"), title_align="left")
            for i, r in enumerate(report.results)
        ]  # fmt: skip
        parts += [Text("  decision boundaries (trial 0): points o x + by class, the plane ' ' · : by the "
                       "class predicted there", style="dim"), Columns(plots, padding=(0, 1))]  # fmt: skip
    return parts


def train_markdown(report) -> str:
    curves = _curves(report)
    rows = [
        [*row[:5], _curve_text(c, "").plain, row[5]]
        for row, c in zip(_train_rows(report), curves, strict=True)
    ]
    headers = ["init", "initial loss", "final loss", "train acc", "test acc", "loss curve (log)", "verdict"]
    lines = [f"**initdiag {train_title(report)}**", "", *markdown_table(headers, {"init", "verdict"}, rows)]
    return "\n".join(lines) + "\n"


def train_csv(report) -> str:
    rows = [r.to_dict() for r in report.results]
    header = list(dict.fromkeys(key for row in rows for key in row))
    return csv_text(header, rows)


def train_text(report, fmt_name: str) -> str:
    renderers = {"json": lambda r: json_text(r.to_dict()), "csv": train_csv, "markdown": train_markdown}
    return renderers[fmt_name](report)


# --- initdiag inits / explain -------------------------------------------------------------------------

# why a gain that keeps E[z^2] (1/sqrt(E[phi(z)^2]), z ~ N(0, 1)) differs from PyTorch's table
GAIN_WHY = {
    "linear": "agrees: E[z^2] = 1",
    "relu": "agrees exactly: E[relu(z)^2] = 1/2",
    "leaky_relu": "agrees exactly: E[phi(z)^2] = (1 + slope^2)/2",
    "sigmoid": "PyTorch's 1 is a convention; sigmoid's outputs have mean 1/2, E[sigmoid(z)^2] = 0.293",
    "tanh": "PyTorch's 5/3 is a heuristic for keeping tanh out of its linear regime, not E[tanh(z)^2]",
    "selu": "PyTorch's 3/4 is empirical (PR #50664) for stable gradients; selu self-normalizes at 1",
    "elu": "no PyTorch entry",
    "gelu": "no PyTorch entry",
    "silu": "no PyTorch entry",
    "softplus": "no PyTorch entry",
}
GAIN_COMPARISON_HEADERS = ["activation", "PyTorch calculate_gain", "gain=auto (keeps E[z^2])", "why"]


def gain_comparison_rows() -> list[list[str]]:
    """Every activation: PyTorch's gain (or -), the second-moment gain initdiag's ``gain=auto`` falls
    back to where PyTorch has none, and why they differ."""
    from .activations import get_activation, second_moment_gain

    rows = []
    for name, why in GAIN_WHY.items():
        act = get_activation(name)
        torch_gain = act.torch_gain
        rows.append(
            [name, "–" if torch_gain is None else f"{torch_gain:.4g}", f"{second_moment_gain(act):.4g}", why]
        )
    return rows


def inits_table():
    """The reference card: every initializer in a row, then the gain tables (a block per row in a
    terminal too narrow for them)."""
    return Adaptive(lambda width, colour: _inits_parts(width))


def _inits_parts(width: int | None) -> list:
    from rich.text import Text

    from .reference import CARD_HEADERS, card_rows
    from .tables import Cells, fitted

    rows = card_rows()
    card = [Cells(header, [Text(row[j], style="bold" if j == 0 else "") for row in rows], "left",
                  wrap=header not in ("name",)) for j, header in enumerate(CARD_HEADERS)]  # fmt: skip
    gain_rows = gain_comparison_rows()
    gains = [Cells(header, [Text(row[j]) for row in gain_rows], "right" if "gain" in header else "left",
                   wrap=header in ("why", GAIN_COMPARISON_HEADERS[1], GAIN_COMPARISON_HEADERS[2]))
             for j, header in enumerate(GAIN_COMPARISON_HEADERS)]  # fmt: skip
    heading = "gains: gain=G replaces a preset's, gain=auto uses PyTorch's where it has one"
    heading_names = "initializers (initdiag explain NAME for one in full; PyTorch, Keras and JAX names too)"
    card_parts, _ = fitted(None, card, width)
    gain_parts, _ = fitted(None, gains, width)
    return [
        Text(heading_names, style="bold"),
        *card_parts,
        Text(""),
        Text(heading, style="bold"),
        *gain_parts,
    ]


# CSV cells hold text: names joined by "; ", traps (sentences with ";" of their own) by " | "
CSV_NAMES_SEP, CSV_TRAPS_SEP = "; ", " | "


def _card_csv_row(data: dict) -> dict:
    """An explain/inits dict with every cell plain text: no Python tuple or list reprs."""
    from .reference import variance_text

    row = dict(data)
    row["aliases"] = CSV_NAMES_SEP.join(row["aliases"])
    if "traps" in row:
        row["traps"] = CSV_TRAPS_SEP.join(row["traps"])
    if "variance_factor" in row:
        factor = row["variance_factor"]
        row["variance_factor"] = "" if factor is None else variance_text(*factor)
    return row


def inits_text(fmt_name: str) -> str:
    from .reference import CARD_HEADERS, ENTRIES, card_rows

    if fmt_name == "json":
        return json_text({"initializers": [e._asdict() for e in ENTRIES.values()],
                          "gains": [dict(zip(GAIN_COMPARISON_HEADERS, r, strict=True))
                                    for r in gain_comparison_rows()]})  # fmt: skip
    if fmt_name == "csv":
        rows = [dict(zip(CARD_HEADERS, r, strict=True)) for r in card_rows()]
        for row, entry in zip(rows, ENTRIES.values(), strict=True):
            row["aliases"] = CSV_NAMES_SEP.join(entry.aliases)
        return csv_text(CARD_HEADERS, rows)
    gains = markdown_table(GAIN_COMPARISON_HEADERS, {"activation", "why"}, gain_comparison_rows())
    lines = [
        "**initdiag inits**",
        "",
        *markdown_table(CARD_HEADERS, set(CARD_HEADERS), card_rows()),
        "",
        *gains,
    ]
    return "\n".join(lines) + "\n"


def explain_text(name: str, fmt_name: str) -> str:
    """One initializer's page; asked by a framework's name (``tf.keras.initializers.HeNormal``), every
    format also says what that name resolves to and means (JSON/CSV: ``input``, ``framework``,
    ``resolves_to``, ``note``)."""
    from . import reference

    if fmt_name == "json":
        return json_text(reference.explain_data(name))
    if fmt_name == "markdown":
        return reference.explain_markdown(name)
    if fmt_name == "csv":
        data = reference.explain_data(name)
        return csv_text(list(data), [_card_csv_row(data)])
    return reference.explain_text(name)


__all__ = ["CHECK_FORMATS", "FORMATS", "STAT_KEYS", "check_table", "check_text", "github_annotations",
           "probe_table", "render_text", "to_csv", "to_json", "to_markdown"]  # fmt: skip
