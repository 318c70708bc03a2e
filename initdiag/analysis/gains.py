"""The structure of the gains: which rows each is measured against (restarting at normalization
layers), which rows see the data, which a norm erases or blocks, which sit in a branch of fixed scale
0; the cumulative gains of one trial's raw statistics."""

from __future__ import annotations

import math

import numpy as np

from ..network.graph import Block, Graph
from ..network.kinds import NORM_KINDS, POOL_KINDS
from .result import GAIN_JUDGED_KINDS

# dead_fraction is judged only when each unit sees at least this many values (batch x positions): a
# unit that fires half the time looks dead on n values with probability 2^-n (1/1024 here)
MIN_DEAD_SAMPLES = 10


def input_rows(graph: Graph, weighted=None) -> set[int]:
    """The rows whose input is the stack's input: every row up to and including the first weighted
    one (a leading flatten, activation or dropout row passes the data on), and when the stack opens
    with residual blocks, the sum of each (its dL/dx is the gradient of the data, whole) and the
    leading rows of each branch. Their backward gain is the data's gradient, which trains nothing,
    and their forward gain from the data (`data_gains`) is judged. *weighted(row)* says which rows
    have weights (default: a weight shape)."""
    if weighted is None:
        weighted = lambda row: row.weight_shape is not None  # noqa: E731
    found: set[int] = set()

    def leading(tree: tuple) -> bool:
        """Adds the rows of *tree* that see only the data; True once a weighted row is reached."""
        for item in tree:
            if isinstance(item, Block):
                reached = leading(item.branch)
                found.add(item.sum_row)
                if reached or weighted(graph.rows[item.sum_row]):
                    return True
            else:
                found.add(item)
                if weighted(graph.rows[item]):
                    return True
        return False

    leading(graph.tree)
    return found


def data_gains(graph: Graph, raw: dict, at_input: set[int]) -> np.ndarray:
    """E[z^2] / E[x^2] of the judged rows whose input is the data (x: what enters the row): the
    absolute scale the first layer sets, which the forward gains (ratios to it) cannot see; nan
    elsewhere."""
    out = np.full(len(graph.rows), math.nan)
    for i in at_input:
        if graph.rows[i].kind in GAIN_JUDGED_KINDS:
            out[i] = ratio(raw["preact_sq"][i], raw["input_sq"][i])
    return out


def zero_scale_blocks(graph: Graph) -> dict[int, str]:
    """Rows inside the branch of a residual block whose fixed scale is 0 (the outermost such block):
    the branch adds nothing forward and gets no gradient back, by construction."""
    found: dict[int, str] = {}

    def visit(tree: tuple, outer: str | None) -> None:
        for item in tree:
            if isinstance(item, Block):
                row = graph.rows[item.sum_row]
                scale = row.layer.get("scale") if hasattr(row.layer, "get") else 1.0
                visit(item.branch, outer or (row.name if scale == 0 else None))
            elif outer is not None:
                found[item] = outer

    visit(graph.tree, None)
    return found


def norm_blocked(graph: Graph, two_valued: set[int]) -> dict[int, str]:
    """Rows whose every gradient path passes a normalization layer over two values per unit (*two_valued*):
    such a norm outputs +-1 whatever its input and passes back no gradient in exact arithmetic (only
    what its eps leaves), so the rows before it in its own sequence do not train. Maps row -> norm."""
    found: dict[int, str] = {}

    def rows_in(tree: tuple) -> list[int]:
        out: list[int] = []
        for item in tree:
            out += [*rows_in(item.branch), item.sum_row] if isinstance(item, Block) else [item]
        return out

    def visit(tree: tuple) -> None:
        for k, item in enumerate(tree):
            if isinstance(item, Block):
                visit(item.branch)
            elif item in two_valued:
                for before in rows_in(tree[:k]):
                    found.setdefault(before, graph.rows[item].name)

    visit(graph.tree)
    return found


def erased_rows(graph: Graph) -> set[int]:
    """The rows whose scale a normalization layer erases: every path from them to the output passes
    a norm (a norm follows them in their own sequence, or they end a residual branch whose sum row
    is itself erased). Their forward gain is not judged: no scale of theirs reaches the output."""
    erased: set[int] = set()

    def visit(tree: tuple, outer_erased: bool) -> None:
        normed = outer_erased
        for item in reversed(tree):
            if isinstance(item, Block):
                if normed:
                    erased.add(item.sum_row)
                visit(item.branch, normed)  # the branch ends in the sum
                continue
            if normed:
                erased.add(item)
            if graph.rows[item].kind in NORM_KINDS:
                normed = True

    visit(graph.tree, False)
    return erased


def forward_references(graph: Graph) -> list[int]:
    """For each row, the row its forward gain is measured against: the last normalization row at or
    before it in execution order (a norm erases the scale of everything before it, so that scale
    must not decide a verdict after it), else the first row."""
    refs, current = [], 0
    for row in graph.rows:
        if row.kind in NORM_KINDS:
            current = row.index
        refs.append(current)
    return refs


def cumulative_gains(graph: Graph, raw: dict) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains of every row.

    Forward: E[z_l^2] over E[z_r^2], r the row's reference (`forward_references`: the first row, or
    the last normalization row before it). Backward: E[(dL/dx_l)^2] over the last row's. The
    backward gain needs no restart: a normalization layer's backward pass divides the gradient by the
    same std its forward pass divided out, so a rescaled layer before a norm leaves every other
    row's backward gain unchanged. Factors no initializer can change are divided out: a pooling
    layer's own change of the second moment (a 2x2 max pool passes each gradient to one input of
    four), and, backward, the square of the residual scales a branch row's gradient is multiplied by.
    """
    rows_ = graph.rows
    n = len(rows_)
    own_fwd = np.ones(n)
    own_bwd = np.ones(n)
    for i, row in enumerate(rows_):
        if row.kind in POOL_KINDS:
            own_fwd[i] = ratio(raw["preact_sq"][i], raw["input_sq"][i]) if i else 1.0
            own_bwd[i] = ratio(raw["grad_input_sq"][i], raw["grad_output_sq"][i]) if i < n - 1 else 1.0
    fwd_fixed = np.cumprod(own_fwd)
    bwd_fixed = np.cumprod(own_bwd[::-1])[::-1]  # pools at or after the row
    scale_sq = np.array([row.branch_scale**2 for row in rows_])
    refs = forward_references(graph)
    forward = [
        ratio(raw["preact_sq"][i], raw["preact_sq"][r] * ratio(fwd_fixed[i], fwd_fixed[r]))
        for i, r in enumerate(refs)
    ]
    backward = [
        ratio(raw["grad_input_sq"][i], raw["grad_input_sq"][-1] * bwd_fixed[i] * scale_sq[i])
        for i in range(n)
    ]
    return np.array(forward), np.array(backward)


def ratio(num: float, den: float) -> float:
    """num/den, or nan when the reference is zero (undefined, which is not an overflow)."""
    return math.nan if den == 0 else num / den


def dead_judged(row, batch: int) -> bool:
    """Whether each unit of the row sees enough values (`MIN_DEAD_SAMPLES`) for dead to mean dead."""
    return batch * math.prod(row.out_shape[1:]) >= MIN_DEAD_SAMPLES
