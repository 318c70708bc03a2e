"""initdiag compare: each layer's gains per candidate (split when wide), the candidates best first, and
their depth profiles."""

from __future__ import annotations

from ..analysis.result import ProbeResult
from ..analysis.result import format_number as fmt
from .common import (
    FLAG_STYLES,
    SPARK_RANGE,
    SPARKS,
    VERDICT_STYLES,
    csv_text,
    gain_style,
    indented,
    json_text,
    layer_name,
    markdown_table,
    spark,
)
from .probe import gain_cell, stack_text


def _compare_title(comparison) -> str:
    result, settings = comparison.results[0], comparison.settings
    trials = f" · {settings.trials} trials" if settings.trials > 1 else ""
    name = f"{result.spec.name} · " if result.spec.name else ""
    where = f"{name}{stack_text(result)}"
    return f"compare · {where} · batch {settings.batch} · seed {settings.seed}{trials} · {settings.dtype}"


def _worst_flag(result: ProbeResult) -> str:
    """The flag of the worst finding; for a candidate that only warns, the flag it is near."""
    sm = result.summary
    if not sm.findings:
        return ""
    return sm.findings[0].flag if sm.verdict == "fail" else f"near {sm.findings[0].flag}"


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


def sparkline(gains: list[float], limit: float) -> list[tuple[str, str]]:
    """(character, style) per gain on the fixed scale `SPARK_RANGE` (one decade per height, 1 is
    ▄), coloured by the band it is in; × for a gain that is not a positive number."""
    lo, hi = SPARK_RANGE
    return [(c, FLAG_STYLES["nonfinite"] if c == "×" else gain_style(g, limit))
            for g, c in ((g, spark(g, lo, hi)) for g in gains)]  # fmt: skip


def _profiles(comparison) -> list[list[float]]:
    """Forward gains of the layers each candidate judges forward."""
    return [[x.forward_gain for x in r.layers if x.gain_judged[0]] for r in comparison.results]


def _compare_groups(comparison):
    """Per candidate, its two columns: each layer's forward and backward gain (the probe's)."""
    from rich.text import Text

    from .tables import Cells

    groups = []
    for cand, result in zip(comparison.candidates, comparison.results, strict=True):
        fwd = [gain_cell(x, result, False) for x in result.layers]
        bwd = [gain_cell(x, result, True) for x in result.layers]
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
    names = Cells("layer", [Text(layer_name(x)) for x in results[0].layers], "left")
    parts: list = [Text(_compare_title(comparison))]
    for columns in chunks([names], _compare_groups(comparison), width):
        parts.append(table(None, columns, width))
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
                cell.stylize(VERDICT_STYLES["warn"] if row[j].startswith("near ") else FLAG_STYLES[row[j]])
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
    for cand, result in zip(comparison.candidates, results, strict=True):
        for note in result.summary.notes:
            parts.append(Text(f"  note ({cand.label}): {note}", style="yellow"))
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
    return Group(*indented(parts))


def compare_markdown(comparison) -> str:
    headers = ["layer"]
    for cand in comparison.candidates:
        headers += [f"{cand.label} fwd", f"{cand.label} bwd"]
    rows = []
    for i, layer in enumerate(comparison.results[0].layers):
        row = [layer.name]
        for result in comparison.results:
            row += [
                gain_cell(result.layers[i], result, False).plain,
                gain_cell(result.layers[i], result, True).plain,
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
            rows.append({"candidate": cand.label, "candidate_init": str(result.spec.init),
                         "candidate_act": str(result.spec.act), **layer.to_dict()})  # fmt: skip
    header = list(dict.fromkeys(key for row in rows for key in row))
    return csv_text(header, rows)


def compare_text(comparison, fmt_name: str) -> str:
    renderers = {"json": lambda c: json_text(c.to_dict()), "csv": compare_csv, "markdown": compare_markdown}
    return renderers[fmt_name](comparison)
