"""The structure of the gains: which rows each is measured against (restarting at normalization
layers), which rows see the data, which a norm erases or blocks, which sit in a branch of fixed scale
0; the cumulative gains of one trial's raw statistics."""

from __future__ import annotations

import math

import numpy as np

from ..network.graph import Block, Graph
from ..network.kinds import NORM_KINDS, POOL_KINDS
from .result import judged_kinds

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
    data = raw.get("data_sq", raw["input_sq"])  # a model's: the data, whatever forward() made of it
    for i in at_input:
        if graph.rows[i].kind in judged_kinds(True):
            out[i] = ratio(raw["preact_sq"][i], data[i])
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


# the rows that start a transformer's stream: token vectors, then their positions
_STREAM_START = ("embedding", "position_embedding", "sinusoidal_positions")


def block_branch_rows(graph: Graph) -> set[int]:
    """The rows inside the branches of transformer blocks (the norms before and after a sublayer, the
    attention, the MLP): their scale against the stream's is what their initializer chooses (GPT-2's
    1/sqrt(2L), DeepNet's beta, T-Fixup's: small on purpose), so their gains are shown, not judged;
    the stream's rows (the adds, a post-norm) are."""
    stream_depth = {row.block: row.depth for row in graph.rows if row.kind == "stream_add"}
    return {row.index for row in graph.rows if row.block is not None and row.depth > stream_depth[row.block]}


def forward_references(graph: Graph) -> list[int]:
    """For each row, the row its forward gain is measured against: the last normalization row at or
    before it in execution order (a norm erases the scale of everything before it, so that scale
    must not decide a verdict after it), else the first row. A norm inside a transformer block's
    branch (a pre-norm) is the reference of its branch's rows only: the stream's rows after it do
    not pass it, and are measured against the last norm on the stream (a post-norm, a final norm),
    else the stream's start (the embedding plus its positions)."""
    branch = block_branch_rows(graph)
    refs, current, in_branch = [], 0, None
    for row in graph.rows:
        if row.index not in branch:
            in_branch = None
        if row.kind in NORM_KINDS:
            if row.index in branch:
                in_branch = row.index
            else:
                current = row.index
        refs.append(in_branch if in_branch is not None and row.index in branch else current)
        if row.kind in _STREAM_START[1:]:  # the stream starts here: token vectors plus positions
            current = row.index
    return refs


def stream_rows(graph: Graph) -> set[int]:
    """The rows of a transformer from its positions to its last block: the stream's (the positions
    added to the embedding, the adds, a post-norm) and those of the blocks' branches, which read it."""
    if not graph.n_blocks:  # no transformer entry (a model's rows, standalone attention layers): none
        return set()
    return {row.index for row in graph.rows if row.block is not None or row.kind in _STREAM_START[1:]}


def scale_free_rows(graph: Graph) -> set[int]:
    """The rows whose backward gain is taken scale-free (`cumulative_gains`): the stream's
    (`stream_rows`) and the final norm's after them, when every transformer block has norms (pre,
    post or deepnorm); none when one has none."""
    if any(row.kind == "stream_add" and row.layer.get("norm") == "none" for row in graph.rows):
        return set()
    streamed = stream_rows(graph)
    refs = backward_references(graph)
    last = len(graph.rows) - 1
    return streamed | {refs[i] for i in streamed if refs[i] != last}


def backward_references(graph: Graph) -> list[int]:
    """For each row, the row its backward gain is measured against: the last row, except the rows
    of a transformer's stream (`stream_rows`) before a final normalization (a top-level norm outside
    any block, GPT-2's ln_f): against the one entering it. A norm divides the gradient by the std of
    what enters it, the scale its forward pass erases."""
    last = len(graph.rows) - 1
    finals = [
        row.index for row in graph.rows if row.kind in NORM_KINDS and row.depth == 0 and row.block is None
    ]
    streamed = stream_rows(graph)
    out = []
    for row in graph.rows:
        after = [n for n in finals if n > row.index]
        out.append(after[0] if row.index in streamed and after else last)
    return out


def cumulative_gains(graph: Graph, raw: dict) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains of every row.

    Forward: E[z_l^2] over E[z_r^2], r the row's reference (`forward_references`: the first row, or
    the last normalization row before it). Backward: E[(dL/dx_l)^2] over the last row's. The
    backward gain needs no restart: a normalization layer's backward pass divides the gradient by the
    same std its forward pass divided out, so a rescaled layer before a norm leaves every other
    row's backward gain unchanged. Factors no initializer can change are divided out: a pooling
    layer's own change of the second moment (a 2x2 max pool passes each gradient to one input of
    four), and, backward, the square of the residual scales a branch row's gradient is multiplied by.

    On a transformer's residual stream (`scale_free_rows`) the backward gain is scale-free:
    E[x_l^2] E[(dL/dx_l)^2] over the same at the reference (the final norm's input, else the last
    row's), x_l what enters row l (the stream, or in a block's branch what its norm made of it). The
    stream is read through norms, which divide the gradient by its std: a stream kept small on
    purpose (GPT-2's embeddings of std 0.02) has a gradient 1/0.02 as large with no consequence for
    training. The product is the loss's response to the same relative change of the stream at row l
    as at the reference: a norm leaves it unchanged, and in a stack whose every read of the stream is
    through a norm, rescaling the stream does too.
    """
    rows_ = graph.rows
    n = len(rows_)
    own_fwd = np.ones(n)
    own_bwd = np.ones(n)
    for i, row in enumerate(rows_):
        if row.kind in POOL_KINDS:
            own_fwd[i] = ratio(raw["preact_sq"][i], raw["input_sq"][i]) if i else 1.0
            own_bwd[i] = ratio(raw["grad_input_sq"][i], raw["grad_output_sq"][i]) if i < n - 1 else 1.0
    if "pool_fwd" in raw:  # a model's poolings in forward(), no row's (`torch_rows._pool_factors`)
        own_fwd, own_bwd = own_fwd * raw["pool_fwd"], own_bwd * raw["pool_bwd"]
    fwd_fixed = np.cumprod(own_fwd)
    bwd_fixed = np.cumprod(own_bwd[::-1])[::-1]  # pools at or after the row
    scale_sq = np.array([row.branch_scale**2 for row in rows_])
    refs = forward_references(graph)
    forward = [
        ratio(raw["preact_sq"][i], raw["preact_sq"][r] * ratio(fwd_fixed[i], fwd_fixed[r]))
        for i, r in enumerate(refs)
    ]
    back_refs = backward_references(graph)
    free = scale_free_rows(graph)
    grad_sq = raw["grad_input_sq"]
    # a model's: against the rows that make its outputs (`torch_rows._backward_reference`)
    ref_sq = raw.get("backward_reference_sq", grad_sq[back_refs])
    backward = [
        ratio(grad_sq[i] * raw["input_sq"][i], grad_sq[r] * raw["input_sq"][r] * scale_sq[i])
        if i in free
        else ratio(grad_sq[i], ref_sq[i] * ratio(bwd_fixed[i], bwd_fixed[r]) * scale_sq[i])
        for i, r in enumerate(back_refs)
    ]
    return np.array(forward), np.array(backward)


def ratio(num: float, den: float) -> float:
    """num/den, or nan when the reference is zero (undefined, which is not an overflow)."""
    return math.nan if den == 0 else num / den


def dead_judged(row, batch: int) -> bool:
    """Whether each unit of the row sees enough values (`MIN_DEAD_SAMPLES`) for dead to mean dead."""
    return batch * row.positions >= MIN_DEAD_SAMPLES
