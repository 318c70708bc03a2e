"""Statistics of one array, accumulated in float64 whatever the compute dtype.

Callers run these under ``np.errstate(all="ignore")``: an overflowed array gives inf/nan numbers,
which the probe reports, instead of warnings.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Moments(NamedTuple):
    mean: float
    var: float  # population variance
    second: float  # E[x^2] = var + mean^2

    @property
    def std(self) -> float:
        return float(np.sqrt(self.var))


_CHUNK = 1 << 20  # entries converted to float64 at a time: bounded extra memory


def moments(x: np.ndarray) -> Moments:
    """Mean, population variance and second moment over all entries, in float64.

    Two passes (mean, then squared deviations) so a large mean does not swamp a small variance,
    as for a saturated sigmoid layer whose outputs are all close to 1. Each pass converts at most
    ``_CHUNK`` entries to float64 at a time.
    """
    flat = x.reshape(-1)
    n = flat.size
    if n == 0:
        return Moments(float("nan"), float("nan"), float("nan"))
    mean = float(np.add.reduce(flat, dtype=np.float64) / n)
    squares = 0.0
    for start in range(0, n, _CHUNK):
        d = flat[start : start + _CHUNK].astype(np.float64)
        d -= mean
        squares += float(np.dot(d, d))
    var = squares / n
    return Moments(mean, var, var + mean * mean)


def distinct_columns(z: np.ndarray) -> int:
    """How many distinct columns (units) a (batch, units) array has, compared exactly.

    Units with equal columns compute the same function of the batch: they get equal gradients
    and stay equal, the symmetry that random initialization exists to break.
    """
    # + 0.0 turns -0.0 into 0.0 so signed zeros compare equal; order="C" makes each unit's
    # column one contiguous row of bytes, viewed as one opaque item so that np.unique compares
    # whole columns (a set of Python bytes objects took ~50 bytes per unit, 200 MB for 4M units)
    rows = np.add(z.T, z.dtype.type(0.0), order="C")
    if rows.shape[0] <= 1:
        return rows.shape[0]
    items = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    return len(np.unique(items))


def dead_fraction(z: np.ndarray) -> float:
    """Share of units whose pre-activation is <= 0 for every sample (a ReLU unit that never fires
    passes no gradient)."""
    alive = np.count_nonzero((z > 0).any(axis=0))
    return 1.0 - alive / z.shape[1]


def saturated_fraction(dact: np.ndarray, max_derivative: float) -> float:
    """Share of entries where |phi'(z)| is below 5% of its maximum. (The magnitude: gelu' and silu'
    are negative for very negative z, and a negative slope still passes gradient.)"""
    return np.count_nonzero(np.abs(dact) < 0.05 * max_derivative) / dact.size
