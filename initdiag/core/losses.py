"""The probe's losses and their gradients with respect to the network output Y (batch, out).

They match PyTorch's definitions, so gradients compare number for number:

- ``unit``: L = sum(Y * G) / batch, G ~ N(0, 1) fixed by the seed; dL/dY = G / batch. A random
  linear read-out: its gradient is a unit-variance signal regardless of Y, which isolates the
  network's own backward gain.
- ``mse``: L = mean((Y - T)^2) over all entries (``F.mse_loss``), T ~ N(0, 1);
  dL/dY = 2 (Y - T) / Y.size.
- ``xent``: softmax cross-entropy with random integer labels, batch mean (``F.cross_entropy``);
  dL/dY = (softmax(Y) - onehot) / batch.
"""

from __future__ import annotations

import numpy as np

from ..errors import InitdiagError

LOSSES = ("unit", "mse", "xent")


def make_target(loss: str, rng: np.random.Generator, shape: tuple[int, int], dtype) -> np.ndarray:
    """The fixed random part of the loss: G or T (normal, shape of Y) or integer labels."""
    if loss == "xent":
        return rng.integers(0, shape[1], size=shape[0])
    return rng.standard_normal(shape).astype(dtype, copy=False)  # same numbers for every dtype


def loss_and_grad(loss: str, Y: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """(L, dL/dY); L is computed in float64, dL/dY keeps Y's dtype."""
    batch = Y.shape[0]
    if loss == "unit":
        value = float(np.sum(Y * target, dtype=np.float64) / batch)
        return value, (target / Y.dtype.type(batch)).astype(Y.dtype, copy=False)
    if loss == "mse":
        diff = Y - target
        value = float(np.mean(np.square(diff, dtype=np.float64)))
        return value, diff * Y.dtype.type(2.0 / Y.size)
    if loss == "xent":
        shifted = Y.astype(np.float64) - Y.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_norm
        rows = np.arange(batch)
        value = float(-log_probs[rows, target].mean())
        grad = np.exp(log_probs)
        grad[rows, target] -= 1.0
        grad /= batch
        return value, grad.astype(Y.dtype)
    raise InitdiagError(f"unknown loss '{loss}'; allowed: {', '.join(LOSSES)}")
