"""Mean-field theory (Poole et al. 2016, Schoenholz et al. 2017) against closed forms, published
critical points, and the measurement of wide layers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import initdiag
from initdiag.activations import get_activation
from initdiag.render import THEORY_COLUMNS, _theory_style
from initdiag.theory import expect, layer_predictions, second_moment, slope_moment, stack_theory


def _brute(f, q: float) -> float:
    """E[f(sqrt(q) z)] by a fine trapezoid rule on [-12, 12], split at the kink z = 0."""
    total = 0.0
    for lo, hi in ((-12.0, 0.0), (0.0, 12.0)):
        z = np.linspace(lo, hi, 200_001)
        y = f(math.sqrt(q) * z) * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        total += float(np.trapezoid(y, z))
    return total


@pytest.mark.parametrize("name", ["relu", "leaky_relu:0.2", "tanh", "sigmoid", "gelu", "silu", "elu", "selu"])
@pytest.mark.parametrize("q", [0.3, 1.0, 4.0])
def test_quadrature_against_a_brute_force_integral(name, q):
    act = get_activation(name)
    assert second_moment(act, q) == pytest.approx(_brute(lambda u: act(u) ** 2, q), rel=1e-6)
    assert slope_moment(act, q) == pytest.approx(
        _brute(lambda u: act.derivative(u, act(u)) ** 2, q), rel=2e-4
    )


@pytest.mark.parametrize("name", ["linear", "relu", "leaky_relu:0.2"])
def test_the_quadrature_gives_the_closed_forms(name):
    act = get_activation(name)  # the closed forms skip the quadrature; it must agree with them
    kinked = name != "linear"
    assert expect(lambda u: act(u) ** 2, 3.0, kinked) == pytest.approx(second_moment(act, 3.0), rel=1e-12)
    slope = expect(lambda u: act.derivative(u, act(u)) ** 2, 3.0, kinked)
    assert slope == pytest.approx(slope_moment(act, 3.0), rel=1e-12)


def test_closed_forms_of_relu_and_linear():
    relu, linear = get_activation("relu"), get_activation("linear")
    assert second_moment(relu, 3.0) == pytest.approx(1.5, rel=1e-13)
    assert slope_moment(relu, 3.0) == pytest.approx(0.5, rel=1e-13)
    assert second_moment(linear, 2.5) == pytest.approx(2.5, rel=1e-14)
    # q_l = sigma_w^2 q_{l-1} / 2 + sigma_b^2 for relu; backward chi * fan_out/fan_in per layer
    layers = [(2.0, 0.0, 1.0, relu), (3.0, 0.1, 0.5, relu), (1.0, 0.0, 2.0, linear)]
    p = layer_predictions(layers, input_second=1.0, output_grad_second=1e-4)
    assert [x.preact_var for x in p] == pytest.approx([2.0, 3.0 * 2.0 / 2 + 0.1, 1.0 * 3.1 / 2])
    assert p[2].grad_input_var == pytest.approx(1e-4 * 1.0 * 2.0)
    assert p[1].grad_input_var == pytest.approx(p[2].grad_input_var * 3.0 * 0.5 * 0.5)


def test_critical_points():
    relu = stack_theory(2.0, 0.0, get_activation("relu"))
    assert (
        relu.chi_1 == pytest.approx(1.0, abs=1e-12) and relu.phase == "critical" and math.isnan(relu.q_star)
    )
    assert stack_theory(1.0, 0.0, get_activation("relu")).phase == "ordered"
    tanh = stack_theory(1.0, 0.0, get_activation("tanh"))  # sigma_w^2 = 1, sigma_b = 0: q* -> 0, chi -> 1
    assert tanh.chi_1 == pytest.approx(1.0, abs=2e-3) and tanh.q_star < 1e-3
    ordered = stack_theory(0.5, 0.0, get_activation("tanh"))
    assert ordered.phase == "ordered" and ordered.q_star == 0
    assert ordered.xi_grad == pytest.approx(-1 / math.log(0.5))  # chi_1 = sigma_w^2 tanh'(0)^2
    chaotic = stack_theory(4.0, 0.05, get_activation("tanh"))
    assert chaotic.phase == "chaotic" and chaotic.q_star > 0
    assert chaotic.xi_c < chaotic.xi_grad or math.isfinite(chaotic.xi_c)  # correlations converge to c* < 1


@pytest.mark.parametrize(("act", "init"), [("relu", "he"), ("tanh", "xavier"), ("selu", "lecun")])
def test_wide_layers_agree_with_theory_within_ten_percent(act, init):
    result = initdiag.probe("1024,1024x8", act=act, init=init, trials=4)
    for layer in result.layers:
        assert layer.preact_var == pytest.approx(layer.theory_preact_var, rel=0.1), layer.name
        assert layer.grad_input_var == pytest.approx(layer.theory_grad_input_var, rel=0.1), layer.name


def test_theory_summary_and_where_it_does_not_apply():
    he = initdiag.probe("256,256x4,10")
    assert he.summary.theory["phase"] == "critical" and "q is preserved" in he.summary.theory["words"]
    data = he.to_dict()
    assert {"theory_preact_var", "theory_grad_input_var"} <= set(data["layers"][0])
    assert data["summary"]["theory"]["chi_1"] == pytest.approx(1.0)
    off = initdiag.probe("256,256x4,10", theory=False).to_dict()
    assert "theory_preact_var" not in off["layers"][0] and "theory" not in off["summary"]
    lsuv = initdiag.probe("64,64,10", init="lsuv").summary.theory
    assert "data-dependent or unknown weights (lsuv)" in lsuv["reason"]
    ones = initdiag.probe("64,64,10", init="constant:0.1").summary.theory
    assert "non-zero-mean weights" in ones["reason"]
    conv = initdiag.probe("64,64x3,10", norm="batch").summary.theory
    assert conv["reason"] == "mean-field theory here covers dense stacks"


def test_the_table_shows_where_theory_and_measurement_disagree():
    narrow = initdiag.probe("4,4x12", act="relu", init="he", batch=64)
    styles = {_theory_style(THEORY_COLUMNS["z std"], layer) for layer in narrow.layers}
    assert "yellow" in styles  # 4 units: far from the wide-layer limit
    wide = initdiag.probe("1024,1024x2", act="tanh", init="xavier")
    assert {_theory_style(THEORY_COLUMNS["z std"], layer) for layer in wide.layers} == {"dim"}


def test_expect_is_a_gaussian_average():
    assert expect(lambda u: u**2, 2.0) == pytest.approx(2.0, rel=1e-14)
    assert expect(lambda u: u**4, 1.0) == pytest.approx(3.0, rel=1e-12)
