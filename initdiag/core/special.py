"""Special functions numpy lacks: vectorized ``erf`` / ``erfc``, the normal CDF, Gaussian expectations.

The exact GELU (PyTorch's default) is ``z * Phi(z)`` with ``Phi(z) = erfc(-z / sqrt 2) / 2``. Both
functions are built on first use by Chebyshev interpolation of the C library's ``math.erf`` /
``math.erfc`` (no copied coefficients), on pieces where the interpolated function is smooth and of
one scale:

- ``erf(x) / x`` on [0, 1] (keeps full relative precision near 0);
- ``erfcx(x) = exp(x^2) erfc(x)`` on [0, 26.5], which varies slowly from 1 to ~0.02, so
  ``erfc(x) = erfcx(x) exp(-x^2)`` keeps full *relative* precision far in the tail (where ``1 - erf``
  would cancel). Beyond 26.5, erfc < 1e-306 and is returned as 0.

The tests check both against ``math.erf`` / ``math.erfc`` on dense grids: relative error below 5e-15
(erf) and 3e-14 (erfc, median 1e-15), the remainder being numpy's vectorized ``exp``.

float32 input gets float32 precision at a fifth of the time (a GELU network trains on it every step):
``erfc(x) = t exp(h(t) - x^2)`` with ``t = 2 / (2 + x)`` and ``h`` one polynomial of degree 12 in
``t`` on [0, 1] (the form of Press et al.'s ``erfcc``, fitted here the same way), 7e-9 relative,
against float32's 6e-8, computed in float64 blocks that stay in cache; `gelu_float32` gives GELU and
its slope from one such erfc.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np

_SMALL_DEGREE = 24
_ERFCX_BREAKS = (0.0, 1.0, 2.0, 3.5, 5.5, 9.0, 15.0, 26.5)
_ERFCX_DEGREE = 30
_FLOAT32_DEGREE = 12


def _chebyshev_fit(f, lo: float, hi: float, degree: int) -> np.ndarray:
    from numpy.polynomial import chebyshev

    def on_interval(t):
        x = lo + (np.asarray(t) + 1.0) * (hi - lo) / 2.0
        return np.array([f(v) for v in np.ravel(x)]).reshape(np.shape(x))

    return chebyshev.chebinterpolate(on_interval, degree)


@cache
def _pieces():
    # Chebyshev nodes never include x = 0, so erf(x)/x is well defined at every node
    small = _chebyshev_fit(lambda x: math.erf(x) / x, 0.0, 1.0, _SMALL_DEGREE)
    erfcx = tuple(
        (
            lo,
            hi,
            _chebyshev_fit(
                lambda x: math.erfc(x) / float(_exp_minus_square(np.array([x]))[0]), lo, hi, _ERFCX_DEGREE
            ),
        )
        for lo, hi in itertools.pairwise(_ERFCX_BREAKS)
    )
    return small, erfcx


def _eval(coef: np.ndarray, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    from numpy.polynomial import chebyshev

    return chebyshev.chebval((x - lo) * (2.0 / (hi - lo)) - 1.0, coef)


def _erfcx_scalar(x: float) -> float:
    """exp(x^2) erfc(x) for x >= 0; beyond 25 (where erfc underflows), its asymptotic series."""
    if x < 25.0:
        return math.erfc(x) * math.exp(x * x)
    total, term = 1.0, 1.0
    for n in range(1, 10):  # (-1)^n (2n-1)!! / (2x^2)^n: below 1e-20 by n = 9 at x = 25
        term *= -(2 * n - 1) / (2 * x * x)
        total += term
    return total / (x * math.sqrt(math.pi))


@cache
def _float32_coefficients() -> np.ndarray:
    """h(t) = log(erfcx(x) / t), x = 2/t - 2, in powers of t (lowest first; all below 4 in size, so
    Horner's sums on [0, 1] lose nothing that matters at float32's precision)."""
    from numpy.polynomial import chebyshev

    def h(t: float) -> float:
        x = 2.0 / t - 2.0
        return math.log(_erfcx_scalar(x) * (1.0 + x / 2.0))

    in_u = chebyshev.cheb2poly(_chebyshev_fit(h, 0.0, 1.0, _FLOAT32_DEGREE))  # u = 2t - 1
    return _compose(in_u)


def _compose(in_u: np.ndarray) -> np.ndarray:
    """Coefficients in t of the polynomial whose coefficients in u = 2t - 1 are *in_u*."""
    from numpy.polynomial import polynomial

    out = np.zeros(1)
    for k, c in enumerate(in_u):
        out = polynomial.polyadd(out, c * polynomial.polypow([-1.0, 2.0], k))
    return out


# float32 work goes through in blocks of this many entries: its float64 buffers stay in cache and
# are allocated once per call (fresh large arrays cost page faults, more than the arithmetic)
_BLOCK32 = 65536


def _erfc32_block(x: np.ndarray, buffers: np.ndarray) -> np.ndarray:
    """erfc of the float32 block *x* (any sign) to 7e-9 relative, in float64: erfc(|x|) =
    t exp(h(t) - x^2), t = 2 / (2 + |x|), and 2 minus it where x < 0 (nan stays nan). *buffers*
    is float64 scratch of shape (4, >= len(x)); the result is a view of one of its rows."""
    coefficients = _float32_coefficients()
    ax, t, sign, h = (row[: len(x)] for row in buffers)
    np.abs(x, out=ax)
    np.add(ax, 2.0, out=t)
    np.divide(2.0, t, out=t)
    np.multiply(t, coefficients[-1], out=h)  # Horner, in place
    h += coefficients[-2]
    for c in coefficients[-3::-1]:
        h *= t
        h += c
    np.square(ax, out=ax)
    h -= ax
    np.exp(h, out=h)
    h *= t
    # where x < 0, 2 - h: as h * s - (s - 1) with s = +-1, each step exact but the last (one rounding,
    # as 2 - h's); a masked ``where=`` loop took half of the whole function's time
    np.copysign(1.0, x, out=sign)
    h *= sign
    sign -= 1.0
    h -= sign
    return h


# entries per part of a float32 array: the parts run on `parallel.map_chunks` (numpy's loops let go
# of the GIL), each with its own block buffers
_PART32 = 1 << 19


def _by_parts(n: int, work) -> None:
    """work(blocks, buffers) for each part of range(n), in parallel: *blocks* the part's slices of
    `_BLOCK32` entries, *buffers* its float64 scratch for `_erfc32_block`."""
    from .parallel import map_chunks, spans

    def part(whole):
        work(spans(whole.stop, _BLOCK32, whole.start), np.empty((4, min(whole.stop - whole.start, _BLOCK32))))

    map_chunks(part, spans(n, _PART32))


def _erfc_float32(x: np.ndarray) -> np.ndarray:
    """erfc of float32 *x*, float32, block by block (`_BLOCK32`)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape, dtype=np.float32)

    def work(blocks, buffers):
        for block in blocks:
            out[block] = _erfc32_block(flat[block], buffers)

    _by_parts(flat.size, work)
    return out.reshape(np.shape(x))


_MINUS_SQRT_HALF = -1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu_float32(z: np.ndarray, value: bool = True, slope: bool = False, cdf: bool = False):
    """The exact GELU of float32 *z*, z Phi(z), and/or its slope Phi(z) + z phi(z), and/or Phi(z), as
    the float32 forms ``z * normal_cdf(z)``, ``normal_cdf(z) + z * normal_pdf(z)`` and
    ``normal_cdf(z)`` compute them, number for number, in one pass of blocks: Phi is computed once for
    all, and every temporary is a block. Returns the one asked for, or a tuple in that order."""
    flat = np.ascontiguousarray(z).reshape(-1)
    n = flat.size
    outs = [np.empty(n, dtype=np.float32) for wanted in (value, slope, cdf) if wanted]

    def work(blocks, buffers):
        m = blocks[0].stop - blocks[0].start
        x, phi, pdf = (np.empty(m, np.float32) for _ in range(3))
        for block in blocks:
            zb = flat[block]
            k = len(zb)
            xb, cb, pb = x[:k], phi[:k], pdf[:k]
            np.multiply(zb, np.float32(_MINUS_SQRT_HALF), out=xb)  # the argument, rounded to float32
            np.copyto(cb, _erfc32_block(xb, buffers), casting="same_kind")
            cb *= np.float32(0.5)
            i = 0
            if value:
                np.multiply(zb, cb, out=outs[0][block])
                i = 1
            if slope:
                np.multiply(zb, np.float32(-0.5), out=pb)
                pb *= zb
                np.exp(pb, out=pb)
                pb *= np.float32(_INV_SQRT_2PI)
                pb *= zb
                np.add(cb, pb, out=outs[i][block])
                i += 1
            if cdf:
                outs[i][block] = cb

    with np.errstate(under="ignore"):
        _by_parts(n, work)
    shaped = [out.reshape(np.shape(z)) for out in outs]
    return tuple(shaped) if len(shaped) > 1 else shaped[0]


def _erfc_nonneg(ax: np.ndarray) -> np.ndarray:
    """erfc(x) for x >= 0 (float64), with relative precision into the far tail."""
    _, erfcx = _pieces()
    out = np.zeros_like(ax)  # x >= 26.5 (and inf): erfc < 1e-306, taken as 0
    for lo, hi, coef in erfcx:
        mask = (ax >= lo) & (ax < hi)
        if mask.any():
            x = ax[mask]
            out[mask] = _eval(coef, x, lo, hi) * _exp_minus_square(x)
    return out


def _exp_minus_square(x: np.ndarray) -> np.ndarray:
    """exp(-x^2) without the rounding error of x*x (relative 1e-16 * x^2, i.e. 6e-14 at x = 23):
    split x = head + tail with a 24-bit head, whose square is exact in float64."""
    head = x.astype(np.float32).astype(np.float64)
    return np.exp(-head * head) * np.exp(-(x - head) * (x + head))


def _as_float(x) -> tuple[np.ndarray, np.dtype]:
    x = np.asarray(x)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    return x.astype(np.float64, copy=False), dtype


def erfc(x) -> np.ndarray:
    """The complementary error function 1 - erf(x), elementwise; keeps float32 input float32."""
    if np.asarray(x).dtype == np.float32:
        with np.errstate(under="ignore"):
            return _erfc_float32(np.asarray(x))
    x64, dtype = _as_float(x)
    with np.errstate(under="ignore"):
        out = _erfc_nonneg(np.abs(x64))
        out[np.isnan(x64)] = np.nan
    negative = x64 < 0  # there 2 - erfc(-x); selected by arithmetic (exact), np.where is 15x slower
    out = np.logical_not(negative) * out + negative * (2.0 - out)
    return out.astype(dtype, copy=False)


def erf(x) -> np.ndarray:
    """The error function, elementwise; keeps float32 input float32."""
    x64, dtype = _as_float(x)
    ax = np.abs(x64)
    small_coef, _ = _pieces()
    out = np.empty_like(ax)
    small = ax < 1.0
    out[small] = _eval(small_coef, ax[small], 0.0, 1.0) * ax[small]
    with np.errstate(under="ignore"):
        out[~small] = 1.0 - _erfc_nonneg(ax[~small])
    out[np.isnan(x64)] = np.nan
    return np.copysign(out, x64).astype(dtype, copy=False)


def normal_cdf(x) -> np.ndarray:
    """Phi(x) = erfc(-x / sqrt 2) / 2, with full relative precision for very negative x."""
    x = np.asarray(x)
    return 0.5 * erfc(x * (-1.0 / math.sqrt(2.0)))


def normal_pdf(x) -> np.ndarray:
    """phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    x = np.asarray(x)
    return np.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))


@cache
def _hermite_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    from numpy.polynomial import hermite_e

    nodes, weights = hermite_e.hermegauss(n)
    return nodes, weights / math.sqrt(2.0 * math.pi)


def gaussian_expectation(f, n: int = 101) -> float:
    """E[f(z)] for z ~ N(0, 1), by n-point Gauss-Hermite quadrature (probabilists' weight)."""
    nodes, weights = _hermite_nodes(n)
    return float(np.dot(weights, f(nodes)))
