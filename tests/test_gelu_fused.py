"""float32 GELU in one pass (core.special.gelu_float32): the value and the slope are the numbers of
the two separate forms, whatever the block size, and a training step that takes the slope with the
forward pass trains to the same numbers as one that takes it in the backward pass."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initdiag.analysis.train import TrainSettings, train
from initdiag.core import activations, special
from initdiag.core.activations import get_activation

Z = np.concatenate(
    [
        np.linspace(-40, 40, 40001),
        np.random.default_rng(8).standard_normal(30000) * 4,
        [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e-45, 3.4e38, -3.4e38],
    ]
).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_with_derivative_is_the_two_calls(dtype):
    gelu = get_activation("gelu")
    z = Z.astype(dtype)
    with np.errstate(all="ignore"):
        a, slope = gelu.with_derivative(z)
        assert a.dtype == slope.dtype == dtype
        assert np.array_equal(a, gelu(z), equal_nan=True)
        assert np.array_equal(slope, gelu.derivative(z, a), equal_nan=True)
    assert gelu.fused and not get_activation("tanh").fused


def test_blocks_change_no_number(monkeypatch):
    with np.errstate(all="ignore"):
        whole = special.gelu_float32(Z, slope=True)
        monkeypatch.setattr(special, "_BLOCK32", 7)
        for got, want in zip(special.gelu_float32(Z, slope=True), whole, strict=True):
            assert np.array_equal(got, want, equal_nan=True)
        square = Z[:40000].reshape(200, 200)
        assert special.gelu_float32(square).shape == (200, 200)
        assert special.gelu_float32(np.float32(1.0)).shape == ()


def test_float32_slope_is_accurate():
    z = np.linspace(-9, 9, 18001).astype(np.float32)
    argument = z * np.float32(-1 / math.sqrt(2))  # as the value's: PyTorch's float32 argument
    exact = np.array(
        [0.5 * math.erfc(float(u)) + float(v) * math.exp(-float(v) ** 2 / 2) / math.sqrt(2 * math.pi)
         for v, u in zip(z, argument, strict=True)]
    )  # fmt: skip
    slope = get_activation("gelu").derivative(z, None)
    # Phi + z phi in float32: where the two cancel (the slope's zero near z = -0.75) the error is the
    # terms' rounding (below 1 in size), not the slope's
    np.testing.assert_allclose(slope, exact, rtol=4 * 2.0**-24, atol=1e-7)


def test_training_takes_the_slope_with_the_forward_pass_to_the_same_numbers(monkeypatch):
    settings = TrainSettings(iters=200, trials=2, act="gelu")
    fused = train(["he", "normal:1"], settings)
    monkeypatch.setattr(activations.Activation, "fused", property(lambda self: False))
    separate = train(["he", "normal:1"], settings)
    for a, b in zip(fused.results, separate.results, strict=True):
        assert np.array_equal(a.final_loss, b.final_loss) and np.array_equal(a.loss_curve, b.loss_curve)


def test_parts_on_threads_change_no_number(monkeypatch, two_threads):
    """float32 erfc and GELU run in parts on threads: the numbers of one part on one thread."""
    with np.errstate(all="ignore"):
        whole = [special.erfc(Z), *special.gelu_float32(Z, slope=True, cdf=True)]
        monkeypatch.setattr(special, "_PART32", 1000)
        monkeypatch.setattr(special, "_BLOCK32", 300)
        parted = [special.erfc(Z), *special.gelu_float32(Z, slope=True, cdf=True)]
    for got, want in zip(parted, whole, strict=True):
        assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(whole[3], special.normal_cdf(Z), equal_nan=True)  # Phi, as normal_cdf's
