"""A network initdiag does not describe itself: a PyTorch module named by ``PATH.py:FACTORY`` or
``package.module:FACTORY``, its arguments, and the input it takes. Text only; building and running
it is `initdiag.adapters` (which imports torch, and only when asked).

Input shapes: ``3x32x32`` or ``784`` is one sample of floats drawn as the probe draws them (N(0, 1)
by default); ``seq=128,vocab=50257`` is a sequence of integer token ids drawn uniformly from
[0, vocab).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import InitdiagError, one_line


class InputShape(NamedTuple):
    """One sample: ``floats`` of ``shape``, or ``tokens``: ``shape = (seq,)`` ids below ``vocab``."""

    kind: str
    shape: tuple[int, ...]
    vocab: int | None = None

    def __str__(self) -> str:
        if self.kind == "tokens":
            return f"seq={self.shape[0]},vocab={self.vocab}"
        return "x".join(map(str, self.shape))

    @property
    def size(self) -> int:
        """Numbers in one sample."""
        return math.prod(self.shape)


def parse_input_shape(text: Any) -> InputShape:
    """``3x32x32``, ``784``, a list of ints, or ``seq=128,vocab=50257``; one clear error otherwise."""
    if isinstance(text, InputShape):
        return text
    if isinstance(text, list | tuple):
        text = "x".join(str(v) for v in text)
    raw = str(text).strip()
    usage = "write its shape as 3x32x32 (floats) or seq=128,vocab=50257 (token ids)"
    if "=" in raw:
        values: dict[str, int] = {}
        for part in raw.split(","):
            key, _, value = part.partition("=")
            key = key.strip().lower()
            if key not in ("seq", "vocab") or key in values:
                raise InitdiagError(f"--input-shape '{one_line(raw)}': '{one_line(part)}'; {usage}")
            values[key] = _positive(value, raw, key, usage)
        if set(values) != {"seq", "vocab"}:
            raise InitdiagError(f"--input-shape '{one_line(raw)}': token inputs need seq= and vocab=")
        return InputShape("tokens", (values["seq"],), values["vocab"])
    parts = raw.lower().split("x")
    shape = tuple(_positive(p, raw, "size", usage) for p in parts)
    if not shape or len(shape) > 5:
        raise InitdiagError(f"--input-shape '{one_line(raw)}': {usage}")
    return InputShape("floats", shape)


def _positive(token: str, raw: str, what: str, usage: str) -> int:
    token = token.strip()
    if not (token.isascii() and token.isdigit()) or int(token) < 1:
        shown = one_line(token, 20)
        raise InitdiagError(
            f"--input-shape '{one_line(raw)}': {what} '{shown}' is not a positive integer; {usage}"
        )
    return int(token)


def parse_model_args(items: list[str] | dict | None) -> dict[str, Any]:
    """``key=value`` pairs (``--model-arg depth=18``): ints, floats, true/false and none are read as
    such, anything else stays text."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InitdiagError(f"--model-arg '{one_line(item)}': write key=value, e.g. depth=18")
        if key in out:
            raise InitdiagError(f"--model-arg: {key} given twice")
        out[key] = _value(value.strip())
    return out


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass
class ModelSpec:
    """A PyTorch model to probe: where its factory is (``model``), the arguments it is called with,
    and the input it takes. What results report as ``spec`` for a model."""

    model: str
    input_shape: InputShape | None  # None where no input is needed (initdiag audit --model)
    args: dict[str, Any] = field(default_factory=dict)
    init: str = "keep"
    name: str | None = None
    bias_init: str | None = None
    base_dir: str | None = None  # a spec file's folder: a relative PATH.py is found from there
    # what a probe found the model returns: (name, shape per sample) of each output its loss reached
    outputs: tuple = ()

    act: str = "module"  # what compare labels a model's activation with (it has its own)
    is_dense_chain = False

    @property
    def layers(self) -> tuple:
        return ()

    def walk(self):
        return iter(())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "model_args": dict(self.args),
            "input_shape": str(self.input_shape),
            "init": self.init,
            "bias_init": self.bias_init,
        }
