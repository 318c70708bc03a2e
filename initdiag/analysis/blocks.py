"""Per-block statistics of a transformer (the contract's "Transformer statistics"): which rows take
which (`token_rows`), the stream's growth against linear (`stream_growth`), and one record per block
for JSON and the table (`block_records`).

Where each is taken (row keys, JSON null elsewhere):
- ``residual_sq`` (E|x|^2 / d: the second moment of the stream's entries) and ``token_cosine`` (the
  mean pairwise cosine of a sample's tokens): at the stream's start (the token vectors plus their
  positions), at the last row of every block (the stream after it), at a standalone attention row
  (its output);
- ``branch_var``: at every add of the stream, the variance of the branch's output before the add;
- ``attn_logit_std``, ``attn_entropy``: at every attention row;
- ``stream_growth``: at the last row of block l >= 2, residual_sq_l / (l * residual_sq_1): at most 1
  when each block adds no more than the first did (linear growth), above when it grows faster;
- ``grad_weight_norm``: at every row of several weights, |dL/dW| (Frobenius) of each.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..network.graph import Graph
from .result import TOKEN_FLAGS, TOKEN_STAT_KEYS  # noqa: F401  (TOKEN_STAT_KEYS re-exported)

_STREAM_START = ("embedding", "position_embedding", "sinusoidal_positions")


def block_ends(graph: Graph) -> dict[str, int]:
    """Each transformer block's last row (the stream after the block), in order."""
    ends: dict[str, int] = {}
    for row in graph.rows:
        if row.block is not None:
            ends[row.block] = row.index
    return ends


def token_rows(graph: Graph) -> dict[int, set[str]]:
    """What to take at each row: ``attention`` (logits, entropy), ``branch`` (the branch's variance
    at an add), ``stream`` (the mean square and the tokens' cosine of the row's output)."""
    out: dict[int, set[str]] = {}
    for row in graph.rows:
        if row.kind == "attention":
            out.setdefault(row.index, set()).add("attention")
            if row.block is None:
                out[row.index].add("stream")
        elif row.kind == "stream_add":
            out.setdefault(row.index, set()).add("branch")
    starts = [row.index for row in graph.rows if row.kind in _STREAM_START]
    if starts:
        out.setdefault(starts[-1], set()).add("stream")
    for end in block_ends(graph).values():
        out.setdefault(end, set()).add("stream")
    return out


def stream_growth(graph: Graph, residual_sq: np.ndarray) -> np.ndarray:
    """residual_sq_l / (l * residual_sq_1) at the last row of block l >= 2 (nan elsewhere)."""
    out = np.full(len(graph.rows), math.nan)
    ends = list(block_ends(graph).values())
    if len(ends) < 2:
        return out
    first = residual_sq[ends[0]]
    for depth, end in enumerate(ends[1:], start=2):
        out[end] = residual_sq[end] / (depth * first) if first > 0 else math.inf
    return out


def block_records(graph: Graph, layers: list) -> list[dict[str, Any]]:
    """One record per transformer block (and per standalone attention row), from the rows' means:
    ``name``, ``residual_sq``, ``token_cosine``, ``stream_growth`` (its last row's),
    ``branch_var`` ({"attn": ..., "mlp": ...}), ``attn_logit_std``, ``attn_entropy``,
    ``grad_weight_norm`` ({"attn.W_q": ..., "mlp.W_out": ...}), ``flags`` (the token flags of its rows)."""
    by_name = {x.name: x for x in layers}
    records: list[dict[str, Any]] = []
    ends = block_ends(graph)
    for row in graph.rows:
        if row.kind == "attention" and row.block is None:
            x = by_name[row.name]
            records.append({
                "name": row.name, "kind": "attention", "residual_sq": x.residual_sq,
                "token_cosine": x.token_cosine, "stream_growth": None, "branch_var": {},
                "attn_logit_std": x.attn_logit_std, "attn_entropy": x.attn_entropy,
                "grad_weight_norm": dict(x.grad_weight_norm or {}),
                "flags": [f for f in TOKEN_FLAGS if f in x.flags],
            })  # fmt: skip
        if row.block is None or ends[row.block] != row.index:
            continue
        mine = [by_name[r.name] for r in graph.rows if r.block == row.block]
        end = mine[-1]
        attention = next(x for x in mine if x.kind == "attention")
        norms = {}
        for x in mine:
            for key, value in (x.grad_weight_norm or {}).items():
                norms[f"{x.name[len(row.block) + 1 :]}.{key}"] = value
        records.append({
            "name": row.block, "kind": "transformer", "residual_sq": end.residual_sq,
            "token_cosine": end.token_cosine, "stream_growth": end.stream_growth,
            "branch_var": {x.name[len(row.block) + 1 :].removesuffix("_add"): x.branch_var
                           for x in mine if x.kind == "stream_add"},
            "attn_logit_std": attention.attn_logit_std, "attn_entropy": attention.attn_entropy,
            "grad_weight_norm": norms,
            "flags": [f for f in TOKEN_FLAGS if any(f in x.flags for x in mine)],
        })  # fmt: skip
    return records
