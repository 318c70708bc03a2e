"""The probe's table (one row per layer, columns hidden by importance to fit, or a block per layer),
its markdown, JSON and CSV."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

from ..analysis.result import FLAGS, LayerStats, ProbeResult, judged_kinds
from ..analysis.result import format_number as fmt
from .blocks import blocks_markdown, blocks_table, stream_legend
from .common import (
    FLAG_STYLES,
    NOT_APPLICABLE,
    NOTE_STYLE,
    OFF_THEORY_STYLE,
    VERDICT_MARKS,
    VERDICT_STYLES,
    WARN_STYLE,
    csv_text,
    fmt_percent,
    gain_style,
    indented,
    json_text,
    layer_name,
    layer_shape,
    markdown_table,
    num,
    std_of,
)


def to_json(result: ProbeResult) -> str:
    """The contract's JSON for one probe."""
    return json_text(result.to_dict())


def to_csv(result: ProbeResult) -> str:
    """One row per layer with the JSON keys as header; flags joined by ';'."""
    rows = [layer.to_dict() for layer in result.layers]
    return csv_text(list(rows[0]), rows)


class Column(NamedTuple):
    header: str
    text: Callable[[LayerStats], str]
    # which flags colour this cell (the cell signals that problem)
    signals: tuple[str, ...] = ()
    justify: str = "right"
    priority: int = 0  # in a narrow terminal the highest numbers are hidden first; 0 never


def _outside(gain: float, limit: float) -> bool:
    return not math.isnan(gain) and not (1 / limit <= gain <= limit)


def flags_text(layer: LayerStats, result: ProbeResult):
    """The flags cell: each flag in its colour, vanishing / exploding with what raised them."""
    from rich.text import Text

    sources, trials = layer.flag_sources, result.settings.trials
    out = Text()
    for k, flag in enumerate(layer.flags):
        if k:
            out.append(" ")
        why = list(sources.get(flag, ()))
        if flag in layer.flag_trials:  # raised in some trials only: how many of them
            why.append(f"{len(layer.flag_trials[flag])}/{trials}")
        out.append(flag + (f"({','.join(why)})" if why else ""), style=FLAG_STYLES[flag])
    return out


def gain_cell(layer: LayerStats, result: ProbeResult, backward: bool):
    """A gain, coloured by its band (dim where it is not judged), with its spread over trials."""
    from rich.text import Text

    key = "backward_gain" if backward else "forward_gain"
    gain = getattr(layer, key)
    if backward and layer.grad_input_var is None:  # no gradient to have a gain (token ids)
        return Text(NOT_APPLICABLE, style="dim")
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
    style = gain_style(gain, limit)
    return Text(text, style="" if style == "green" else style)


def _cell_style(column: Column, layer: LayerStats, text: str, result: ProbeResult) -> str | None:
    if column.header in ("z th", "∂x th"):
        return _theory_style(column, layer)
    if text in ("nan", "inf", "-inf"):
        return FLAG_STYLES["nonfinite"]
    if column.header == "dead%" and not layer.dead_judged:
        return "dim"
    sources = layer.flag_sources
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
    Column("layer", layer_name, justify="left"),
    Column("shape", layer_shape, priority=3),
    Column("act", lambda s: s.act or "", justify="left", priority=4),
    Column("W rms", lambda s: num(s.weight_rms), priority=6),
    Column("z mean", lambda s: fmt(s.preact_mean), priority=7),
    Column("z std", lambda s: fmt(std_of(s.preact_var)), ("vanishing", "exploding"), priority=1),
    Column("a mean", lambda s: fmt(s.act_mean), priority=7),
    Column("a std", lambda s: fmt(std_of(s.act_var)), ("vanishing", "exploding"), priority=3),
    # None: the input has no gradient (token ids into an embedding)
    Column("∂x std", lambda s: num(std_of(s.grad_input_var)), ("vanishing", "exploding"), priority=1),
    Column("∂W rms", lambda s: num(s.grad_weight_rms), priority=6),
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
    "z std": Column("z th", lambda s: num(std_of(s.theory_preact_var)), priority=5),
    "∂x std": Column("∂x th", lambda s: num(std_of(s.theory_grad_input_var)), priority=5),
}


THEORY_TOLERANCE = 0.1  # a prediction further than this from the measured std is underlined


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
    return OFF_THEORY_STYLE if abs(math.sqrt(measured / predicted) - 1) > THEORY_TOLERANCE else "dim"


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
    beyond the ends, ``«`` / ``»`` for both there. Cells inside [1/limit, limit] are ``─``, outside
    ``·``, gain 1 ``┼``. The role is ``fwd``, ``bwd``, ``both`` or ``track``."""
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
            ends = marks[pos][0] in "◀▶◁▷" or beyond
            marks[pos] = (("«" if pos == 0 else "»") if ends else "◉", "both")
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


def _track_text(layer: LayerStats, result: ProbeResult):
    from rich.text import Text

    t = result.settings.thresholds
    styles = {
        "fwd": gain_style(layer.forward_gain, t.max_forward_gain) if layer.gain_judged[0] else "dim",
        "bwd": gain_style(layer.backward_gain, t.max_backward_gain) if layer.gain_judged[1] else "dim",
    }
    styles["both"] = styles["fwd"] if styles["fwd"] != "green" else styles["bwd"]
    out = Text()
    for ch, role in gain_track(layer.forward_gain, layer.backward_gain, t.max_forward_gain):
        out.append(ch, style="dim" if role == "track" else styles[role])
    return out


def stack_text(result: ProbeResult) -> str:
    """One form for every stack: ``input → ... → output (N layers)``, the widths of a dense chain
    between (in a chain of more than 8, a run of more than two folded: ``256 ×30``), else the input
    and output shapes."""
    s, n = result.spec, len(result.layers)
    shape = "×".join
    if hasattr(s, "model"):  # a PyTorch model, and its outputs when it returns more than one
        outs = getattr(s, "outputs", ())
        out = shape(map(str, result.layers[-1].output_shape))
        if len(outs) == 1:
            out = shape(map(str, outs[0][1])) or "1"
        elif outs:
            out = ", ".join(f"{name} {shape(map(str, dims)) or '1'}" for name, dims in outs)
        return f"{s.model} · {s.input_shape} → {out} ({n} module{'s' if n != 1 else ''})"
    if s.is_dense_chain:
        parts = [str(s.widths[0])]
        for width, run in itertools.groupby(s.widths[1:]):
            count = len(list(run))
            fold = count > 2 and len(s.widths) > 8  # a short chain reads best whole
            parts += [f"{width} ×{count}"] if fold else [str(width)] * count
    else:
        start = s.input_text if s.takes_tokens else shape(map(str, s.input_shape))  # seq=64,vocab=1000
        parts = [start, shape(map(str, result.layers[-1].output_shape))]
    return f"{' → '.join(parts)} ({n} layer{'s' if n != 1 else ''})"


def title(result: ProbeResult) -> str:
    s, settings = result.spec, result.settings
    arrow = stack_text(result)
    inits = sorted({x.init for x in result.layers if x.init is not None and x.kind != "residual"})
    if not inits and hasattr(s, "model"):
        inits = [f"init {s.init}"]
    hidden = [x.act for x in result.layers[:-1] if x.act is not None]
    acts = (sorted(set(hidden) - {"linear"}) or ["linear"]) if hidden else []
    out = result.layers[-1].act
    if out not in (None, "linear") or not hidden:
        acts.append(f"out {out or 'linear'}")
    trials = f"{settings.trials} trials" if settings.trials > 1 else ""
    fields = [s.name, arrow, ", ".join(acts), ", ".join(inits), f"batch {settings.batch}",
              f"seed {settings.seed}", trials, settings.dtype]  # fmt: skip
    return " · ".join(field for field in fields if field)


def theory_line(result: ProbeResult, hidden: list | None = None) -> str:
    """The mean-field summary in words, or why it does not apply; says so when the terminal hid the
    th columns it goes with."""
    theory = result.summary.theory
    if "reason" in theory:
        return f"theory (th columns): not shown; {theory['reason']}"
    gone = {str(c.header) for c in hidden or ()} >= {"z th", "∂x th"}
    where = "mean field; its th columns are hidden to fit the terminal" if gone else "th columns, mean field"
    return f"theory ({where}): {theory['words']}"


def jacobian_line(result: ProbeResult) -> str:
    from ..analysis.jacobian import words

    jac = result.summary.jacobian
    return f"jacobian: not computed; {jac['reason']}" if "reason" in jac else words(jac)


def verdict_line(result: ProbeResult) -> str:
    sm = result.summary
    since = f" (from {sm.forward_gain_from})" if sm.forward_gain_from else ""
    at = f" (at {sm.backward_gain_at})" if sm.backward_gain_at not in (None, result.layers[0].name) else ""
    trials = sm.trial_verdicts or []
    how_many = ""
    if len(set(trials)) > 1:  # each trial is judged: the verdict is the worst one's
        how_many = f" in {trials.count(sm.verdict)} of {len(trials)} trials"
    return (
        f"{VERDICT_MARKS[sm.verdict]} {sm.verdict}{how_many}: forward gain {fmt(sm.forward_gain)}{since}, "
        f"backward gain {fmt(sm.backward_gain)}{at}, loss {fmt(sm.loss)} ({result.settings.loss})"
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
    out.append(Cells("fwd gain", [gain_cell(x, result, False) for x in layers]))
    out.append(Cells("bwd gain", [gain_cell(x, result, True) for x in layers]))
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
        head = Text(layer_name(layer).strip(), style="bold")
        head.append(f"  {layer_shape(layer)}")
        if layer.act:
            head.append(f"  {layer.act}")
        if layer.flags:
            head.append("  ")
            head.append_text(flags_text(layer, result))
        lines.append(head)
        pairs = []
        for header in ("z std", "z th", "a std", "∂x std", "∂x th", "fwd gain", "bwd gain", "dead%", "sat%",
                       "distinct", "W rms", "∂W rms", "z mean", "a mean"):  # fmt: skip
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
        parts.append(table(title(result), shown, width))
    parts += blocks_table(result, width)  # a transformer's per-block statistics

    sm = result.summary
    parts.append(Text(verdict_line(result), style=VERDICT_STYLES[sm.verdict]))
    for reason in sm.reasons:
        parts.append(Text(f"  · {reason}"))
    for note in sm.notes:
        parts.append(Text(f"  note: {note}", style=NOTE_STYLE))
    if sm.theory:
        parts.append(Text(f"  {theory_line(result, hidden)}", style="dim"))
    if sm.jacobian:
        parts.append(Text(f"  {jacobian_line(result)}", style="dim"))
    parts += [Text(f"  {line}", style="dim") for line in legend_lines(result, hidden, fitted is None)]
    parts += colour_legend(result, every if fitted is None else fitted[0])
    return Group(*indented(parts))


def colour_legend(result: ProbeResult, shown) -> list:
    """One line naming what the colours in the shown cells mean: each flag present in its colour,
    yellow (close to a limit), underlined (theory off its measurement); none without any."""
    from rich.text import Text

    styles = set()
    for column in shown:
        for cell in column.cells:
            if hasattr(cell, "spans"):
                styles |= {str(cell.style)} | {str(span.style) for span in cell.spans}
    parts = [(flag, FLAG_STYLES[flag]) for flag in FLAGS if flag in result.summary.flags]
    if WARN_STYLE in styles:
        parts.append(("yellow: close to a limit (warn)", WARN_STYLE))
    if OFF_THEORY_STYLE in styles:
        parts.append(("underlined th: more than 10% from the measurement", OFF_THEORY_STYLE))
    if not parts:
        return []
    line = Text("  colours: ", style="dim")
    for k, (words, style) in enumerate(parts):
        if k:
            line.append("  ")
        line.append(words, style=style)
    return [line]


def legend_lines(result: ProbeResult, hidden: list, as_list: bool = False) -> list[str]:
    """The words under a probe's table: what its marks mean, what is not judged, what is hidden."""
    lines = []
    kinds = {x.kind for x in result.layers}
    if kinds & {"batchnorm", "layernorm", "rmsnorm"}:
        lines.append("↺ normalization: it erases the scale before it, so forward gains restart at its output "
                     "and the rows whose scale it erases are not judged forward (dim); backward gains need "
                     "no restart (its backward pass divides by the same std)")  # fmt: skip
    if "residual" in kinds:
        lines.append("Σ residual sum: shortcut + scale × branch (the rows above it, indented)")
    judged = judged_kinds(not hasattr(result.spec, "model"))
    lines += stream_legend(result)
    unjudged = sorted(kinds - set(judged) - {"batchnorm", "layernorm", "rmsnorm", "stream_add"})
    if unjudged:
        lines.append(
            f"dim gains ({', '.join(unjudged)}): not judged; the next weighted layer shows their effect"
        )
    first = result.layers[0]
    t = result.settings.thresholds
    if first.kind in judged and _outside(first.backward_gain, t.max_backward_gain):
        lines.append(
            f"layer {first.name}'s backward gain ({fmt(first.backward_gain)}) is the gradient of the input "
            "data, which trains nothing, so it is not judged (He et al. 2015, sec. 2.2); the summary's is "
            "read where the gradient first reaches weights"
        )
    if any(x.flag_sources for x in result.layers):
        lines.append(
            "(fwd)/(bwd): the forward/backward gain left [1/T, T] (fwd at a row that takes the data: or "
            "its gain from the data left [1/T², T²]); no-signal: z = 0 everywhere; no-grad: no gradient "
            "reaches the layer's weights"
        )
    if any(x.flag_trials for x in result.layers):
        lines.append(
            f"(k/{result.settings.trials}): the flag was raised in k of the {result.settings.trials} trials, "
            "each judged on its own numbers (the table shows their means)"
        )
    if not as_list and not any(str(c.header) == "gain (log)" for c in hidden):
        lines.append(
            "gain (log): ● forward, ○ backward, ◉ both, from 1e-3 to 1e3 (◀ ◁ « below it, ▶ ▷ » above)"
        )
    if hidden:
        names = ", ".join(str(c.header) for c in hidden)
        lines.append(f"hidden to fit the terminal: {names} (widen it, or use --format json)")
    if as_list:
        lines.append("one block per layer: the terminal is too narrow for the table (or use --format json)")
    if result.settings.trials > 1:
        lines.append(f"means over {result.settings.trials} trials; JSON has each spread as <key>_sd")
    return lines


def to_markdown(result: ProbeResult) -> str:
    columns = columns_for(result)
    headers = [c.header for c in columns] + ["fwd gain", "bwd gain", "flags"]
    left = {c.header for c in columns if c.justify == "left"} | {"flags"}
    rows = [
        [c.text(layer) for c in columns]
        + [
            gain_cell(layer, result, False).plain,
            gain_cell(layer, result, True).plain,
            flags_text(layer, result).plain.replace(" ", ", "),
        ]
        for layer in result.layers
    ]
    lines = [f"**initdiag probe** · {title(result)}", "", *markdown_table(headers, left, rows)]
    lines += blocks_markdown(result)
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
