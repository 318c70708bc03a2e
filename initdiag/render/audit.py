"""initdiag audit's report: one row per tensor (its rule, how well it fits, its flags), then the
verdict, the rules counted, and every reason in full; or JSON, CSV, markdown."""

from __future__ import annotations

from ..analysis.audit import AuditResult, TensorAudit, matched, plural
from ..analysis.result import format_number as fmt
from .common import FLAG_STYLES, NOT_APPLICABLE, VERDICT_MARKS, VERDICT_STYLES, Adaptive, csv_text, json_text
from .common import markdown_table as md_table

AUDIT_STYLES = {
    **FLAG_STYLES,
    "constant": "bold yellow",
    "logits": "bold yellow",
    "norm": "bold yellow",
    "sibling": "bold magenta",
    "block": "bold magenta",
    "spectrum": "bold cyan",
}
HEADERS = ["tensor", "shape", "fan_in", "fan_out", "mean", "std", "kurt", "rule", "fit", "σ/edge", "flags"]
_LEFT = {"tensor", "rule", "flags"}
_PRIORITY = {"fan_out": 6, "kurt": 5, "mean": 4, "fan_in": 3, "σ/edge": 3, "fit": 2, "shape": 2}


def _shape(t: TensorAudit) -> str:
    return "×".join(str(d) for d in t.shape) or "scalar"


def rule_text(t: TensorAudit) -> str:
    """The rule; ``~name?`` when it is only the nearest (no rule fits)."""
    if t.rule is None:
        return NOT_APPLICABLE
    return t.rule if matched(t) else f"~{t.rule}?"


def fit_text(t: TensorAudit) -> str:
    if t.fit is None:
        return NOT_APPLICABLE
    if t.fit >= 0.995:
        return "100%"
    return f"{100 * t.fit:.2g}%" if t.fit >= 1e-3 else "<0.1%"


def _row(t: TensorAudit) -> list[str]:
    def opt(x):
        return NOT_APPLICABLE if x is None else fmt(x)

    def count(n):
        return NOT_APPLICABLE if n is None else str(n)

    return [t.name, _shape(t), count(t.fan_in), count(t.fan_out), fmt(t.mean), fmt(t.std), opt(t.kurtosis),
            rule_text(t), fit_text(t), opt(t.spectrum_ratio), " ".join(t.flags)]  # fmt: skip


def verdict_text(result: AuditResult) -> str:
    sm = result.summary
    count = len(result.tensors)
    rules = ", ".join(f"{n} {rule}" for rule, n in list(sm.rules.items())[:6])
    more = f", {len(sm.rules) - 6} more rules" if len(sm.rules) > 6 else ""
    flags = f" · flags: {' '.join(sm.flags)}" if sm.flags else ""
    return f"{VERDICT_MARKS[sm.verdict]} {sm.verdict}: {plural(count, 'tensor')} ({rules}{more}){flags}"


def audit_table(result: AuditResult):
    """The rich renderable: the table (hiding the least important columns to fit, or a block per
    tensor), the verdict line, the reasons and notes."""
    return Adaptive(lambda width, colour: _parts(result, width))


def _parts(result: AuditResult, width: int | None) -> list:
    from rich.text import Text

    from .tables import Cells, fitted

    rows = [_row(t) for t in result.tensors]
    columns = []
    for j, header in enumerate(HEADERS):
        cells = []
        for t, row in zip(result.tensors, rows, strict=True):
            cell = Text(row[j])
            if header == "flags":
                cell = Text()
                for k, flag in enumerate(t.flags):
                    cell.append((" " if k else "") + flag, style=AUDIT_STYLES[flag])
            elif header == "rule" and t.rule is not None and not matched(t):
                cell.stylize("dim")
            elif header == "σ/edge" and "spectrum" in t.flags:
                cell.stylize(AUDIT_STYLES["spectrum"])
            cells.append(cell)
        wrap = header == "flags"  # flags wrap between words; a tensor's name is a value: never cut
        columns.append(Cells(header, cells, "left" if header in _LEFT else "right", _PRIORITY.get(header, 0),
                             wrap=wrap))  # fmt: skip
    title = f"initdiag audit · {result.source} · {result.layout} layout"
    parts, hidden = fitted(title, columns, width)
    sm = result.summary
    parts.append(Text(verdict_text(result), style=VERDICT_STYLES[sm.verdict]))
    parts += [Text(f"  · {reason}") for reason in sm.reasons]
    parts += [Text(f"  {note}", style="dim") for note in sm.notes]
    parts.append(Text(f"  {LEGEND}", style="dim"))
    if hidden:
        names = ", ".join(c.header for c in hidden)
        parts.append(
            Text(f"  hidden to fit the terminal: {names} (widen it, or use --format json)", style="dim")
        )
    return parts


LEGEND = (
    "rule: initdiag's name for the init that fits (--init NAME draws it); ~rule? only the nearest. "
    "fit: the chance a draw of that rule looks this far off in std, shape and mean. "
    "σ/edge: the largest singular value over the Marchenko–Pastur edge (a random init stays below ~1)"
)


def audit_markdown(result: AuditResult) -> str:
    rows = [_row(t) for t in result.tensors]
    lines = [f"**initdiag audit** · `{result.source}`", "", *md_table(HEADERS, _LEFT, rows)]
    lines += ["", f"**{verdict_text(result)}**"]
    lines += [f"- {reason}" for reason in result.summary.reasons]
    lines += [f"- {note}" for note in result.summary.notes]
    return "\n".join(lines) + "\n"


def audit_csv(result: AuditResult) -> str:
    header = ["name", "shape", "role", "fan_in", "fan_out", "mean", "std", "kurtosis", "rule", "fit",
              "matched", "spectrum_ratio", "tied", "logit_std", "flags"]  # fmt: skip
    rows = [
        {
            **t.to_dict(),
            "shape": "x".join(map(str, t.shape)),
            "matched": matched(t),
            "flags": " ".join(t.flags),
        }
        for t in result.tensors
    ]
    return csv_text(header, rows)


def audit_text(result: AuditResult, fmt_name: str) -> str:
    if fmt_name == "json":
        return json_text(result.to_dict())
    if fmt_name == "csv":
        return audit_csv(result)
    return audit_markdown(result)
