"""Layers. Protocol: ``forward(x)`` caches what ``backward`` needs and returns the output;
``backward(da)`` takes dL/da for that output, returns dL/dx and fills the parameter gradients.

Every layer here is an affine or structural map followed by an activation, so each has a
pre-activation ``z`` and an output ``a = act(z)``: the two things the per-layer table reports.
"""

from __future__ import annotations

import numpy as np

from .activations import Activation


class Layer:
    """Base: ``name``, ``act`` and the caches ``x``, ``z``, ``a`` (after forward) and ``dact``
    (phi'(z), after backward)."""

    kind = "layer"

    def __init__(self, name: str, act: Activation):
        self.name = name
        self.act = act
        self.x: np.ndarray | None = None
        self.z: np.ndarray | None = None
        self.a: np.ndarray | None = None
        self.dact: np.ndarray | None = None

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The map before the activation: x -> z."""
        raise NotImplementedError

    def transform_backward(self, dz: np.ndarray) -> np.ndarray:
        """dL/dz -> dL/dx, filling parameter gradients."""
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        self.z = self.transform(x)
        self.a = self.z if self.act.is_linear else self.act(self.z)
        return self.a

    def backward(self, da: np.ndarray) -> np.ndarray:
        if self.act.is_linear:
            self.dact = None
            dz = da
        else:
            self.dact = self.act.derivative(self.z, self.a)
            dz = da * self.dact
        return self.transform_backward(dz)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, act={self.act})"


class Dense(Layer):
    """z = x @ W + b with W of shape (fan_in, fan_out).

    Backward: dW = x^T dz, db = sum over the batch of dz, dx = dz W^T.
    """

    kind = "dense"

    def __init__(self, name: str, W: np.ndarray, b: np.ndarray, act: Activation):
        super().__init__(name, act)
        self.W = W
        self.b = b
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    @property
    def fan_in(self) -> int:
        return self.W.shape[0]

    @property
    def fan_out(self) -> int:
        return self.W.shape[1]

    def transform(self, x):
        z = x @ self.W
        z += self.b
        return z

    def transform_backward(self, dz):
        self.dW = self.x.T @ dz
        self.db = dz.sum(axis=0)
        return dz @ self.W.T

    def __repr__(self) -> str:
        return f"Dense({self.name!r}, {self.fan_in} -> {self.fan_out}, act={self.act})"
