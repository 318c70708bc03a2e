"""The whole stack's backward pass against central finite differences of the loss, in float64."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from finite_differences import central_difference
from hypothesis import given, settings
from hypothesis import strategies as st

from initdiag.core.activations import get_activation
from initdiag.core.layers import Dense
from initdiag.core.losses import loss_and_grad, make_target

SMOOTH = ["tanh", "sigmoid", "gelu", "silu", "softplus", "elu", "selu", "linear"]


def build(widths, acts, seed):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        W = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out))
        b = rng.normal(0, 0.1, n_out)
        layers.append(Dense(f"dense{i + 1}", W, b, get_activation(acts[i])))
    return layers


def loss_of(layers, X, loss, target):
    h = X
    for layer in layers:
        h = layer.forward(h)
    return loss_and_grad(loss, h, target)[0]


def analytic(layers, X, loss, target):
    h = X
    for layer in layers:
        h = layer.forward(h)
    _, grad = loss_and_grad(loss, h, target)
    for layer in reversed(layers):
        grad = layer.backward(grad)
    return grad, [layer.dW.copy() for layer in layers], [layer.db.copy() for layer in layers]


def check(widths, acts, loss, seed, batch=6, rtol=1e-6):
    layers = build(widths, acts, seed)
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(batch, widths[0]))
    target = make_target(loss, rng, (batch, widths[-1]), np.float64)
    dX, dWs, dbs = analytic(layers, X, loss, target)

    def f():
        return loss_of(layers, X, loss, target)

    scale = max(np.abs(dX).max(), max(np.abs(d).max() for d in dWs))
    # central differences lose about eps * |L| / h to rounding (2e-10 for |L| ~ 1 at h = 1e-6)
    atol = 1e-8 * scale + 1e-15 / 1e-6 * max(1.0, abs(f())) * 2
    for index in [(0, 0), (batch - 1, widths[0] - 1), (batch // 2, widths[0] // 2)]:
        np.testing.assert_allclose(dX[index], central_difference(f, X, index), rtol=rtol, atol=atol)
    for layer, dW, db in zip(layers, dWs, dbs, strict=True):
        for index in [(0, 0), (layer.W.shape[0] - 1, layer.W.shape[1] - 1), (layer.W.shape[0] // 2, 0)]:
            np.testing.assert_allclose(dW[index], central_difference(f, layer.W, index), rtol=rtol, atol=atol)
        np.testing.assert_allclose(
            db[-1], central_difference(f, layer.b, (layer.b.size - 1,)), rtol=rtol, atol=atol
        )


@pytest.mark.parametrize("loss", ["unit", "mse", "xent"])
@pytest.mark.parametrize("act", [*SMOOTH, "relu", "leaky_relu:0.2"])
def test_stack_gradients_by_finite_differences(act, loss):
    check([5, 7, 6, 4], [act, act, "linear"], loss, seed=hash((act, loss)) % 1000)


@pytest.mark.parametrize("loss", ["unit", "mse", "xent"])
def test_mixed_stack_with_nonlinear_output(loss):
    check([4, 6, 5, 5, 3], ["gelu", "tanh", "selu", "sigmoid"], loss, seed=7)


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(2, 6), min_size=2, max_size=5),
    act=st.sampled_from(SMOOTH),
    out_act=st.sampled_from(["linear", "tanh", "sigmoid"]),
    loss=st.sampled_from(["unit", "mse", "xent"]),
    seed=st.integers(0, 10_000),
)
def test_random_stacks_by_finite_differences(widths, act, out_act, loss, seed):
    acts = [act] * (len(widths) - 2) + [out_act]
    check(widths, acts, loss, seed)


def test_loss_values_match_their_definitions():
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(8, 3))
    G = rng.normal(size=(8, 3))
    assert loss_and_grad("unit", Y, G)[0] == pytest.approx(np.sum(Y * G) / 8)
    assert loss_and_grad("mse", Y, G)[0] == pytest.approx(np.mean((Y - G) ** 2))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    p = np.exp(Y) / np.exp(Y).sum(axis=1, keepdims=True)
    assert loss_and_grad("xent", Y, labels)[0] == pytest.approx(-np.mean(np.log(p[np.arange(8), labels])))
    # zero logits: cross-entropy is ln(classes)
    assert loss_and_grad("xent", np.zeros((4, 10)), np.zeros(4, dtype=int))[0] == pytest.approx(np.log(10))
