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

    One pass sums x and x^2 in float64, ``_CHUNK`` entries converted at a time (bounded extra
    memory); var = E[x^2] - mean^2 then loses about log10(E[x^2]/var) of float64's 16 digits, so
    where the mean swamps the variance (var < 1e-6 E[x^2], a saturated sigmoid layer whose outputs
    are all close to 1) a second pass sums the squared deviations from the mean instead.
    """
    flat = x.ravel(order="K")  # memory order: a view of any dense layout (a gradient's), not a copy
    n = flat.size
    if n == 0:
        return Moments(float("nan"), float("nan"), float("nan"))
    total = squares = 0.0
    for start in range(0, n, _CHUNK):
        d = flat[start : start + _CHUNK].astype(np.float64)
        total += float(d.sum())
        # einsum, not np.dot: BLAS's dot wakes its thread pool for every chunk, which stalls for
        # milliseconds whenever other threads (torch's, another process's) hold the cores
        squares += float(np.einsum("i,i->", d, d))
    mean, second = total / n, squares / n
    var = second - mean * mean
    if not var >= 1e-6 * second:  # cancellation (or nan): the two-pass form
        deviations = 0.0
        for start in range(0, n, _CHUNK):
            d = flat[start : start + _CHUNK].astype(np.float64)
            d -= mean
            deviations += float(np.einsum("i,i->", d, d))
        var = deviations / n
        second = var + mean * mean  # nan where the values are not finite, as the two-pass form gives
    return Moments(mean, var, second)


def distinct_columns(z: np.ndarray) -> int:
    """How many distinct columns (units) a (batch, units) array has, compared exactly.

    Units with equal columns compute the same function of the batch: they get equal gradients
    and stay equal, the symmetry that random initialization exists to break.
    """
    # + 0.0 turns -0.0 into 0.0 so signed zeros compare equal; order="C" makes each unit's
    # column one contiguous row of bytes, viewed as one opaque item so that np.unique compares
    # whole columns (a set of Python bytes objects took ~50 bytes per unit, 200 MB for 4M units)
    if z.shape[1] <= 1:
        return z.shape[1]
    if z.shape[0] > 64 and _distinct(z[:64]) == z.shape[1]:
        return z.shape[1]  # the first 64 samples already tell every unit apart (the usual case)
    return _distinct(z)


def _distinct(z: np.ndarray) -> int:
    rows = np.add(z.T, z.dtype.type(0.0), order="C")
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
