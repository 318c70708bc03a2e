"""Dynamical isometry: the input-output Jacobian's singular values on known facts (Saxe et al. 2014;
Pennington, Schoenholz & Ganguli 2017)."""

from __future__ import annotations

import numpy as np
import pytest

import initdiag
from initdiag.analysis.jacobian import spectrum


def test_orthogonal_linear_stack_has_every_singular_value_gain_to_the_depth():
    result = initdiag.probe(
        "64,64x5", act="linear", init="orthogonal:gain=1.1", jacobian=True, dtype="float64"
    )
    jac = result.summary.jacobian
    assert jac["exact"] and jac["samples"] == 4
    assert jac["max_singular_value"] == pytest.approx(1.1**5, rel=1e-12)
    assert jac["min_singular_value"] == pytest.approx(1.1**5, rel=1e-12)
    assert jac["mean_sq_singular_value"] == pytest.approx(1.1**10, rel=1e-12)
    assert jac["log_singular_std"] < 1e-12 and jac["rank_fraction"] == 1.0


def test_orthogonal_tanh_is_far_better_conditioned_than_gaussian_relu():
    tanh = initdiag.probe("256,256x32", act="tanh", init="orthogonal", jacobian=True).summary.jacobian
    relu = initdiag.probe("256,256x32", act="relu", init="he", jacobian=True).summary.jacobian
    assert tanh["rank_fraction"] == 1.0 and relu["rank_fraction"] < 0.5  # relu zeroes whole directions
    assert tanh["log_singular_std"] < 0.5 * relu["log_singular_std"]


def test_the_jacobian_is_the_product_of_the_layer_maps():
    rng = np.random.default_rng(0)
    Ws = [rng.normal(size=(5, 4)), rng.normal(size=(4, 3))]
    slopes = [rng.uniform(0.1, 1, size=(2, 4)), None]
    jac = spectrum(Ws, slopes, rng)
    J = [Ws[0] * slopes[0][s] @ Ws[1] for s in range(2)]  # W_1 D_1 W_2
    sigma = np.concatenate([np.linalg.svd(j, compute_uv=False) for j in J])
    assert jac["mean_sq_singular_value"] == pytest.approx(np.mean(sigma**2), rel=1e-12)
    assert jac["max_singular_value"] == pytest.approx(sigma.max(), rel=1e-12)


def test_randomized_estimate_beyond_the_exact_width():
    jac = initdiag.probe("1100,1100x2", act="linear", init="orthogonal:gain=0.9", jacobian=True,
                         batch=8).summary.jacobian  # fmt: skip
    assert not jac["exact"]
    assert jac["mean_sq_singular_value"] == pytest.approx(0.9**4, rel=0.02)


def test_off_by_default_and_a_reason_where_it_does_not_apply():
    assert "jacobian" not in initdiag.probe("16,16,4").to_dict()["summary"]
    conv = initdiag.probe("16,16x2,4", norm="batch", jacobian=True).summary.jacobian
    assert "dense stacks" in conv["reason"]
