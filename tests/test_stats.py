"""core.stats.moments: float32 data summed in blocks without a float64 copy, against the float64
result computed from the same float32 numbers, on data made to break it (large means, tiny
variances, a mean far from the first entries, tiny and huge scales, non-finite values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initdiag.core import stats
from initdiag.core.stats import moments


def exact(x: np.ndarray) -> tuple[float, float, float]:
    """mean, population variance, E[x^2] of the float32 numbers, in float64 (two passes)."""
    d = x.astype(np.float64).ravel()
    mean = math.fsum(d) / d.size
    var = math.fsum((d - mean) ** 2) / d.size
    return mean, var, var + mean * mean


def assert_close(x, rtol=1e-6):
    got, want = moments(x), exact(x)
    scale = math.sqrt(want[2])  # a mean near 0 is compared at the data's scale
    assert abs(got.mean - want[0]) <= rtol * max(abs(want[0]), 1e-3 * scale), (got, want)
    assert abs(got.var - want[1]) <= rtol * want[1], (got, want)
    assert abs(got.second - want[2]) <= rtol * want[2], (got, want)


RNG = np.random.default_rng(17)
CASES = {
    "normal": RNG.standard_normal(1_000_003),
    "large mean, tiny variance": 1e4 + 1e-2 * RNG.standard_normal(300_001),
    "mean 1e3": 1e3 + RNG.standard_normal(200_000),
    "saturated sigmoid": 1 - 1e-4 * RNG.random(500_000),
    "mean far from the first entries": np.concatenate(
        [np.full(5000, -50.0), 7 + RNG.standard_normal(400_000)]
    ),
    "relu outputs": np.maximum(RNG.standard_normal(1 << 20), 0),
    "vanishing gradient": 1e-22 * RNG.standard_normal(70_000),
    "tiny": 3e-18 * RNG.standard_normal(70_000),
    "huge": 1e17 * RNG.standard_normal(70_000),
    "heavy tail": RNG.standard_cauchy(200_000),
    "few": np.array([1.5, 2.5, 4.0]),
    "one": np.array([3.0]),
    "constant": np.full(10_000, 0.1),
    "zeros": np.zeros(66_000),
}


@pytest.mark.parametrize("name", list(CASES))
def test_float32_blocks_match_float64(name):
    assert_close(CASES[name].astype(np.float32))


def test_layouts_and_shapes():
    x = RNG.standard_normal((64, 17, 9, 33)).astype(np.float32)
    assert_close(x)
    assert_close(x.transpose(0, 3, 1, 2))  # a dense layout in another order: no copy
    assert_close(x[:, ::2])  # strided: ravel copies


def test_small_blocks(monkeypatch):
    monkeypatch.setattr(stats, "_BLOCK", 512)
    monkeypatch.setattr(stats, "_ROW", 64)
    for name in ("normal", "large mean, tiny variance", "mean far from the first entries"):
        assert_close(CASES[name].astype(np.float32))


def test_float64_and_nonfinite_as_before():
    x = CASES["large mean, tiny variance"]
    got, want = moments(x), exact(x)
    assert abs(got.var - want[1]) <= 1e-9 * want[1]
    with np.errstate(all="ignore"):  # as the probe calls it
        for bad in (np.inf, -np.inf, np.nan):
            data = CASES["normal"][:1000].astype(np.float32)
            data[500] = bad
            m = moments(data)
            assert math.isnan(m.var) and math.isnan(m.second)
            assert math.isnan(m.mean) if math.isnan(bad) else m.mean == bad
        overflow = np.full(1000, 3e30, dtype=np.float32)  # squares overflow float32, not float64
        assert moments(overflow).second == pytest.approx(9e60, rel=1e-6)
    assert math.isnan(moments(np.zeros(0, dtype=np.float32)).mean)
