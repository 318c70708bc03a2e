"""A transformer's per-block statistics (`ProbeResult.blocks`) as a second table under the probe's,
and as markdown: one row per block (and per standalone attention row)."""

from __future__ import annotations

from ..analysis.result import ProbeResult, format_number
from .common import FLAG_STYLES

# (header, record key, sub-key, priority: the highest is hidden first on a narrow terminal)
_COLUMNS = (
    ("E‖x‖²/d", "residual_sq", None, 0),
    ("growth", "stream_growth", None, 2),
    ("attn var", "branch_var", "attn", 3),
    ("mlp var", "branch_var", "mlp", 3),
    ("logit std", "attn_logit_std", None, 1),
    ("entropy", "attn_entropy", None, 0),
    ("cosine", "token_cosine", None, 0),
)


def _value(record: dict, key: str, sub: str | None) -> str:
    value = record.get(key)
    if sub is not None:
        value = (value or {}).get(sub)
    return "·" if value is None else format_number(value)


def _flags(record: dict):
    from rich.text import Text

    out = Text()
    for flag in record["flags"]:
        if out.plain:
            out.append(" ")
        out.append(flag, style=FLAG_STYLES[flag])
    return out


def stream_legend(result: ProbeResult) -> list[str]:
    """What the rows of a transformer's blocks mean in the probe's table (nothing without blocks)."""
    if not any(x.kind == "stream_add" for x in result.layers):
        return []
    line = (
        "transformer blocks: each add of the stream shows the stream after it; the rows of a branch "
        "(indented) are shown, not judged (their scale is what the init chooses)"
    )
    if any(x.block is not None for x in result.layers if x.kind in ("layernorm", "rmsnorm")):
        line += (
            "; backward gains from the positions on are scale-free, E[x²]·E[∂x²] over the same at the "
            "final norm's input (or the last row's): the stream is read through norms, whose backward "
            "pass divides by its std"
        )
    return [line]


def blocks_table(result: ProbeResult, width: int | None = None) -> list:
    """The blocks table as rich renderables (nothing without blocks), with the line that reads it."""
    from rich.text import Text

    from .tables import Cells, fit, table

    records = result.blocks
    if not records:
        return []
    columns = [Cells("block", [r["name"] for r in records], "left")]
    columns += [Cells(h, [_value(r, key, sub) for r in records], "right", p) for h, key, sub, p in _COLUMNS]
    flags = [_flags(r) for r in records]
    columns.append(Cells("flags", flags, "left", wrap=True, min_width=max(len("attn_saturated"), 5)))
    fitted = fit(columns, width)
    legend = [Text(f"  {BLOCKS_LEGEND}", style="dim"), Text("")]
    if fitted is not None:
        return [table("blocks", fitted[0], width), *legend]
    from .tables import wrap_pairs  # too narrow: one block of header-value pairs per record

    lines: list = [Text("blocks", style="table.title")]
    for k, record in enumerate(records):
        head = Text(record["name"], style="bold")
        if record["flags"]:
            head.append("  ")
            head.append_text(flags[k])
        lines.append(head)
        lines += wrap_pairs([Text(f"{c.header} {c.cells[k]}") for c in columns[1:-1]], width)
    return [*lines, *legend]


BLOCKS_LEGEND = (
    "blocks: E‖x‖²/d the stream after the block; growth E‖x‖²/d over l times block 1's (linear growth: at "
    "most 1); attn var, mlp var each branch's output variance before its add; logit std the attention "
    "logits' std; entropy attention's entropy as a share of its maximum, log(keys a query may see) "
    "(1 uniform, 0 one-hot); cosine the mean pairwise cosine of a sample's tokens (1: rank collapse)"
)


def blocks_markdown(result: ProbeResult) -> list[str]:
    """The blocks table in markdown (nothing without blocks)."""
    from .common import markdown_table

    if not result.blocks:
        return []
    headers = ["block", *(h for h, _, _, _ in _COLUMNS), "flags"]
    rows = [
        [r["name"], *(_value(r, key, sub) for _, key, sub, _ in _COLUMNS), ", ".join(r["flags"])]
        for r in result.blocks
    ]
    return ["", *markdown_table(headers, {"block", "flags"}, rows), "", BLOCKS_LEGEND]
