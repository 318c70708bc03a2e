"""initdiag against real PyTorch, through a stored fixture (no torch needed to run this).

``tests/data/torch_reference.npz`` is written by ``tests/reference/make_torch_reference.py`` (run it
with a Python that has torch; it does not import initdiag). It holds activations and their autograd
derivatives on a grid, ``calculate_gain``, the three losses with dL/dY, and a 7 -> 6 -> 5 -> 4 dense
stack (tanh, gelu, linear) with z, a, dW, db per layer and dL/dX for each loss, and a small conv net
in train mode (conv tanh, BatchNorm2d relu, a strided residual block with a 1x1 projection shortcut
and a LayerNorm silu branch, max pool, a fixed dropout mask, flatten, dense gelu) with z and a per
layer, every parameter's gradient and dL/dX for the unit loss. Torch's arrays are NCHW, initdiag's
channels-last (N, H, W, C): the test converts the input and parameters in and the results back out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from initdiag.core.activations import calculate_gain, get_activation
from initdiag.core.layers import (
    BatchNorm,
    Conv2d,
    Dense,
    Dropout,
    Flatten,
    LayerNorm,
    MaxPool2d,
    Residual,
    ResidualSum,
    run_backward,
    run_forward,
)
from initdiag.core.losses import loss_and_grad

DATA = Path(__file__).resolve().parent / "data" / "torch_reference.npz"

ACTIVATIONS = (
    "relu",
    "leaky_relu",
    "leaky_relu:0.2",
    "elu",
    "elu:0.5",
    "selu",
    "gelu",
    "silu",
    "softplus",
    "sigmoid",
    "tanh",
)
GAINS = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "leaky_relu:0.2", "selu")
LOSSES = ("unit", "mse", "xent")
N_LAYERS = 3

# Activations agree to a few ulp of relative error, with an absolute floor of 1e-15 for values that
# come out of a difference of nearly equal numbers in either library:
# - tanh' = 1 - a^2 for |z| >= 5.3 (both libraries use this form): one ulp of difference in tanh(z)
#   between numpy and torch moves it by ~2e-16 absolute (1.2e-10 relative at z = -7.2).
# - gelu for z < -3.7: torch forms Phi(z) = (1 + erf(z / sqrt 2)) / 2, which cancels in the tail
#   (at z = -8 torch gives -4.885e-15, the true value is -4.977e-15); initdiag uses erfc and is within
#   1.5e-13 relative of the true value down to z = -30 (test_activations.py checks that). So against
#   torch, gelu gets torch's own absolute error, 1e-14, as its floor.
ACT_RTOL, ACT_ATOL = 1e-12, 1e-15
ACT_ATOL_GELU = 1e-14
GAIN_TOL = 1e-15
LOSS_RTOL, LOSS_ATOL = 1e-12, 1e-15
# The stack's second layer is gelu with pre-activations down to -4.17, where torch's gelu carries
# the tail error above (abs ~1e-15). Everything else agrees to < 3e-12 relative (matmul summation
# order). Same 1e-14 floor as gelu, for the same reason.
STACK_RTOL, STACK_ATOL = 1e-12, 1e-14
# The conv net: float64 throughout, so the two libraries differ only in summation order (im2col
# matmul against torch's convolution kernels, the order of the batch and per-sample means in the two
# norms) and by an ulp or so in tanh, silu and gelu (dense1's z stays above -2.5, clear of torch's gelu
# tail). Observed against torch 2.13: every absolute error <= 2.5e-15; relative error <= 3e-13 for
# the forward values and parameter gradients, and up to 4.3e-12 in dL/dX, at two entries of ~1e-5
# where the sum of contributions of order 1e-3 nearly cancels (absolute error 3e-17 there). So rtol
# 1e-12 as for the stack, with the stack's absolute floor 1e-14: about 4x the largest absolute error,
# and 4e-9 of the smallest nonzero entry in any compared array (2.4e-6, in dL/dX), so a wrong sign,
# a gamma left at 1 or a permuted axis still fails everywhere. The zeros (relu, the dropout mask, the
# positions the max pool drops: 74 of the 150 entries of res1.ln1's dgamma and dbeta) are exact zeros
# in both.
CNN_RTOL, CNN_ATOL = 1e-12, 1e-14
CNN_LAYERS = (
    "conv1",
    "bn1",
    "res1.conv1",
    "res1.ln1",
    "res1",
    "maxpool1",
    "dropout1",
    "flatten1",
    "dense1",
)
# (layer, torch gradient key, initdiag attribute); the key's layout is the stored parameter's
CNN_GRADS = (
    ("conv1", "dW", "dweight"),
    ("conv1", "db", "db"),
    ("bn1", "dgamma", "dweight"),
    ("bn1", "dbeta", "dbeta"),
    ("res1.conv1", "dW", "dweight"),
    ("res1.conv1", "db", "db"),
    ("res1.ln1", "dgamma", "dweight"),
    ("res1.ln1", "dbeta", "dbeta"),
    ("res1", "dP", "dweight"),
    ("dense1", "dW", "dweight"),
    ("dense1", "db", "db"),
)
# A fixture of ~250 kB: the conv net's activations dominate (float64 random values barely compress).
FIXTURE_MAX_BYTES = 400_000


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA) as data:
        return {key: data[key] for key in data.files}


def test_fixture_is_float64_and_records_torch(ref):
    assert str(ref["torch_version"]).startswith("2.")
    for key, value in ref.items():
        if value.dtype.kind == "f":
            assert value.dtype == np.float64, key
    assert DATA.stat().st_size < FIXTURE_MAX_BYTES


def test_grid_has_specials(ref):
    z = ref["act/z"]
    for special in (0.0, 1e-8, -1e-8, 0.5, -0.5, 20.0, -20.0, 30.0, -30.0, -8.0, 8.0):
        assert special in z


# --- activations -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_value(ref, name):
    z = ref["act/z"]
    a = get_activation(name)(z.copy())
    assert a.dtype == np.float64
    atol = ACT_ATOL_GELU if name == "gelu" else ACT_ATOL
    np.testing.assert_allclose(a, ref[f"act/{name}/value"], rtol=ACT_RTOL, atol=atol, err_msg=name)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_derivative(ref, name):
    z = ref["act/z"]
    act = get_activation(name)
    d = act.derivative(z.copy(), act(z.copy()))
    atol = ACT_ATOL_GELU if name == "gelu" else ACT_ATOL
    np.testing.assert_allclose(d, ref[f"act/{name}/grad"], rtol=ACT_RTOL, atol=atol, err_msg=name)


def test_softplus_above_torch_threshold(ref):
    """torch's softplus returns z itself for z > 20 (threshold), initdiag log(1 + exp(z)) exactly.
    The gap log1p(exp(-z)) is 9.4e-14 at z = 30: a few dozen ulp of 30, but ~3e-15 relative, so
    rtol 1e-12 holds with no absolute floor; the derivative differs by exp(-30) ~ 9.4e-14 relative."""
    z = ref["act/z"]
    above = z > 20
    assert above.any()
    np.testing.assert_array_equal(ref["act/softplus/value"][above], z[above])  # torch's linear branch
    np.testing.assert_array_equal(ref["act/softplus/grad"][above], 1.0)
    act = get_activation("softplus")
    a = act(z[above])
    np.testing.assert_allclose(a, z[above], rtol=1e-12, atol=0)
    np.testing.assert_allclose(act.derivative(z[above], a), 1.0, rtol=1e-12, atol=0)


def test_derivatives_at_zero_follow_torch(ref):
    """Subgradient conventions at z = 0: relu' = 0, leaky_relu' = slope, elu' = alpha."""
    z = ref["act/z"]
    i = int(np.flatnonzero(z == 0.0)[0])
    expected = {"relu": 0.0, "leaky_relu": 0.01, "leaky_relu:0.2": 0.2, "elu": 1.0, "elu:0.5": 0.5}
    for name, value in expected.items():
        assert ref[f"act/{name}/grad"][i] == pytest.approx(value, rel=1e-15), name
        act = get_activation(name)
        zero = z[i : i + 1].copy()
        assert act.derivative(zero, act(zero))[0] == pytest.approx(value, rel=1e-15), name


# --- gains -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", GAINS)
def test_calculate_gain(ref, spec):
    name, _, param = spec.partition(":")
    got = calculate_gain(name, float(param) if param else None)
    assert got == pytest.approx(float(ref[f"gain/{spec}"]), rel=GAIN_TOL, abs=GAIN_TOL)


# --- losses ------------------------------------------------------------------------------------


def _loss_target(ref, loss, prefix):
    if prefix == "loss":
        return {"unit": ref["loss/G"], "mse": ref["loss/T"], "xent": ref["loss/labels"]}[loss]
    return ref[f"stack/target/{loss}"]


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_and_grad(ref, loss):
    Y = ref["loss/Y"].copy()
    value, grad = loss_and_grad(loss, Y, _loss_target(ref, loss, "loss"))
    assert value == pytest.approx(float(ref[f"loss/{loss}/value"]), rel=LOSS_RTOL, abs=LOSS_ATOL)
    assert grad.shape == Y.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, ref[f"loss/{loss}/grad"], rtol=LOSS_RTOL, atol=LOSS_ATOL, err_msg=loss)


# --- dense stack -------------------------------------------------------------------------------


def _run_stack(ref, loss):
    acts = [str(a) for a in ref["stack/acts"]]
    layers = [
        Dense(f"L{i}", ref[f"stack/L{i}/W"].copy(), ref[f"stack/L{i}/b"].copy(), get_activation(act))
        for i, act in enumerate(acts, start=1)
    ]
    h = ref["stack/X"].copy()
    for layer in layers:
        h = layer.forward(h)
    value, grad = loss_and_grad(loss, h, _loss_target(ref, loss, "stack"))
    forward = {layer.name: (layer.z.copy(), layer.a.copy()) for layer in layers}
    for layer in reversed(layers):
        grad = layer.backward(grad)
    return value, forward, layers, grad


@pytest.fixture(scope="module")
def stacks(ref):
    return {loss: _run_stack(ref, loss) for loss in LOSSES}


def test_stack_activations(ref):
    assert [str(a) for a in ref["stack/acts"]] == ["tanh", "gelu", "linear"]


@pytest.mark.parametrize("loss", LOSSES)
def test_stack_loss_value(ref, stacks, loss):
    value = stacks[loss][0]
    assert value == pytest.approx(float(ref[f"stack/{loss}/value"]), rel=STACK_RTOL, abs=STACK_ATOL)


@pytest.mark.parametrize("what", ["z", "a"])
@pytest.mark.parametrize("layer", [f"L{i}" for i in range(1, N_LAYERS + 1)])
@pytest.mark.parametrize("loss", LOSSES)
def test_stack_forward(ref, stacks, loss, layer, what):
    z, a = stacks[loss][1][layer]
    got = {"z": z, "a": a}[what]
    np.testing.assert_allclose(
        got, ref[f"stack/{loss}/{layer}/{what}"], rtol=STACK_RTOL, atol=STACK_ATOL, err_msg=f"{loss} {layer}"
    )


@pytest.mark.parametrize("what", ["dW", "db"])
@pytest.mark.parametrize("layer", [f"L{i}" for i in range(1, N_LAYERS + 1)])
@pytest.mark.parametrize("loss", LOSSES)
def test_stack_parameter_gradients(ref, stacks, loss, layer, what):
    dense = next(d for d in stacks[loss][2] if d.name == layer)
    got = getattr(dense, what)
    expected = ref[f"stack/{loss}/{layer}/{what}"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=STACK_RTOL, atol=STACK_ATOL, err_msg=f"{loss} {layer}")


@pytest.mark.parametrize("loss", LOSSES)
def test_stack_input_gradient(ref, stacks, loss):
    dX = stacks[loss][3]
    assert dX.shape == (32, 7)
    np.testing.assert_allclose(dX, ref[f"stack/{loss}/dX"], rtol=STACK_RTOL, atol=STACK_ATOL, err_msg=loss)


# --- conv net ----------------------------------------------------------------------------------


def _nhwc(x: np.ndarray) -> np.ndarray:
    """NCHW (torch) -> NHWC (initdiag)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _nchw(x: np.ndarray) -> np.ndarray:
    """NHWC (initdiag) -> NCHW (torch); flat (N, D) arrays pass unchanged."""
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


def _chw_to_hwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(1, 2, 0))


def _cnn_layers(ref):
    def p(key):
        return ref[f"cnn/{key}"].copy()

    eps = float(ref["cnn/eps"])
    conv1 = Conv2d("conv1", p("conv1/W"), p("conv1/b"), get_activation("tanh"), 1, (1, 1, 1, 1))
    bn1 = BatchNorm("bn1", p("bn1/gamma"), p("bn1/beta"), get_activation("relu"), eps)
    res_conv1 = Conv2d(
        "res1.conv1", p("res1.conv1/W"), p("res1.conv1/b"), get_activation("linear"), 2, (1, 1, 1, 1)
    )
    # torch's LayerNorm([6, 5, 5]) holds gamma and beta as (C, H, W); initdiag's sample shape is (H, W, C)
    ln1 = LayerNorm(
        "res1.ln1",
        _chw_to_hwc(p("res1.ln1/gamma")),
        _chw_to_hwc(p("res1.ln1/beta")),
        get_activation("silu"),
        eps,
    )
    add = ResidualSum("res1", float(ref["cnn/res1/scale"]), p("res1/P"), stride=2)
    maxpool1 = MaxPool2d("maxpool1", 2)
    dropout1 = Dropout("dropout1", _nhwc(p("dropout1/mask")))
    flatten1 = Flatten("flatten1")
    dense1 = Dense("dense1", p("dense1/W"), p("dense1/b"), get_activation("gelu"))
    nodes = [conv1, bn1, Residual(branch=[res_conv1, ln1], add=add), maxpool1, dropout1, flatten1, dense1]
    layers = {
        layer.name: layer for layer in (conv1, bn1, res_conv1, ln1, add, maxpool1, dropout1, flatten1, dense1)
    }
    return nodes, layers


@pytest.fixture(scope="module")
def cnn(ref):
    nodes, layers = _cnn_layers(ref)
    X = _nhwc(ref["cnn/X"])
    Y = run_forward(nodes, X)
    value, grad = loss_and_grad("unit", Y, ref["cnn/G"])
    # backward frees nothing without a hook, so the forward caches are still there afterwards
    dX = run_backward(nodes, grad)
    return {"value": value, "Y": Y, "layers": layers, "dX": dX}


def test_cnn_fixture_is_nonlinear(ref):
    """The fixture exercises what it is meant to: tanh beyond its linear range, relu and the
    dropout mask zeroing entries, gamma and beta away from 1 and 0, no ties in the max pool."""
    assert np.abs(ref["cnn/conv1/z"]).max() > 1.5
    assert 0.2 < np.mean(ref["cnn/bn1/a"] == 0) < 0.8
    assert 0.1 < np.mean(ref["cnn/dropout1/mask"] == 0) < 0.4
    for norm in ("bn1", "res1.ln1"):
        assert np.abs(ref[f"cnn/{norm}/gamma"] - 1).mean() > 0.03, norm  # drawn 1 + 0.1 N(0, 1)
        assert np.abs(ref[f"cnn/{norm}/beta"]).mean() > 0.03, norm  # drawn 0.1 N(0, 1)
    windows = ref["cnn/res1/a"][:, :, :4, :4].reshape(8, 6, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    top2 = np.sort(windows.reshape(8, 6, 2, 2, 4), axis=-1)[..., -2:]
    assert np.min(top2[..., 1] - top2[..., 0]) > 1e-6


def test_cnn_loss_value(ref, cnn):
    assert cnn["value"] == pytest.approx(float(ref["cnn/value"]), rel=CNN_RTOL, abs=CNN_ATOL)


@pytest.mark.parametrize("what", ["z", "a"])
@pytest.mark.parametrize("layer", CNN_LAYERS)
def test_cnn_forward(ref, cnn, layer, what):
    got = _nchw(getattr(cnn["layers"][layer], what))
    expected = ref[f"cnn/{layer}/{what}"]
    assert got.shape == expected.shape, layer
    np.testing.assert_allclose(got, expected, rtol=CNN_RTOL, atol=CNN_ATOL, err_msg=f"{layer} {what}")


@pytest.mark.parametrize(("layer", "key", "attr"), CNN_GRADS)
def test_cnn_parameter_gradients(ref, cnn, layer, key, attr):
    got = getattr(cnn["layers"][layer], attr)
    if layer == "res1.ln1":
        got = got.transpose(2, 0, 1)  # initdiag's (H, W, C) -> torch's (C, H, W)
    expected = ref[f"cnn/{layer}/{key}"]
    assert got.shape == expected.shape, f"{layer} {key}"
    np.testing.assert_allclose(got, expected, rtol=CNN_RTOL, atol=CNN_ATOL, err_msg=f"{layer} {key}")


def test_cnn_input_gradient(ref, cnn):
    dX = _nchw(cnn["dX"])
    assert dX.shape == (8, 3, 9, 9)
    np.testing.assert_allclose(dX, ref["cnn/dX"], rtol=CNN_RTOL, atol=CNN_ATOL)
