"""What a PyTorch model returns, and the loss a probe puts on it.

A model may return one tensor, or several in a tuple, a list, a dict (a Hugging Face ``ModelOutput``
is one), a dataclass, or any nesting of these. Every floating-point tensor in it that requires grad
and has a batch axis is an output the loss reaches: the probe's loss is the sum of each output's
loss, each with its own random target (the first output's target is a spec probe's, so a model with
one output gives a spec probe's numbers). Anything else (token ids from an ``argmax``, a detached
tensor, a scalar such as a loss the model computes itself, None) gets no loss and is named in a note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..analysis.inputs import stream
from ..core.losses import make_target
from ..errors import InitdiagError, one_line
from .torch_load import require_torch

_TARGET = 1  # the target's stream key, as a spec probe's; output k > 0 draws from (_TARGET, k)


class Output(NamedTuple):
    name: str  # "" for a model that returns one tensor; "[0]", "logits", "hidden_states[2]"
    value: Any
    channels_first: bool = False  # a convolution made it: its classes (for xent) are axis 1

    @property
    def label(self) -> str:
        return self.name or "the output"


def flatten(value: Any, name: str = "") -> list[Output]:
    """Every leaf of what a model returned, named by its path: ``[0]``, ``logits``, ``out[1].h``."""
    torch = require_torch()
    if isinstance(value, torch.Tensor):
        return [Output(name, value)]
    if isinstance(value, Mapping):  # dict, OrderedDict, Hugging Face ModelOutput
        items = [(f"{name}.{key}" if name else str(key), item) for key, item in value.items()]
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple: its field names
        items = [(f"{name}.{key}" if name else key, getattr(value, key)) for key in value._fields]
    elif isinstance(value, tuple | list):
        items = [(f"{name}[{k}]", item) for k, item in enumerate(value)]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [
            (f"{name}.{f.name}" if name else f.name, getattr(value, f.name))
            for f in dataclasses.fields(value)
        ]
    else:
        return [Output(name, value)]
    return [leaf for key, item in items for leaf in flatten(item, key)]


def why_not(value: Any) -> str | None:
    """Why a leaf of the output gets no loss (None: it gets one)."""
    torch = require_torch()
    if not isinstance(value, torch.Tensor):
        return "None" if value is None else f"a {type(value).__name__}, not a tensor"
    dtype = str(value.dtype).removeprefix("torch.")
    if value.ndim == 0:
        return f"a scalar (a 0-d {dtype} tensor)"
    shape = tuple(value.shape)
    if not (value.is_floating_point() or value.is_complex()):
        return f"{_a(dtype)} {dtype} tensor of shape {shape}, which has no gradient"
    if not value.requires_grad:
        return (
            f"{_a(dtype)} {dtype} tensor of shape {shape} that does not require grad (detached, or made "
            "under no_grad)"
        )
    if value.is_complex():
        return f"a {dtype} tensor of shape {shape} (complex: no real loss)"
    return None


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def split(outputs: list[Output]) -> tuple[list[Output], list[tuple[Output, str]]]:
    """(the outputs that get the loss, the tensors that do not and why); None and non-tensors inside
    a structure (a ModelOutput's unset fields, a config echoed back) are not listed."""
    torch = require_torch()
    used, skipped = [], []
    for out in outputs:
        reason = why_not(out.value)
        if reason is None:
            used.append(out)
        elif isinstance(out.value, torch.Tensor):
            skipped.append((out, reason))
    return used, skipped


def nothing_to_probe(model: str, value: Any, outputs: list[Output]) -> InitdiagError:
    """The one-line error for a model none of whose outputs can take the loss."""
    torch = require_torch()
    if isinstance(value, torch.Tensor) or not outputs or outputs[0].name == "":
        what = why_not(value) or repr(value)
    else:
        kind = type(value).__name__
        parts = [f"{out.name}: {why_not(out.value)}" for out in outputs[:4]]
        more = f" and {len(outputs) - 4} more" if len(outputs) > 4 else ""
        what = f"a {kind} with no tensor the loss can reach ({'; '.join(parts)}{more})"
    return InitdiagError(
        f"--model '{one_line(model)}' returned {one_line(what, 200)}; the probe puts its own loss on the "
        "model's outputs and needs a floating-point tensor that requires grad with one row per sample "
        "(batch, ...), e.g. logits, alone or in a tuple, list or dict"
    )


def probe_loss(outputs: list[Output], loss: str, seed: int, trial: int, batch: int, dtype: str):
    """The sum over *outputs* of the spec probe's loss, in torch, each with its own random target:
    unit sum(Y G)/batch, mse mean((Y - T)^2), xent the softmax cross-entropy with random labels at
    every position (``F.cross_entropy`` on the logits flattened to (positions, classes); classes are
    the last axis, or axis 1 of a convolution's output, as ``F.cross_entropy`` takes an image's)."""
    torch = require_torch()
    total = None
    for k, out in enumerate(outputs):
        y = out.value
        rng = stream(seed, trial, _TARGET) if k == 0 else stream(seed, trial, _TARGET, k)
        if loss == "xent":
            logits = torch.movedim(y, 1, -1) if out.channels_first and y.ndim >= 3 else y
            if logits.ndim < 2 or logits.shape[-1] < 2:
                where = f"; {out.name} has" if out.name else "; the model returns"
                raise InitdiagError(
                    "--loss xent needs logits of at least 2 classes, (batch, classes) or (batch, positions, "
                    f"classes){where} shape {tuple(y.shape)}; use --loss unit or mse"
                )
            flat = logits.reshape(-1, logits.shape[-1])
            labels = make_target("xent", rng, tuple(flat.shape), dtype)
            term = torch.nn.functional.cross_entropy(flat, torch.as_tensor(labels, device=y.device))
        else:
            target = torch.as_tensor(
                make_target(loss, rng, tuple(y.shape), dtype), device=y.device, dtype=y.dtype
            )
            term = (y * target).sum() / batch if loss == "unit" else ((y - target) ** 2).mean()
        total = term if total is None else total + term
    return total


def outputs_note(used: list[Output], skipped: list[tuple[Output, str]], loss: str) -> str | None:
    """The note naming a model's outputs (when more than one tensor) and those that get no loss."""
    if len(used) <= 1 and not skipped:
        return None
    parts = []
    if len(used) > 1:
        names = ", ".join(
            f"{out.name} ({'×'.join(map(str, out.value.shape[1:])) or 'one value'})" for out in used
        )
        parts.append(
            f"the model returns {len(used)} outputs, {names}: the loss is the sum of each one's {loss} loss, "
            "each with its own random target, so every output's gradient reaches the layers that made it"
        )
    if skipped:
        listed = "; ".join(f"{out.label}: {reason}" for out, reason in skipped[:4])
        more = f" and {len(skipped) - 4} more" if len(skipped) > 4 else ""
        parts.append(
            f"no loss on {listed}{more}: the layers only they depend on get no gradient from the probe"
        )
    return "; ".join(parts)
