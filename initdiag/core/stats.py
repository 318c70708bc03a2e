"""Statistics of one array, accumulated in float64 whatever the compute dtype.

Callers run these under ``np.errstate(all="ignore")``: an overflowed array gives inf/nan numbers,
which the probe reports, instead of warnings.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .parallel import map_chunks, spans


class Moments(NamedTuple):
    mean: float
    var: float  # population variance
    second: float  # E[x^2] = var + mean^2

    @property
    def std(self) -> float:
        return float(np.sqrt(self.var))


_CHUNK = 1 << 20  # entries converted to float64 at a time: bounded extra memory

# float32 data: entries per block (shifted into a reused float32 buffer, in cache) and per row, the
# float32 sums of rows of 256 are exact to a few float32 roundings and are added up in float64
_BLOCK = 1 << 16
_ROW = 256
_PART_BLOCKS = 16  # blocks per part of a large array, the parts summed on threads


def moments(x: np.ndarray) -> Moments:
    """Mean, population variance and second moment over all entries, accumulated in float64.

    float32 data (`_moments32`) is summed in blocks without a float64 copy. Other data: one pass sums
    x and x^2 in float64, ``_CHUNK`` entries converted at a time (bounded extra memory); var = E[x^2]
    - mean^2 then loses about log10(E[x^2]/var) of float64's 16 digits, so where the mean swamps the
    variance (var < 1e-6 E[x^2], a saturated sigmoid layer whose outputs are all close to 1) a second
    pass sums the squared deviations from the mean instead.
    """
    flat = x.ravel(order="K")  # memory order: a view of any dense layout (a gradient's), not a copy
    n = flat.size
    if n == 0:
        return Moments(float("nan"), float("nan"), float("nan"))
    if flat.dtype == np.float32:
        found = _moments32(flat)
        if found is not None:
            return found
    total = squares = 0.0
    for start in range(0, n, _CHUNK):
        d = flat[start : start + _CHUNK].astype(np.float64, copy=False)
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


def _moments32(flat: np.ndarray) -> Moments | None:
    """`moments` of float32 data, without a float64 copy: in blocks, the float32 sums of x, d and
    d^2, d = x - K for a float32 K near the mean, over rows of `_ROW` entries, added up in float64.
    mean = E[x], var = E[d^2] - E[d]^2 (the rounded d's own, so that a rounding of x - K, which is
    exact where x is within a factor 2 of K, moves the variance by a float32 rounding of E[d^2] at
    most), with no cancellation while K is within a few standard deviations of the mean: K is first
    the mean of the first 4096 entries, and if the data's mean is far from it, the data's mean (a
    second pass). None when a sum is not finite (inf/nan data, or float32 overflow of a square) or
    E[d^2] is below 1e-30 (squares of entries below 1e-19 vanish in float32: a vanishing gradient's,
    or all equal): the float64 form then gives the numbers."""
    n = flat.size
    shift = np.float32(np.mean(flat[:4096], dtype=np.float64))
    for _ in range(2):
        if not np.isfinite(shift):
            return None
        total, offset, spread = (value / n for value in _shifted_sums(flat, shift))
        if not (math.isfinite(total) and math.isfinite(spread)) or spread < 1e-30:
            return None  # overflowed, or so small that squares below float32's range would count
        if offset * offset <= 1e-3 * spread:
            break
        shift = np.float32(total)  # far from the mean: once more, shifted by it
    var = max(spread - offset * offset, 0.0)
    return Moments(total, var, var + total * total)


def _shifted_sums(flat: np.ndarray, shift: np.float32) -> tuple[float, float, float]:
    """(sum of x, of d, of d^2) in float64 over float32 blocks of *flat*, d = x - shift (float32); the
    blocks in parts on `parallel.map_chunks`, whose sums are added in order."""

    def part_sums(part):
        sums = np.zeros(3)
        buffer = np.empty(min(part.stop - part.start, _BLOCK), dtype=np.float32)
        for span in spans(part.stop, _BLOCK, part.start):
            block = flat[span]
            d = np.subtract(block, shift, out=buffer[: len(block)])
            whole = len(block) // _ROW * _ROW
            rows, d_rows = block[:whole].reshape(-1, _ROW), d[:whole].reshape(-1, _ROW)
            for i, row_sums in enumerate(
                (rows.sum(axis=1), d_rows.sum(axis=1), np.einsum("ij,ij->i", d_rows, d_rows))
            ):
                sums[i] += np.add.reduce(row_sums, dtype=np.float64)
            rest = d[whole:].astype(np.float64)
            sums += (block[whole:].sum(dtype=np.float64), rest.sum(), np.einsum("i,i->", rest, rest))
        return sums

    total = np.zeros(3)
    for sums in map_chunks(part_sums, spans(flat.size, _PART_BLOCKS * _BLOCK)):
        total += sums
    return float(total[0]), float(total[1]), float(total[2])


def distinct_columns(z: np.ndarray, offset: np.ndarray | None = None) -> int:
    """How many distinct columns (units) a (batch, units) array has, compared exactly; with *offset*
    (units,), those of z - offset (rounded in z's dtype), without a copy of the whole of z when the
    first rows already tell every unit apart.

    Units with equal columns compute the same function of the batch: they get equal gradients
    and stay equal, the symmetry that random initialization exists to break.
    """
    # + 0.0 turns -0.0 into 0.0 so signed zeros compare equal; order="C" makes each unit's
    # column one contiguous row of bytes, viewed as one opaque item so that np.unique compares
    # whole columns (a set of Python bytes objects took ~50 bytes per unit, 200 MB for 4M units)
    if z.shape[1] <= 1:
        return z.shape[1]
    if z.shape[0] > 64 and _distinct(z[:64], offset) == z.shape[1]:
        return z.shape[1]  # the first 64 samples already tell every unit apart (the usual case)
    return _distinct(z, offset)


def _distinct(z: np.ndarray, offset: np.ndarray | None) -> int:
    if offset is not None:
        z = z - offset.astype(z.dtype, copy=False)
    rows = np.add(z.T, z.dtype.type(0.0), order="C")
    items = np.sort(rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel())
    # what np.unique counts, without its np.ma check (importing numpy.ma costs a probe 8 ms)
    return int(1 + np.count_nonzero(items[1:] != items[:-1])) if items.size else 0


def dead_fraction(z: np.ndarray) -> float:
    """Share of units whose pre-activation is <= 0 for every sample (a ReLU unit that never fires
    passes no gradient)."""
    alive = np.count_nonzero((z > 0).any(axis=0))
    return 1.0 - alive / z.shape[1]


def saturated_fraction(dact: np.ndarray, max_derivative: float) -> float:
    """Share of entries where |phi'(z)| is below 5% of its maximum. (The magnitude: gelu' and silu'
    are negative for very negative z, and a negative slope still passes gradient.)"""
    flat, limit = dact.reshape(-1), 0.05 * max_derivative
    # in blocks: a whole-array |phi'| and its mask would be fresh pages, which cost more than the test
    count = sum(np.count_nonzero(np.abs(flat[i : i + _BLOCK]) < limit) for i in range(0, flat.size, _BLOCK))
    return count / dact.size
