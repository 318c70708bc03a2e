"""Many small networks trained at once: weights stacked along a leading axis of runs, every product
batched, buffers allocated once (`Workspace`), and the optimizers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core.activations import Activation

if TYPE_CHECKING:  # for annotations only: train builds on this module
    from .train import TrainSettings

MOMENTUM = 0.9
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


class Network:
    """An MLP for R runs at once, units-by-samples, so the sums over samples run along the
    contiguous last axis. ``params[l]`` (R, fan_out, fan_in + 1) is PyTorch's weight per run with
    the bias as one more column: against the layer's input with a row of ones under it, one matrix
    product gives z = W h + b forward, and dW and db together backward. ``Ws`` and ``bs`` are views
    of it. Hidden activation *act*; the output is logits (sigmoid or softmax are in the loss)."""

    def __init__(self, Ws: list[np.ndarray], bs: list[np.ndarray], act: Activation):
        self.params = [np.concatenate([W, b], axis=2) for W, b in zip(Ws, bs, strict=True)]
        self.act = act

    @classmethod
    def of(cls, params: list[np.ndarray], act: Activation) -> Network:
        """A network on *params* themselves (views stay views: updates land in the caller's arrays)."""
        net = cls.__new__(cls)
        net.params, net.act = params, act
        return net

    @property
    def Ws(self) -> list[np.ndarray]:  # (R, fan_out, fan_in) views
        return [p[:, :, :-1] for p in self.params]

    @property
    def bs(self) -> list[np.ndarray]:  # (R, fan_out, 1) views
        return [p[:, :, -1:] for p in self.params]

    def forward(self, X: np.ndarray | None = None, work: Workspace | None = None):
        """Logits (R, out, N) for inputs X (R, fan_in, N) and the `Workspace` they were computed
        in, which `backward` needs: a fresh one, or *work* (on its own inputs if X is None). The
        logits are *work*'s buffer, overwritten by the next step."""
        if work is None:
            work = Workspace(self, X)
        elif X is not None:
            np.copyto(work.inputs[0][:, :-1], X)
        last = len(self.params) - 1
        for i, p in enumerate(self.params):
            z = work.zs[i]
            np.matmul(p, work.inputs[i], out=z)
            if i == last:
                break
            a = work.inputs[i + 1][:, :-1]
            if work.zeros:  # relu, in place: z's buffer then holds a, and is contiguous (SIMD)
                np.maximum(z, work.zeros[i], out=z)  # against zeros: numpy 2's scalar path is 2x slower
                np.copyto(a, z)
            elif self.act.fused:  # phi' now, from the same pass (GELU: one erfc for both)
                a[...], work.slopes[i] = self.act.with_derivative(z)
            else:
                a[...] = self.act(z)
        return work.zs[last], work

    def backward(self, dlogits: np.ndarray, work: Workspace) -> list[np.ndarray]:
        """dL/dparams from dL/dlogits, into *work*'s buffers (overwritten by the next step):
        per layer dW = dz h^T and db = the sum of dz over the samples (one product against
        [h; 1]), dh = W^T dz, and dz_prev = dh * phi'(z_prev)."""
        dz = dlogits
        for i in range(len(self.params) - 1, -1, -1):
            np.matmul(dz, work.inputs[i].swapaxes(1, 2), out=work.grads[i])
            if not i:
                break
            dh = work.zs[i - 1]  # z_prev's buffer, free once phi'(z_prev) is known
            if work.zeros:  # relu: phi' = 1 where z > 0, that is where a > 0 (the buffer holds a)
                slope = work.masks[i - 1]
                np.greater(dh, 0, out=slope)
            elif self.act.fused:
                slope = work.slopes[i - 1]
            else:
                slope = self.act.derivative(dh, work.inputs[i][:, :-1])
            weight_t = self.params[i][:, :, :-1].swapaxes(1, 2)
            if dz.shape[1] == 1:  # an outer product: broadcasting is 4x faster than a k=1 matmul
                np.multiply(weight_t, dz, out=dh)
            else:
                np.matmul(weight_t, dz, out=dh)
            np.multiply(dh, slope, out=dh)
            dz = dh
        return work.grads


class Workspace:
    """Every array a training step needs for inputs of one shape (R, fan_in, N), allocated once:
    the loop then allocates nothing large. (Fresh arrays above ~128 KiB come from the kernel as
    zeroed pages, and at toy sizes those page faults took longer than the arithmetic.)"""

    def __init__(self, net: Network, X: np.ndarray):
        runs, _, n = X.shape
        dtype = net.params[0].dtype
        self.inputs = [np.ones((runs, p.shape[2], n), dtype) for p in net.params]  # [h; 1] per layer
        self.inputs[0][:, :-1] = X
        self.zs = [np.empty((runs, p.shape[1], n), dtype) for p in net.params]
        self.grads = [np.empty_like(p) for p in net.params]
        relu = net.act.kind == "relu"
        self.zeros = [np.zeros_like(z) for z in self.zs[:-1]] if relu else []
        self.masks = [np.empty(z.shape, dtype=bool) for z in self.zs[:-1]] if relu else []
        self.slopes: list[np.ndarray | None] = [None] * (len(self.zs) - 1)  # phi'(z), when fused


def loss_and_grad(logits: np.ndarray, Y: np.ndarray, classes: int, value: bool = True):
    """Per-run mean loss (R,) (None unless *value*) and dL/dlogits, logits and Y (R, out, N).
    Binary: BCE of sigmoid(logits) against Y, from the logits (softplus(z) - y z, exact for any z);
    else softmax cross-entropy over axis 1, Y one-hot."""
    n = logits.shape[2]
    if classes == 2:
        z = logits.astype(np.float64)
        loss = (np.logaddexp(0.0, z) - Y * z).mean(axis=(1, 2)) if value else None
        grad = sigmoid(logits)
        grad -= Y
        grad /= grad.dtype.type(n)
        return loss, grad
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -(Y * log_probs.astype(np.float64)).sum(axis=1).mean(axis=1) if value else None
    grad = np.exp(log_probs)
    grad -= Y
    grad /= grad.dtype.type(n)
    return loss, grad


def sigmoid(z: np.ndarray) -> np.ndarray:
    """(1 + tanh(z/2)) / 2: no overflow for any z, and tanh is fast."""
    half = z.dtype.type(0.5)
    out = np.tanh(half * z)
    out += 1
    out *= half
    return out


def predict(logits: np.ndarray, classes: int) -> np.ndarray:
    """Class indices (R, N) from logits (R, out, N)."""
    return (logits[:, 0, :] > 0).astype(int) if classes == 2 else logits.argmax(axis=1)


def targets(y: np.ndarray, classes: int) -> np.ndarray:
    """(N,) class indices -> (1, N) for binary, (classes, N) one-hot otherwise."""
    return y[None, :].astype(float) if classes == 2 else np.eye(classes)[y].T


class Optimizer:
    """sgd (p -= lr g), momentum (v = 0.9 v + g; p -= lr v, as torch.optim.SGD) or Adam (Kingma &
    Ba 2015, betas 0.9/0.999, eps 1e-8), on every run's parameters at once; with ``clip``, each run's
    gradient is scaled to at most that global norm first; ``warmup`` ramps lr linearly."""

    def __init__(self, settings: TrainSettings, params: list[np.ndarray]):
        self.s = settings
        self.params = params
        self.state = [np.zeros_like(p) for p in params] if settings.optimizer != "sgd" else []
        self.state2 = [np.zeros_like(p) for p in params] if settings.optimizer == "adam" else []

    def step(self, grads: list[np.ndarray], t: int) -> None:
        s = self.s
        lr = s.lr * min(1.0, t / s.warmup) if s.warmup else s.lr
        lr = self.params[0].dtype.type(lr)  # a Python float would not change the dtype, a numpy one might
        if s.clip is not None:
            norm = np.sqrt(sum((g * g).sum(axis=(1, 2)) for g in grads))  # (R,)
            factor = np.minimum(1.0, s.clip / np.maximum(norm, 1e-300))[:, None, None]
            grads = [g * factor for g in grads]
        if s.optimizer == "sgd":
            for p, g in zip(self.params, grads, strict=True):
                p -= lr * g
        elif s.optimizer == "momentum":
            for p, g, v in zip(self.params, grads, self.state, strict=True):
                v *= MOMENTUM
                v += g
                p -= lr * v
        else:
            b1, b2 = ADAM_BETAS
            c1, c2 = 1 - b1**t, 1 - b2**t
            for p, g, m, v in zip(self.params, grads, self.state, self.state2, strict=True):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= lr * (m / c1) / (np.sqrt(v / c2) + ADAM_EPS)
