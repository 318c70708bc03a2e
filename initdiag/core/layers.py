"""Layers. Protocol: ``forward(x)`` caches what ``backward`` needs and returns the output;
``backward(da)`` takes dL/da for that output, returns dL/dx and fills the parameter gradients.

Every layer is a map ``x -> z`` followed by an activation ``a = act(z)`` (the identity for layers
that take none), so each has a pre-activation ``z`` and an output ``a``: the two things the
per-layer table reports. ``weight`` is the parameter the table reports as W (the weights, the
normalization's gamma, a residual shortcut's projection) and ``dweight`` its gradient.

Arrays are channels-last inside: a batch of images is (N, H, W, C), so the units of every layer
(features or channels) are the last axis. `Flatten` turns that into PyTorch's (C, H, W) order.
The numerics live in `initdiag.ops`; a residual block is a `Residual` node around its branch.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .activations import Activation, get_activation


class Layer:
    """Base: ``name``, ``act`` and the caches ``x``, ``z``, ``a`` (after forward) and ``dact``
    (phi'(z), after backward)."""

    kind = "layer"
    weight: np.ndarray | None = None
    dweight: np.ndarray | None = None
    # a weighted layer calls this with x @ W (before its bias is added), when set: the probe counts
    # distinct units there, so that units whose incoming weights are equal count once
    unbiased_hook = None

    def __init__(self, name: str, act: Activation | None = None):
        self.name = name
        self.act = act if act is not None else get_activation("linear")
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

    def drop_outputs(self) -> None:
        """The forward statistics are taken: drop what only they needed, keep what the backward pass
        does. Here the output, unless the activation's derivative reads it (the next layer holds its
        input itself)."""
        if self.act.is_linear:
            self.z = self.a = None

    def free(self) -> None:
        """Drop the caches once the layer's statistics are taken."""
        self.x = self.z = self.a = self.dact = None
        self.dweight = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, act={self.act})"


class Dense(Layer):
    """z = x @ W + b with W of shape (fan_in, fan_out).

    Backward: dW = x^T dz, db = sum over the batch of dz, dx = dz W^T.
    """

    kind = "dense"

    def __init__(self, name: str, W: np.ndarray, b: np.ndarray, act: Activation):
        super().__init__(name, act)
        self.W = self.weight = W
        self.b = b
        self.db: np.ndarray | None = None

    @property
    def dW(self) -> np.ndarray | None:
        return self.dweight

    @property
    def fan_in(self) -> int:
        return self.W.shape[0]

    @property
    def fan_out(self) -> int:
        return self.W.shape[1]

    def transform(self, x):
        z = x @ self.W
        if self.unbiased_hook is not None:
            self.unbiased_hook(self, z)
        z += self.b
        return z

    def transform_backward(self, dz):
        self.dweight = self.x.T @ dz
        self.db = dz.sum(axis=0)
        return dz @ self.W.T

    def __repr__(self) -> str:
        return f"Dense({self.name!r}, {self.fan_in} -> {self.fan_out}, act={self.act})"


class Conv2d(Layer):
    """z = conv(x, W) + b, cross-correlation as ``torch.nn.functional.conv2d``; W of shape
    (out_ch, in_ch, kh, kw), so fan_in = in_ch*kh*kw; x and z channels-last.

    Backward: dW correlates x with dz, db sums dz, dx is the transposed convolution of dz.
    """

    kind = "conv2d"

    def __init__(self, name, W, b, act, stride: int = 1, pads: tuple[int, int, int, int] = (0, 0, 0, 0)):
        super().__init__(name, act)
        self.W = self.weight = W
        self.b = b
        self.stride, self.pads = stride, pads
        self.db: np.ndarray | None = None

    def transform(self, x):
        z = ops.conv2d_forward(x, self.W, None, self.stride, self.pads)
        if self.unbiased_hook is not None:
            self.unbiased_hook(self, z)
        if self.b is not None:
            z += self.b.astype(z.dtype, copy=False)
        return z

    def transform_backward(self, dz):
        dx, self.dweight, self.db = ops.conv2d_backward(self.x, dz, self.W, self.stride, self.pads)
        return dx

    def __repr__(self) -> str:
        o, c, kh, kw = self.W.shape
        return f"Conv2d({self.name!r}, {c} -> {o}, {kh}x{kw}, stride {self.stride}, act={self.act})"


class Flatten(Layer):
    """(N, H, W, C) -> (N, C*H*W) in PyTorch's (C, H, W) order, so a dense layer after it has the
    weights a PyTorch model would; a flat input passes unchanged."""

    kind = "flatten"

    def transform(self, x):
        if x.ndim == 2:
            return x
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), -1)

    def transform_backward(self, dz):
        if self.x.ndim == 2:
            return dz
        n, h, w, c = self.x.shape
        return np.ascontiguousarray(dz.reshape(n, c, h, w).transpose(0, 2, 3, 1))


class MaxPool2d(Layer):
    """The maximum of each size x size window, stride size (``nn.MaxPool2d(size)``); the gradient
    goes to the first maximum of each window."""

    kind = "maxpool2d"

    def __init__(self, name: str, size: int = 2):
        super().__init__(name)
        self.size = size
        self._index = None

    def transform(self, x):
        z, self._index = ops.maxpool2d_forward(x, self.size)
        return z

    def transform_backward(self, dz):
        return ops.maxpool2d_backward(dz, self._index, self.x.shape, self.size)

    def free(self):
        super().free()
        self._index = None


class GlobalAvgPool(Layer):
    """(N, H, W, C) -> (N, C), the mean over H and W (``nn.AdaptiveAvgPool2d(1)`` + flatten)."""

    kind = "global_avgpool"

    def transform(self, x):
        return ops.global_avgpool_forward(x)

    def transform_backward(self, dz):
        return ops.global_avgpool_backward(dz, self.x.shape)


class _Norm(Layer):
    """z = gamma * (x - mean) / sqrt(var + eps) + beta; gamma starts at 1, beta at 0."""

    def __init__(self, name: str, gamma: np.ndarray, beta: np.ndarray, act: Activation, eps: float = 1e-5):
        super().__init__(name, act)
        self.gamma = self.weight = gamma
        self.beta = beta
        self.eps = eps
        self.dbeta: np.ndarray | None = None
        self._cache = None

    _forward = _backward = None  # the ops pair

    def transform(self, x):
        z, self._cache = type(self)._forward(x, self.gamma, self.beta, self.eps)
        return z

    def transform_backward(self, dz):
        dx, self.dweight, self.dbeta = type(self)._backward(dz, self._cache)
        return dx

    def free(self):
        super().free()
        self._cache = None


class BatchNorm(_Norm):
    """Training-mode batch normalization (Ioffe & Szegedy 2015): statistics over the batch (and
    positions), per feature or channel, as ``BatchNorm1d`` / ``BatchNorm2d`` in train mode."""

    kind = "batchnorm"
    _forward = staticmethod(ops.batchnorm_forward)
    _backward = staticmethod(ops.batchnorm_backward)


class LayerNorm(_Norm):
    """Layer normalization (Ba et al. 2016): statistics over each sample's features, as
    ``nn.LayerNorm(sample_shape)``."""

    kind = "layernorm"
    _forward = staticmethod(ops.layernorm_forward)
    _backward = staticmethod(ops.layernorm_backward)


class Dropout(Layer):
    """Inverted dropout (train mode): z = x * mask, mask 0 with probability rate, else
    1/(1 - rate), drawn once per trial from the layer's own stream."""

    kind = "dropout"

    def __init__(self, name: str, mask: np.ndarray):
        super().__init__(name)
        self.mask = mask

    def transform(self, x):
        return x * self.mask

    def transform_backward(self, dz):
        return dz * self.mask


class ActivationLayer(Layer):
    """A standalone activation: z = x, a = act(x)."""

    kind = "activation"

    def transform(self, x):
        return x

    def transform_backward(self, dz):
        return dz


class ResidualSum(Layer):
    """The sum of a residual block: z = shortcut(x) + scale * h, where h is the branch's output,
    and shortcut is the identity or a projection P (dense ``x @ P``, or a 1x1 convolution with
    a stride) when the branch changes the shape. ``x`` is the block's input.
    `backward_pair` returns (dL/dh, dL/dx through the shortcut)."""

    kind = "residual"

    def __init__(self, name: str, scale: float, P: np.ndarray | None = None, stride: int = 1):
        super().__init__(name)
        self.scale = scale
        self.P = self.weight = P
        self.stride = stride
        self.grad_input: np.ndarray | None = None  # dL/dx of the block, both paths

    def shortcut(self, x):
        if self.P is None:
            return x
        if self.P.ndim == 2:
            return x @ self.P
        return ops.conv2d_forward(x, self.P, None, self.stride, (0, 0, 0, 0))

    def forward_pair(self, h, x):
        self.x = x
        self.z = self.shortcut(x) + h * h.dtype.type(self.scale)
        self.a = self.z
        return self.a

    def backward_pair(self, da):
        dh = da * da.dtype.type(self.scale)
        if self.P is None:
            return dh, da
        if self.P.ndim == 2:
            self.dweight = self.x.T @ da
            return dh, da @ self.P.T
        dx, self.dweight, _ = ops.conv2d_backward(self.x, da, self.P, self.stride, (0, 0, 0, 0))
        return dh, dx

    def free(self):
        super().free()
        self.grad_input = None


class Residual:
    """A residual block: the branch (layers and nested blocks), then the `ResidualSum`."""

    def __init__(self, branch: list, add: ResidualSum):
        self.branch = branch
        self.add = add

    def forward(self, x, hook=None):
        h = run_forward(self.branch, x, hook)
        a = self.add.forward_pair(h, x)
        if hook is not None:
            hook.forward(self.add)
        return a

    def backward(self, da, hook=None):
        dh, dx_shortcut = self.add.backward_pair(da)
        dx = run_backward(self.branch, dh, hook) + dx_shortcut
        self.add.grad_input = dx
        if hook is not None:
            hook.backward(self.add, da, dx)
        return dx


def run_forward(nodes: list, x: np.ndarray, hook=None) -> np.ndarray:
    """Forward through layers and composite nodes (residual blocks, transformer blocks: anything that
    is not a `Layer` has ``forward(x, hook)`` / ``backward(da, hook)``) in order. *hook*, if given, has
    ``before_forward(layer, x)`` (may adjust the layer, e.g. LSUV), ``forward(layer)`` and
    ``backward(layer, da, dx)``, called for every layer (a block's sum after its branch)."""
    for node in nodes:
        if not isinstance(node, Layer):
            x = node.forward(x, hook)
            continue
        if hook is not None:
            hook.before_forward(node, x)
        x = node.forward(x)
        if hook is not None:
            hook.forward(node)
    return x


def run_backward(nodes: list, da: np.ndarray, hook=None) -> np.ndarray:
    """Backward through *nodes* in reverse; returns dL/dx of their input."""
    for node in reversed(nodes):
        if not isinstance(node, Layer):
            da = node.backward(da, hook)
            continue
        dx = node.backward(da)
        if hook is not None:
            hook.backward(node, da, dx)
        da = dx
    return da
