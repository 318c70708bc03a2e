"""initdiag check's report: a table (or a block per spec), markdown, CSV, JUnit XML and GitHub annotations."""

from __future__ import annotations

from ..analysis.result import format_number as fmt
from .common import FORMATS, VERDICT_STYLES, Adaptive, csv_text, json_text, markdown_table
from .probe import verdict_line

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


def skipped_note(report) -> str | None:
    """One line naming the initdiag results and coordcheck specs a directory or glob held, which
    check skipped."""
    notes = []
    if report.skipped:
        what = "initdiag results (JSON output), not specs" if len(report.skipped) > 1 else (
            "an initdiag result (JSON output), not a spec")  # fmt: skip
        notes.append(f"skipped {', '.join(report.skipped)}: {what}; a baseline is passed as --baseline")
    coords = getattr(report, "coord_specs", [])
    if coords:
        what = "coordcheck specs" if len(coords) > 1 else "a coordcheck spec"
        notes.append(f"skipped {', '.join(coords)}: {what}; run with initdiag coordcheck -c FILE")
    return "; ".join(notes) or None


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
    note = skipped_note(report)
    if note:
        parts.append(Text(f"  {note}", style="dim"))
    return parts


def check_markdown(report) -> str:
    rows = [_check_row(outcome) for outcome in report.outcomes]
    lines = ["**initdiag check**", "", *markdown_table(CHECK_HEADERS, set(CHECK_HEADERS) - {"result"}, rows)]
    lines += ["", f"**{_check_summary(report)}**"]
    lines += [f"- {line.strip()}" for _, line in _check_details(report)]
    note = skipped_note(report)
    if note:
        lines += ["", note[0].upper() + note[1:] + "."]
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
