"""Activations: derivatives by finite differences, known values, the erf behind GELU, and the
saturation share against its closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initdiag.core.activations import (
    ACTIVATION_NAMES,
    SELU_ALPHA,
    SELU_SCALE,
    get_activation,
    second_moment_gain,
)
from initdiag.core.special import erf, erfc, gaussian_expectation
from initdiag.core.stats import saturated_fraction
from initdiag.errors import InitdiagError

ALL = [*ACTIVATION_NAMES, "leaky_relu:0.2", "elu:0.5"]


@pytest.mark.parametrize("name", ALL)
def test_derivative_matches_central_differences(name):
    act = get_activation(name)
    z = np.linspace(-6, 6, 2401)
    z = z[np.abs(z) > 1e-3]  # away from the kinks of relu-like functions
    h = 1e-6
    numeric = (act(z + h) - act(z - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(z, act(z)), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ALL)
def test_float32_stays_float32(name):
    act = get_activation(name)
    z = np.linspace(-3, 3, 11, dtype=np.float32)
    a = act(z)
    assert a.dtype == np.float32
    assert act.derivative(z, a).dtype == np.float32


def test_known_values():
    z = np.array([-1.0, 0.0, 1.0, 2.0])
    # GELU(x) = x Phi(x); Phi(1) = 0.8413447460685429
    np.testing.assert_allclose(get_activation("gelu")(z)[2], 0.8413447460685429, rtol=1e-15)
    np.testing.assert_allclose(get_activation("gelu")(z)[0], -(1 - 0.8413447460685429), rtol=1e-14)
    assert get_activation("sigmoid")(np.array([0.0]))[0] == 0.5
    assert get_activation("softplus")(np.array([0.0]))[0] == pytest.approx(math.log(2), rel=1e-15)
    np.testing.assert_allclose(get_activation("silu")(z), z / (1 + np.exp(-z)), rtol=1e-15)
    np.testing.assert_allclose(get_activation("elu")(z)[0], math.exp(-1) - 1, rtol=1e-15)
    # SELU's published constants (Klambauer et al. 2017) and its negative limit -scale*alpha
    assert pytest.approx(1.6732632423543772) == SELU_ALPHA
    assert pytest.approx(1.0507009873554805) == SELU_SCALE
    assert get_activation("selu")(np.array([-50.0]))[0] == pytest.approx(-SELU_SCALE * SELU_ALPHA)
    np.testing.assert_array_equal(get_activation("relu")(z), [0, 0, 1, 2])
    np.testing.assert_allclose(get_activation("leaky_relu:0.2")(z), [-0.2, 0, 1, 2])
    # derivative of relu at 0 is 0, as PyTorch
    assert get_activation("relu").derivative(np.array([0.0]), np.array([0.0]))[0] == 0


def test_gelu_keeps_relative_precision_in_the_tail():
    # exact: gelu(z) = z erfc(-z / sqrt 2) / 2 and gelu'(z) = erfc(-z / sqrt 2) / 2 + z phi(z)
    z = np.linspace(-30, 8, 3801)
    exact = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in z])
    slope = np.array(
        [0.5 * math.erfc(-v / math.sqrt(2)) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in z]
    )
    gelu = get_activation("gelu")
    np.testing.assert_allclose(gelu(z), exact, rtol=1e-12, atol=0)
    np.testing.assert_allclose(gelu.derivative(z, gelu(z)), slope, rtol=1e-12, atol=1e-300)


def test_elu_derivative_keeps_relative_precision_in_the_tail():
    z = np.array([-20.0, -30.0, -100.0])
    np.testing.assert_allclose(
        get_activation("elu").derivative(z, get_activation("elu")(z)), np.exp(z), rtol=1e-14
    )
    selu = get_activation("selu")
    np.testing.assert_allclose(selu.derivative(z, selu(z)), SELU_SCALE * SELU_ALPHA * np.exp(z), rtol=1e-14)


def test_extreme_inputs_stay_finite_and_silent():
    z = np.array([-1e4, -800.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for name in ("sigmoid", "tanh", "softplus", "silu", "elu", "selu", "gelu"):
            act = get_activation(name)
            a = act(z)
            assert np.isfinite(a).all(), name
            assert np.isfinite(act.derivative(z, a)).all(), name


def test_erf_and_erfc_match_the_c_library():
    x = np.concatenate(
        [np.linspace(-7, 7, 50001), np.geomspace(1e-300, 1, 500), -np.geomspace(1e-300, 1, 500)]
    )
    np.testing.assert_allclose(erf(x), [math.erf(v) for v in x], rtol=5e-15, atol=0)
    x = np.linspace(-6, 26.4, 30001)
    np.testing.assert_allclose(erfc(x), [math.erfc(v) for v in x], rtol=3e-14, atol=0)
    assert erfc(np.array([27.0, np.inf]))[0] == 0 and erfc(np.array([-np.inf]))[0] == 2
    assert np.isnan(erf(np.array([np.nan])))[0]
    np.testing.assert_array_equal(erf(np.array([np.inf, -np.inf, 0.0])), [1, -1, 0])


def test_gelu_max_derivative_closed_form():
    # GELU'' = phi(z) (2 - z^2) vanishes at z = sqrt 2: max GELU' = Phi(sqrt 2) + sqrt 2 phi(sqrt 2)
    phi = math.exp(-1) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(1.0))
    assert get_activation("gelu").max_derivative == pytest.approx(big_phi + math.sqrt(2) * phi, rel=1e-9)
    assert get_activation("sigmoid").max_derivative == 0.25
    assert get_activation("selu").max_derivative == pytest.approx(SELU_SCALE * SELU_ALPHA)


def test_second_moment_gain():
    # E[relu(z)^2] = 1/2, E[leaky(z)^2] = (1 + s^2)/2: the gains of PyTorch's table
    assert second_moment_gain(get_activation("relu")) == pytest.approx(math.sqrt(2), rel=1e-12)
    assert second_moment_gain(get_activation("leaky_relu:0.2")) == pytest.approx(
        math.sqrt(2 / 1.04), rel=1e-12
    )
    assert second_moment_gain(get_activation("linear")) == pytest.approx(1.0, rel=1e-12)
    # tanh against a plain Riemann sum of the Gaussian integral
    z = np.linspace(-12, 12, 400001)
    second = np.sum(np.tanh(z) ** 2 * np.exp(-z * z / 2)) * (z[1] - z[0]) / math.sqrt(2 * math.pi)
    assert second_moment_gain(get_activation("tanh")) == pytest.approx(1 / math.sqrt(second), rel=1e-9)
    # gain=auto falls back to it only where PyTorch has no entry
    assert get_activation("tanh").gain == 5 / 3
    assert get_activation("gelu").gain == second_moment_gain(get_activation("gelu"))


def test_gaussian_expectation_moments():
    assert gaussian_expectation(lambda z: z**2) == pytest.approx(1.0, rel=1e-13)
    assert gaussian_expectation(lambda z: z**4) == pytest.approx(3.0, rel=1e-13)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_saturated_fraction_closed_form_for_tanh_and_sigmoid(sigma):
    rng = np.random.default_rng(0)
    z = rng.normal(0, sigma, 400_000)

    def tail(t):  # P(|z| > t) for z ~ N(0, sigma^2)
        return 1 - math.erf(t / (sigma * math.sqrt(2)))

    tanh = get_activation("tanh")
    # 1 - tanh(z)^2 < 0.05  <=>  |z| > atanh(sqrt(0.95))
    expected = tail(math.atanh(math.sqrt(0.95)))
    got = saturated_fraction(tanh.derivative(z, tanh(z)), tanh.max_derivative)
    assert got == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / z.size) + 1e-6)
    sig = get_activation("sigmoid")
    # s (1 - s) < 0.05 * 0.25  <=>  |z| > 2 atanh(sqrt(0.95))
    expected = tail(2 * math.atanh(math.sqrt(0.95)))
    got = saturated_fraction(sig.derivative(z, sig(z)), sig.max_derivative)
    assert got == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / z.size) + 1e-6)


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_saturation_counts_slope_magnitude_for_gelu_and_silu(name):
    # against a Riemann sum of the Gaussian density over {z : |phi'(z)| < 5% of max |phi'|}
    act = get_activation(name)
    grid = np.linspace(-12, 12, 2_400_001)
    slow = np.abs(act.derivative(grid, act(grid))) < 0.05 * act.max_derivative
    density = np.exp(-grid * grid / 2) / math.sqrt(2 * math.pi)
    expected = float(np.sum(density[slow]) * (grid[1] - grid[0]))
    z = np.random.default_rng(1).standard_normal(400_000)
    got = saturated_fraction(act.derivative(z, act(z)), act.max_derivative)
    assert got == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / z.size))
    assert expected < 0.1  # the negative slopes are not saturation


def test_names_and_errors():
    assert str(get_activation("leaky_relu")) == "leaky_relu"
    assert str(get_activation("leaky_relu:0.01")) == "leaky_relu"
    assert str(get_activation("leaky_relu:slope=0.2")) == "leaky_relu:0.2"
    assert str(get_activation("swish")) == "silu"
    with pytest.raises(InitdiagError, match="unknown activation 'bogus'; allowed: linear, relu"):
        get_activation("bogus")
    with pytest.raises(InitdiagError, match="did you mean 'tanh'"):
        get_activation("tahn")
    with pytest.raises(InitdiagError, match="relu takes no positional value"):
        get_activation("relu:0.1")
    with pytest.raises(InitdiagError, match="alpha must be > 0"):
        get_activation("elu:-1")


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0, 1.0, 1.5, -0.5, 3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_leaky_relu_is_its_definition(slope, dtype):
    """z where z > 0, else slope * z (PyTorch's F.leaky_relu), and the slope 1 or s, in the input's
    dtype, also at the special values (slope 0 is relu: 0 at -inf)."""
    act = get_activation(f"leaky_relu:{slope}")
    z = np.concatenate([np.linspace(-5, 5, 1001), [np.nan, -np.inf, np.inf, -0.0, 0.0]]).astype(dtype)
    with np.errstate(invalid="ignore"):
        want = np.where(z > 0, z, slope * z).astype(dtype)
        got = act(z)
    if slope == 0:
        want[z == -np.inf] = 0
    assert got.dtype == dtype and np.array_equal(got, want, equal_nan=True)
    slope_of = act.derivative(z, got)
    assert slope_of.dtype == dtype and np.array_equal(slope_of, np.where(z > 0, 1.0, slope).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_piecewise_activations_are_their_definitions(dtype):
    """sigmoid, elu, selu (and their slopes) select their pieces without np.where: exactly the
    where-definitions, at the special values too; softplus is log(1 + e^z) to 2 ulp (math.log1p)."""
    z = np.concatenate(
        [
            np.linspace(-40, 40, 8001),
            [np.nan, -np.inf, np.inf, -0.0, 0.0, 1e-30, -1e-30, 88.5, -88.5, 700, -700],
        ]
    ).astype(dtype)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(z))
        definitions = {
            "sigmoid": np.where(z >= 0, 1 / (1 + e), e / (1 + e)),
            "elu:0.5": np.where(z > 0, z, 0.5 * np.expm1(np.minimum(z, 0))),
            "selu": SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0))),
        }
        for name, want in definitions.items():
            act = get_activation(name)
            got = act(z)
            assert got.dtype == dtype and np.array_equal(got, want.astype(dtype), equal_nan=True), name
        elu = get_activation("elu:0.5")
        slope = np.where(z > 0, 1.0, 0.5 * np.exp(np.minimum(z, 0))).astype(dtype)
        assert np.array_equal(elu.derivative(z, elu(z)), slope, equal_nan=True)
        softplus = get_activation("softplus")(z)
    finite = np.isfinite(z) & (np.abs(z) < 700)
    exact = np.array([math.log1p(math.exp(float(v))) if v < 30 else float(v) + math.log1p(math.exp(-float(v)))
                      for v in z[finite]])  # fmt: skip
    assert softplus.dtype == dtype
    np.testing.assert_allclose(softplus[finite], exact, rtol=2 * np.finfo(dtype).eps, atol=0)
    assert np.isnan(softplus[np.isnan(z)]).all()
    assert softplus[z == np.inf][0] == np.inf and softplus[z == -np.inf][0] == 0


def test_float32_erfc_is_within_one_ulp_of_the_correctly_rounded_value():
    """float32 input takes the fast fit (7e-9 relative): every value within 1 ulp of math.erfc rounded
    to float32, most exactly it; float32 GELU then within 3 half-ulps of the exact
    GELU of its float32 argument."""
    x = np.linspace(-6, 9.1, 100001).astype(np.float32)  # erfc(9.1) ~ 1e-37: float32's normal range
    want = np.array([math.erfc(float(v)) for v in x]).astype(np.float32)
    got = erfc(x)
    assert got.dtype == np.float32
    ulps = np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1 and (ulps == 0).mean() > 0.95
    special = erfc(np.array([np.nan, np.inf, -np.inf, 0.0, 30.0], dtype=np.float32))
    assert np.isnan(special[0]) and list(special[1:]) == [0, 2, 1, 0]
    z = np.linspace(-12, 8, 20001).astype(np.float32)
    argument = z * np.float32(-1 / math.sqrt(2))  # rounded to float32 as in PyTorch's float32 GELU
    exact = np.array([float(v) * 0.5 * math.erfc(float(u)) for v, u in zip(z, argument, strict=True)])
    gelu = get_activation("gelu")(z)
    assert gelu.dtype == np.float32
    np.testing.assert_allclose(gelu, exact, rtol=3 * 2.0**-24, atol=1e-44)  # erfc, then two roundings
