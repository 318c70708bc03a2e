"""initdiag train: losses, accuracies, loss curves and verdicts per initializer, and decision
boundaries drawn in the terminal."""

from __future__ import annotations

import math

from ..analysis.result import format_number as fmt
from .common import FLAG_STYLES, SPARKS, Adaptive, csv_text, json_text, markdown_table, spark

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
        c = spark(v, lo, hi, flat=3)
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

    from ..analysis.batched import Network, predict
    from ..analysis.train import CLASSES
    from ..core.activations import get_activation

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
    legend = (
        f"  loss curve: the mean loss at {CURVE_CELLS} points from step 0 to {report.settings.iters}, "
        f"on a log scale from its own lowest ({SPARKS[0]}) to highest ({SPARKS[-1]}) value"
    )
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
