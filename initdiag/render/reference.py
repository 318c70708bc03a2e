"""initdiag inits and explain: the reference card and the gain table as a table, JSON, CSV or markdown."""

from __future__ import annotations

from .common import Adaptive, csv_text, json_text, markdown_table

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


GAIN_COMPARISON_HEADERS = ["activation", "PyTorch calculate_gain", "gain keeping E[z^2]", "why"]


def gain_comparison_rows() -> list[list[str]]:
    """Every activation: PyTorch's gain (or -), the second-moment gain initdiag's ``gain=auto`` falls
    back to where PyTorch has none, and why they differ."""
    from ..core.activations import get_activation, second_moment_gain

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

    from ..core.reference import CARD_HEADERS, card_rows
    from .tables import Cells, fitted

    rows = card_rows()
    card = [Cells(header, [Text(row[j], style="bold" if j == 0 else "") for row in rows], "left",
                  wrap=header not in ("name",)) for j, header in enumerate(CARD_HEADERS)]  # fmt: skip
    gain_rows = gain_comparison_rows()
    gains = [Cells(header, [Text(row[j]) for row in gain_rows], "right" if "gain" in header else "left",
                   wrap=header in ("why", GAIN_COMPARISON_HEADERS[1], GAIN_COMPARISON_HEADERS[2]))
             for j, header in enumerate(GAIN_COMPARISON_HEADERS)]  # fmt: skip
    heading = (
        "gains: gain=G replaces a preset's; gain=auto uses PyTorch's calculate_gain where it has an "
        "entry, else the gain that keeps E[z^2] = 1/sqrt(E[phi(z)^2])"
    )
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
    from ..core.reference import variance_text

    row = dict(data)
    row["aliases"] = CSV_NAMES_SEP.join(row["aliases"])
    if "traps" in row:
        row["traps"] = CSV_TRAPS_SEP.join(row["traps"])
    if "variance_factor" in row:
        factor = row["variance_factor"]
        row["variance_factor"] = "" if factor is None else variance_text(*factor)
    return row


def inits_text(fmt_name: str) -> str:
    from ..core.reference import CARD_HEADERS, ENTRIES, card_rows

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
    from ..core import parametrizations, reference

    if parametrizations.resolve_name(name) is not None:  # sp, mup, ntk, mean_field: initdiag coordcheck's
        if fmt_name == "json":
            return json_text(parametrizations.card_data(name))
        if fmt_name == "csv":
            row = parametrizations.card_csv_row(name)
            return csv_text(list(row), [row])
        return (parametrizations.card_markdown if fmt_name == "markdown" else parametrizations.card_text)(
            name
        )
    if fmt_name == "json":
        return json_text(reference.explain_data(name))
    if fmt_name == "markdown":
        return reference.explain_markdown(name)
    if fmt_name == "csv":
        data = reference.explain_data(name)
        return csv_text(list(data), [_card_csv_row(data)])
    return reference.explain_text(name)
