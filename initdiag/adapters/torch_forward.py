"""What a PyTorch model's forward() does where no hook looks, found from autograd's graph: the
inputs it computes itself (an add, a functional call), the poolings among them, the code before the
first module, the parameters no module owns; and the notes and words that say so."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..analysis.result import ProbeResult
from ..analysis.result import format_number as fmt
from ..core.stats import moments
from .torch_modules import leaves
from .torch_rows import RowData


def source_of(x, makers: dict) -> RowData | None:
    """The one row whose output forward() computed *x* from with no tensor of its own (a mean, a
    slice: no raw parameter, not the data), or None."""
    found, leaves_read = sources_of(x, makers)
    return found[0] if len(found) == 1 and not leaves_read else None


def sources_of(x, makers: dict) -> tuple[list[RowData], bool]:
    """The rows whose outputs forward() computed *x* from (autograd's graph walked back from x to
    the outputs the hooks saw), and whether it also read a tensor no module made (a raw parameter,
    the data). No rows when the graph is too large to walk."""
    fn = getattr(x, "grad_fn", None)
    if fn is None or not makers:
        return [], True
    found: dict[int, RowData] = {}
    seen, todo, leaves_read = set(), [fn], False
    while todo and len(seen) < 10000:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if id(node) in makers:
            row = makers[id(node)][1]
            found[id(row)] = row
            continue
        leaves_read = leaves_read or hasattr(node, "variable")  # AccumulateGrad: a leaf tensor
        todo.extend(nxt for nxt, _ in node.next_functions)
    return ([], True) if todo else (list(found.values()), leaves_read)


@dataclass(frozen=True)
class Unseen:
    """A module whose input no hooked module made: forward() computed it (an add, a mean, a
    functional activation), so the row's gain includes a step the table does not show."""

    row: str
    after: str  # the module that ran just before, whose output the table shows, or "the data"
    after_sq: float | None  # E[y^2] of that output (None for token ids)
    input_sq: float  # E[x^2] of what this module got


@dataclass(frozen=True)
class Gap:
    """A pooling forward() does itself (``x.mean((2, 3))``, ``h[:, 0]``): the input of *row* was
    computed from the output of *source* alone and has fewer values per sample."""

    source: RowData
    row: RowData


class Measured:
    """E[x^2] of the tensors measured so far, found again by data pointer while the tensor is held
    here (a freed tensor's memory may hold another) and not changed in place since (its version
    counter, which its views share, has not moved). Full backward hooks hand the next module an
    alias of an output, not the output itself, so the tensors are held, not weakly referenced:
    all of them in the forward pass (autograd keeps most for the backward pass anyway), the last
    *keep* in the backward pass, where dL/dy of a module is dL/dx of the one after it."""

    def __init__(self, keep: int | None = None):
        self.entries: dict[int, tuple] = {}
        self.keep = keep

    def add(self, tensor, measured) -> None:
        self.entries.pop(tensor.data_ptr(), None)
        self.entries[tensor.data_ptr()] = (tensor, tensor.numel(), tensor._version, measured)
        if self.keep is not None and len(self.entries) > self.keep:
            del self.entries[next(iter(self.entries))]

    def get(self, tensor):
        """What was measured of *tensor* (its `Moments`), or None."""
        entry = self.entries.get(tensor.data_ptr())
        if entry is None:
            return None
        _, numel, version, measured = entry
        if numel != tensor.numel() or tensor._version != version:
            return None
        return measured

    def clear(self) -> None:
        self.entries.clear()


def unseen_note(unseen: list[Unseen], gaps: list[Gap] = ()) -> str | None:
    """One note naming where forward() did work no hook saw (at most three places, and a count), and
    the poolings it did, whose own change of the scale the gains divide out."""
    if not unseen:
        return None
    parts = [
        f"{u.row} (E[x²] {fmt(u.input_sq)}"
        + (f", after {u.after}'s {fmt(u.after_sq)})" if u.after_sq is not None else ")")
        for u in unseen[:3]
    ]
    more = f" and {len(unseen) - 3} more" if len(unseen) > 3 else ""
    note = (
        "hooks see modules, not the code in forward(): the input of "
        + ", ".join(parts)
        + f"{more} was computed there (an add, a pooling, a functional call); those rows' gains include it"
    )
    if any(u.after == "the data" for u in unseen):
        note += ", and a first module's gain from the data is judged from the data, not from its input"
    for gap in gaps[:3]:
        before, after = ("×".join(map(str, shape)) for shape in (gap.source.out_shape, gap.row.in_shape))
        note += (
            f"; {gap.row.name} reads {gap.source.name}'s output pooled in forward() ({before} → {after} per "
            "sample): its own change of E[x²] and of E[(dL/dx)²] is divided out of the gains, as a pooling "
            "module's is"
        )
    return note


def unowned_note(model) -> str | None:
    """Parameters that belong to no leaf module (a raw ``nn.Parameter`` forward() uses itself, a
    class token, a learned position table): no row measures them; they act through the next row."""
    owned = {id(p) for _, module in leaves(model) for p in module.parameters()}
    found = [(name, p) for name, p in model.named_parameters() if id(p) not in owned]
    if not found:
        return None
    parts = []
    for name, p in found[:4]:
        rms = math.sqrt(moments(p.detach().to("cpu").numpy()).second) if p.numel() else math.nan
        parts.append(f"{name} ({'×'.join(map(str, p.shape)) or 'scalar'}, rms {fmt(rms)})")
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    return (
        f"parameters of no module: {', '.join(parts)}{more}; forward() uses them itself, so no row measures "
        "them, and their effect is seen only in the gain of the next module their result reaches"
    )


def not_the_data(result: ProbeResult, rows: list[str]) -> None:
    """A first module whose input forward() computed from the data: its gain from the data is not its
    weights' alone, so the reason does not weigh them against the data's scale."""
    for k, reason in enumerate(result.summary.findings):
        head = f"layer {reason.layer} multiplies the data's E[x^2] by"
        if reason.layer in rows and head in reason.text:
            start = reason.text.index(head)
            close = reason.text.find(")", start)  # the limit it left or nears: "(vanishing: < 1/100)"
            cut = reason.text.find(": ", close) if close >= 0 else -1
            text = reason.text if cut < 0 else reason.text[:cut]
            text += (
                f": what reaches {reason.layer} is not the data but what forward() made of it (E[x²] in the "
                "note), so the gain is not its weights' alone"
            )
            result.summary.findings[k] = reason._replace(text=text)
