"""initdiag coordcheck: per parametrization, the slopes of each layer's l1 against width at every
step (coloured by verdict), the verdict, and one small log-log panel per step drawn in the terminal
(width across, l1 up, one mark per layer, as mup's ``plot_coord_data`` draws it); JSON, CSV,
markdown, and ``--save-plot`` with matplotlib."""

from __future__ import annotations

import itertools
import math

from ..analysis.result import format_number as fmt
from .common import FLAG_STYLES, VERDICT_MARKS, VERDICT_STYLES, Adaptive, csv_text, json_text, markdown_table

CELL_STYLES = {
    "stable": "green",
    "grows": FLAG_STYLES["exploding"],
    "shrinks": FLAG_STYLES["vanishing"],
    "zero": "dim",
    "nonfinite": FLAG_STYLES["nonfinite"],
    "fixed": "dim",
}
MARKS = "123456789abcdefghijklmnopqrstuvwxyz"
MARK_STYLES = (
    "bold cyan",
    "bold magenta",
    "bold yellow",
    "bold green",
    "bold blue",
    "bold red",
    "bold white",
)
PANEL_HEIGHT = 9
PANEL_STEP = 3  # columns between two widths in a panel
PANEL_MIN_WIDTH = 11  # room for its title and the spaces around it, "─ step 10 ─"


def title(report) -> str:
    s = report.settings
    widths = ", ".join(f"{w:,}" for w in report.widths)
    data = "random labels" if s.data == "random" else s.data
    seeds = f"{s.seeds} seed{'s' if s.seeds > 1 else ''}"
    steps = f"{s.steps} step{'s' if s.steps != 1 else ''}"
    return (
        f"coordcheck · {report.stack} · W = {widths} (base {report.base_width:,}) · {s.act} · {s.init} · "
        f"{s.optimizer} lr {fmt(s.lr)} · {steps} · {seeds} · batch {s.batch} · {s.loss}, {data} · "
        f"seed {s.seed} · {s.dtype}"
    )


def slope_text(layer, t: int, arrows: bool = True) -> str:
    """``+0.65±0.01 ▲``: the slope ± its standard error, and an arrow for grows or shrinks (the
    cell's colour in text; *arrows* False where the verdict is written beside it)."""
    verdict = layer.verdicts[t]
    if verdict == "zero":
        return "0"
    slope, se = layer.slope[t], layer.slope_se[t]
    if not math.isfinite(slope):
        return "nan"
    text = f"{slope:+.2f}" + (f"±{se:.2f}" if math.isfinite(se) and se > 0 else "")
    return text + (VERDICT_ARROWS.get(verdict, "") if arrows else "")


# what a cell's colour says, in text too (a pipe, a terminal without colour)
VERDICT_ARROWS = {"grows": " ▲", "shrinks": " ▼"}


def verdict_line(result, tolerance: float) -> str:
    if result.verdict == "ok":
        return (
            f"{VERDICT_MARKS['ok']} ok: every layer whose width scales is stable at every step "
            f"(|slope| <= {fmt(tolerance)} + 2 se)"
        )
    return f"{VERDICT_MARKS['fail']} {', '.join(result.flags)}: " + "; ".join(result.reasons)


def coordcheck_table(report):
    """Every parametrization: its heading, the slope table, the verdict, notes, the panels."""
    return Adaptive(lambda width, colour: _parts(report, width))


def _parts(report, width: int | None) -> list:
    from rich.text import Text

    from .tables import Cells, chunks, table

    steps = report.settings.steps
    parts: list = [Text(title(report))]
    for result in report.results:
        parts += [
            Text(""),
            Text(f"{result.label}: slope of log2 l1 against log2 width, per step (0 = init)", style="bold"),
        ]
        fixed = [
            Cells("layer", [Text(x.name) for x in result.layers], "left"),
            Cells("shape", [Text(x.shape) for x in result.layers], "left"),
            Cells("role", [Text(x.role) for x in result.layers], "left"),
        ]
        groups = [
            [
                Cells(
                    f"step {t}",
                    [Text(slope_text(x, t), style=CELL_STYLES[x.verdicts[t]]) for x in result.layers],
                )
            ]
            for t in range(steps + 1)
        ]
        for columns in chunks(fixed, groups, width):
            parts.append(table(None, columns, width))
        parts.append(
            Text(
                verdict_line(result, report.settings.tolerance),
                style=VERDICT_STYLES["ok" if result.verdict == "ok" else "fail"],
            )
        )
        parts += [Text(f"  note: {note}", style="italic") for note in result.notes]
        parts += panels(report, result)
    parts += _legend(report)
    return parts


def _legend(report) -> list:
    from rich.text import Text

    s = report.settings
    lines = [
        f"  slope: least squares of log2 l1 (l1 = mean |x| of the layer's output) against log2 width, "
        f"the mean over {s.seeds} seed{'s' if s.seeds > 1 else ''} ± its standard error; stable when "
        f"|slope| <= {fmt(s.tolerance)} + 2 se, else grows or shrinks; 0: the output is 0 at every width",
        "  panels: per step, log2 l1 (up) against log2 width (across), one mark per layer (the digits "
        "above; where two meet, the lower number shows); a flat line is width-stable",
        "  ▲ grows, ▼ shrinks (red, blue); the other cells are stable (green), or fixed: no width of the "
        "layer scales",
    ]
    return [Text(line, style="dim") for line in lines]


def panels(report, result) -> list:
    """One small log-log panel per step, side by side (wrapping), on one l1 scale for all."""
    from rich import box
    from rich.columns import Columns
    from rich.panel import Panel
    from rich.text import Text

    layers = [x for x in result.layers if x.judged]
    means = [[_mean_curve(x, t) for t in range(x.l1.shape[2])] for x in layers]
    logs = [math.log2(v) for curves in means for curve in curves for v in curve if v > 0 and math.isfinite(v)]
    if not logs:
        return []
    lo, hi = min(logs), max(logs)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    boxes = []
    for t in range(layers[0].l1.shape[2]):
        grid = _draw([curves[t] for curves in means], lo, hi, len(report.widths))
        boxes.append(
            Panel(
                Text("\n").join(grid),
                box=box.SQUARE,
                expand=False,
                padding=0,
                title=f"step {t}",
                title_align="left",
            )
        )
    marks = "  ".join(f"{MARKS[i]} {x.name}" for i, x in enumerate(layers))
    scale = (
        f"  l1 from {fmt(2**lo)} (bottom) to {fmt(2**hi)} (top), widths {report.widths[0]:,} to "
        f"{report.widths[-1]:,} (left to right), log scales; marks: {marks}"
    )
    return [Columns(boxes, padding=(0, 1)), Text(scale, style="dim")]


def _mean_curve(layer, t: int) -> list[float]:
    import numpy as np

    with np.errstate(all="ignore"):
        return [float(v) for v in np.mean(layer.l1[:, :, t], axis=0)]


def _draw(curves: list[list[float]], lo: float, hi: float, n_widths: int):
    """Text lines of one panel: each curve's points at (width, log2 l1), its mark, dots between."""
    from rich.text import Text

    step = max(PANEL_STEP, (PANEL_MIN_WIDTH - 1) // max(n_widths - 1, 1))  # few widths span the panel too
    cols = max((n_widths - 1) * step + 1, PANEL_MIN_WIDTH)
    cells: list[list[tuple[str, str]]] = [[(" ", "")] * cols for _ in range(PANEL_HEIGHT)]

    def row_of(value: float) -> float:
        return (PANEL_HEIGHT - 1) * (1 - (math.log2(value) - lo) / (hi - lo))

    for k, curve in reversed(list(enumerate(curves))):  # the first layer's marks on top
        style = MARK_STYLES[k % len(MARK_STYLES)]
        points = [(w * step, row_of(v)) for w, v in enumerate(curve) if v > 0 and math.isfinite(v)]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            for x in range(x0 + 1, x1):
                y = round(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
                if cells[y][x][0] == " ":
                    cells[y][x] = ("·", style)
        for x, y in points:
            cells[round(y)][x] = (MARKS[k % len(MARKS)], style)
    lines = []
    for row in cells:
        line = Text()
        for char, style in row:
            line.append(char, style=style)
        lines.append(line)
    return lines


def coordcheck_markdown(report) -> str:
    steps = report.settings.steps
    lines = [f"**initdiag {title(report)}**"]
    for result in report.results:
        headers = ["layer", "shape", "role", *(f"step {t}" for t in range(steps + 1))]
        rows = [
            [
                x.name,
                x.shape,
                x.role,
                *(f"{slope_text(x, t, arrows=False)} {x.verdicts[t]}" for t in range(steps + 1)),
            ]
            for x in result.layers
        ]
        lines += [
            "",
            f"**{result.label}**: slope of log2 l1 against log2 width",
            "",
            *markdown_table(headers, {"layer", "shape", "role"}, rows),
            "",
            verdict_line(result, report.settings.tolerance),
        ]
        lines += [f"- note: {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


CSV_HEADER = [
    "param",
    "layer",
    "shape",
    "role",
    "width",
    "step",
    "l1",
    "l1_sd",
    "std",
    "delta",
    "slope",
    "slope_se",
    "delta_slope",
    "verdict",
]


def coordcheck_csv(report) -> str:
    """One row per (parametrization, layer, width, step): the point, and its layer's slope at that step."""
    rows = []
    for result in report.results:
        for layer, data in zip(result.layers, result.to_dict(report.widths)["layers"], strict=True):
            for point in data["points"]:
                t = point["step"]
                rows.append(
                    {
                        "param": result.label,
                        "layer": layer.name,
                        "shape": layer.shape,
                        "role": layer.role,
                        **point,
                        "slope": data["slope"][t],
                        "slope_se": data["slope_se"][t],
                        "delta_slope": data["delta_slope"][t],
                        "verdict": data["verdict"][t],
                    }
                )
    return csv_text(CSV_HEADER, rows)


def coordcheck_text(report, fmt_name: str) -> str:
    renderers = {
        "json": lambda r: json_text(r.to_dict()),
        "csv": coordcheck_csv,
        "markdown": coordcheck_markdown,
    }
    return renderers[fmt_name](report)


def save_plot(report, path: str) -> None:
    """The same figure with matplotlib: a row per parametrization, a column per step, l1 against width
    on log2 axes, one line per layer (mup's ``plot_coord_data``), one y range for all."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    import numpy as np

    steps = report.settings.steps + 1
    rows = len(report.results)
    fig, axes = plt.subplots(rows, steps, figsize=(2.6 * steps, 2.4 * rows), squeeze=False, sharey=True)
    for r, result in enumerate(report.results):
        for t in range(steps):
            ax = axes[r][t]
            for layer in result.layers:
                with np.errstate(all="ignore"):
                    curve = np.mean(layer.l1[:, :, t], axis=0)
                if np.any(curve > 0):
                    ax.plot(
                        report.widths, np.where(curve > 0, curve, np.nan), marker="o", ms=3, label=layer.name
                    )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log", base=2)
            ax.set_title(f"{result.label}  t={t}", fontsize=8)
            ax.tick_params(labelsize=7)
            if r == rows - 1:
                ax.set_xlabel("width", fontsize=8)
        axes[r][0].set_ylabel("l1 = mean |x|", fontsize=8)
    axes[0][0].legend(fontsize=6)
    from .plot import save_figure

    save_figure(fig, path)
