"""How a stack is probed (`ProbeSettings`) and judged (`Thresholds`, `CheckSettings`): the probe and
check sections of a spec file, and the flags a layer can carry."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import InitdiagError

# what a layer can be flagged with (see Thresholds); the last three only in a transformer's rows
TOKEN_FLAGS = ("collapse", "attn_saturated", "stream_growth")
FLAGS = ("vanishing", "exploding", "dead", "saturated", "symmetric", "nonfinite", *TOKEN_FLAGS)


@dataclass
class Thresholds:
    """When a layer is flagged. A layer is ``vanishing``/``exploding`` when its cumulative gain
    leaves [1/T, T]; ``dead``/``saturated`` when more than the given share is."""

    max_forward_gain: float = 10.0
    max_backward_gain: float = 10.0
    max_dead_fraction: float = 0.5
    max_saturated_fraction: float = 0.5
    # a transformer's: ``collapse`` when a sample's tokens' mean pairwise cosine exceeds it,
    # ``attn_saturated`` when attention's entropy share falls below it, ``stream_growth`` when the
    # stream's E|x|^2/d after block l exceeds this many times l times block 1's
    max_token_cosine: float = 0.9
    min_attn_entropy: float = 0.1
    max_stream_growth: float = 2.0

    def check(self) -> Thresholds:
        for key in ("max_forward_gain", "max_backward_gain"):
            value = getattr(self, key)
            if not value > 1:
                raise InitdiagError(f"{key} must be greater than 1, got {value:g}")
        if not self.max_stream_growth > 1:
            raise InitdiagError(f"max_stream_growth must be greater than 1, got {self.max_stream_growth:g}")
        for key in ("max_dead_fraction", "max_saturated_fraction", "max_token_cosine", "min_attn_entropy"):
            value = getattr(self, key)
            if not 0 <= value <= 1:
                raise InitdiagError(f"{key} must be in [0, 1], got {value:g}")
        return self


@dataclass
class ProbeSettings:
    """How the probe runs: batch size, seed, number of trials, loss, input, dtype."""

    batch: int = 256
    seed: int = 0
    trials: int = 1
    loss: str = "unit"
    input: str = "normal"
    dtype: str = "float32"
    thresholds: Thresholds = field(default_factory=Thresholds)
    theory: bool = True  # mean-field predictions beside the measurement (dense stacks)
    jacobian: bool = False  # the input-output Jacobian's singular values (dense stacks)
    device: str = "cpu"  # where a PyTorch model runs (cpu, cuda, mps); initdiag's own layers run in numpy


@dataclass
class CheckSettings:
    """What ``initdiag check`` gates on: the thresholds that set the flags, whether symmetric layers
    are allowed (e.g. a deliberate constant init), and which flags fail the spec."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    allow_symmetric: bool = False
    fail_on: tuple[str, ...] = FLAGS

    def failing(self, flags: list[str]) -> list[str]:
        """The flags among *flags* that fail the check."""
        return [f for f in flags if f in self.fail_on and not (f == "symmetric" and self.allow_symmetric)]


# ProbeSettings' own defaults, as a dict that file values and options are layered over
PROBE_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(ProbeSettings) if f.name != "thresholds"}
