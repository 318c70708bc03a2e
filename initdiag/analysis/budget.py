"""Time: what a job will take, estimated before it starts, and refused past a limit, so that a mistyped
number (``--trials 100000``) is one error line at once rather than an hour of waiting.

The estimate counts the work (multiply-adds of the forward and backward passes, values stored, weights
drawn, layers, trials, steps) at rates measured roughly on a 2-core x86 machine with OpenBLAS: a
probe's trial costs about 0.2 ns per multiply-add of a dense layer's forward pass (the backward pass's
two products included), 1.2 ns for a convolution's (im2col), 10 ns per value a layer outputs, 8 ns per
weight drawn, 0.15 ms per layer and 5 ms in all, and once per probe 1.5 ms per layer for the theory;
float64 doubles the arithmetic. It is right to within a factor of about 2 on that machine, and meant
for work that would take hours, not minutes: the limit is `MAX_SECONDS` (10 min), or
``INITDIAG_MAX_SECONDS`` when set (``0`` or ``inf``: no limit).
"""

from __future__ import annotations

import itertools
import math
import os

from ..errors import InitdiagError

MAX_TRIALS = 1000  # --trials (probe, compare, sweep, check, train): past a few dozen the spread hardly moves
MAX_SECONDS = 600.0
LIMIT_VARIABLE = "INITDIAG_MAX_SECONDS"
TRIALS_HINT = "; a statistic's spread hardly changes past a few dozen trials"
PROBE_LOWER = "lower --trials or --batch, or use fewer or narrower layers"

# seconds per unit of work, one probe trial (see the module's docstring)
_DENSE = 0.2e-9  # per multiply-add of the forward pass, the backward pass's included
_CONV = 1.2e-9
_VALUE = 10e-9
_WEIGHT = 8e-9
_ROW = 0.15e-3
_TRIAL = 5e-3
_THEORY_ROW = 1.5e-3  # the mean-field theory, once per probe
# one training step of one run, per sample: multiply-adds (forward and backward) and units
_TRAIN_MADD = 0.06e-9
_TRAIN_UNIT = 2e-9
_TRAIN_LAYER = 25e-6  # per step and layer, whatever the number of runs


def probe_seconds(stack, settings) -> float:
    """Seconds a probe of a resolved stack with these settings would take (0 for a PyTorch model:
    its cost is the model's own)."""
    from ..network.graph import rows
    from ..network.stack import StackSpec

    if not isinstance(stack, StackSpec):
        return 0.0
    batch = settings.batch if isinstance(settings.batch, int) else 1
    arithmetic = 2.0 if settings.dtype == "float64" else 1.0
    seconds = _TRIAL
    for row in rows(stack).rows:
        out = math.prod(row.out_shape)
        seconds += _ROW + _VALUE * batch * out
        if row.params or row.tied_to or row.kind == "stream_add" or len(row.in_shape) == 2:
            madds, values = _token_work(row)
            seconds += arithmetic * (_DENSE * batch * madds + _VALUE * batch * values)
            seconds += _WEIGHT * sum(math.prod(p.shape) for p in row.params)
            continue
        if row.weight_shape is not None:
            size = math.prod(row.weight_shape)
            seconds += _WEIGHT * size
            if len(row.weight_shape) == 2:
                seconds += arithmetic * _DENSE * batch * size
            else:  # conv (out_ch, in_ch, kh, kw): every output value sums in_ch * kh * kw products
                seconds += arithmetic * _CONV * batch * out * math.prod(row.weight_shape[1:])
    trials = settings.trials if isinstance(settings.trials, int) else 1
    theory = _THEORY_ROW * len(rows(stack).rows) if getattr(settings, "theory", False) else 0.0
    return seconds * trials + theory


def _token_work(row) -> tuple[float, float]:
    """(multiply-adds, elementwise values) of one sample through a row on a token stream: an
    attention's four projections and its two seq x seq products per head, its softmax; an MLP's two
    or three projections and its activation; a per-token dense map (an unembedding's d x vocab)."""
    seq, d = row.out_shape[0], row.in_shape[-1]
    if row.kind == "attention":
        inner = row.params[0].shape[1]
        return seq * 4 * d * inner + 2 * seq * seq * inner, 4 * row.layer.heads * seq * seq
    if row.kind == "mlp":
        hidden = row.params[0].shape[1]
        return seq * len(row.params) * d * hidden, 6 * seq * hidden
    if row.weight_shape is not None and row.kind != "embedding" and row.kind != "position_embedding":
        return seq * math.prod(row.weight_shape), 0.0
    if row.tied_to is not None:
        return seq * d * row.out_shape[-1], 0.0
    return 0.0, 2 * math.prod(row.out_shape)


def train_seconds(widths: list[int], runs: int, n_train: int, iters: int, dtype: str, workers: int) -> float:
    """Seconds `train` would take: *runs* networks of *widths*, *iters* full-batch steps each."""
    layers = list(itertools.pairwise(widths))
    madds = sum(a * b for a, b in layers)
    per_run = n_train * (
        _TRAIN_MADD * madds * (2.0 if dtype == "float64" else 1.0) + _TRAIN_UNIT * sum(widths[1:])
    )
    return iters * (_TRAIN_LAYER * len(layers) + runs * per_run / max(workers, 1))


def limit() -> float:
    """The longest work allowed, in seconds (``INITDIAG_MAX_SECONDS``, else `MAX_SECONDS`)."""
    text = os.environ.get(LIMIT_VARIABLE, "").strip()
    if not text:
        return MAX_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise InitdiagError(f"{LIMIT_VARIABLE}='{text}' is not a number of seconds, e.g. 3600 (0: no limit)")
    return math.inf if value == 0 else value


def refuse_long(seconds: float, what: str, lower: str) -> None:
    """One error line when *what* would take longer than the limit: the estimate, then *lower*
    (what to make smaller)."""
    allowed = limit()
    if seconds > allowed:
        raise InitdiagError(
            f"{what} would take about {duration(seconds)} (estimated; the limit is {duration(allowed)}, "
            f"{LIMIT_VARIABLE} sets another); {lower}"
        )


def duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``3.4 h``, ``5.2 days``."""
    if not math.isfinite(seconds):
        return "forever"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.2g} h"
    return f"{seconds / 86400:,.0f} days" if seconds >= 100 * 86400 else f"{seconds / 86400:.2g} days"
