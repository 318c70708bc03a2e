"""The training runs of ``initdiag coordcheck``: at one width, several (parametrization, seed) runs
trained together on one fixed batch, each layer's output measured at every step.

A task holds the runs of one width (all seeds, or one seed when the width is large): their weights
are stacked along a leading run axis as in `initdiag.analysis.batched` (PyTorch's (fan_out, fan_in)
weight with the bias as one more column), so every step is one batched matrix product per layer.
Runs of the same seed draw the same numbers (layer l's from ``stream(seed, s, 2, l, width)``) and
differ only by their parametrization's scale, so SP and muP are compared on the same draws. Every
run's learning rate (and Adam's epsilon) is an array over its parameter's columns: per run, a
weight's own and its bias's, as the parametrization's rule for their roles gives them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..core.activations import get_activation
from ..core.initializers import Initializer, LayerContext, compute_fans
from .batched import ADAM_BETAS, MOMENTUM, Network, Workspace

_WEIGHTS = 2  # stream purposes (see analysis/inputs.py): weights, as a probe's
_DATA = 4


@dataclass
class Layout:
    """One width's stack and its runs: widths input first, each layer's activation name, and per run
    (r) and layer (l) the scales of the drawn weight and bias, their learning rates and Adam's eps."""

    width: int  # the scaled width n (it keys the random streams)
    widths: list[int]
    base_widths: list[int]  # the widths at the base width (what a rule's "at base" reads)
    acts: list[str]  # per layer: the hidden activation, then linear
    seeds: list[int]  # per run: the seed index it draws with
    weight_scale: np.ndarray  # (R, L) std multiplier of the initializer's draw
    bias_scale: np.ndarray  # (R, L)
    weight_lr: np.ndarray  # (R, L) the learning rate itself
    bias_lr: np.ndarray
    weight_eps: np.ndarray  # (R, L) Adam's epsilon
    bias_eps: np.ndarray


def run_task(layout: Layout, init: Initializer, bias_init: Initializer, data: tuple, options: dict):
    """Train the runs of *layout* for ``options['steps']`` steps (module level, so a worker process
    can run it). *data* is (X (N, d_in), Y) with Y one-hot (N, out) or (N, 1) for a binary output,
    or the targets of mse. Returns per run, layer and step (0 = init) the mean |x|, the std and the
    mean |x_t - x_0| of the layer's output, and per run and step the loss: (R, L, T+1) x 3, (R, T+1)."""
    dtype = np.dtype(options["dtype"])
    params = _sample(layout, init, bias_init, options["seed"], dtype)
    X, Y = data
    runs, steps, layers = len(layout.seeds), options["steps"], len(params)
    net = Network.of(params, get_activation(layout.acts[0]))
    X3 = np.broadcast_to(X.T.astype(dtype)[None], (runs, *X.T.shape))
    Y3 = np.ascontiguousarray(np.broadcast_to(Y.T.astype(dtype)[None], (runs, *Y.T.shape)))
    work = Workspace(net, X3)
    optimizer = _Optimizer(options["optimizer"], params, layout, dtype)
    l1, std, delta = (np.full((runs, layers, steps + 1), np.nan) for _ in range(3))
    loss = np.full((runs, steps + 1), np.nan)
    first: list[np.ndarray] = []
    with np.errstate(all="ignore"):
        for t in range(steps + 1):
            logits, _ = net.forward(work=work)
            outputs = [work.inputs[i + 1][:, :-1] for i in range(layers - 1)] + [logits]
            for i, out in enumerate(outputs):
                magnitude = np.abs(out)
                l1[:, i, t] = magnitude.mean(axis=(1, 2), dtype=np.float64)
                std[:, i, t] = out.std(axis=(1, 2), dtype=np.float64)
                if t == 0:
                    first.append(out.copy())
                    delta[:, i, t] = 0.0
                else:
                    np.subtract(out, first[i], out=magnitude)
                    np.abs(magnitude, out=magnitude)
                    delta[:, i, t] = magnitude.mean(axis=(1, 2), dtype=np.float64)
            loss[:, t], dlogits = loss_and_grad(logits, Y3, options["loss"])
            if t == steps:
                break
            optimizer.step(net.backward(dlogits, work), t + 1)
    return l1, std, delta, loss


def _sample(layout: Layout, init: Initializer, bias_init: Initializer, seed: int, dtype) -> list[np.ndarray]:
    """Each run's parameters (R, fan_out, fan_in + 1): the initializer's draw for the run's seed at
    the layer's real fans, times the run's scale; a seed's draws are made once for all its runs."""
    from .inputs import stream

    runs = len(layout.seeds)
    params = []
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(layout.widths)):
        shape = (fan_in, fan_out)
        ctx = LayerContext(
            f"dense{layer + 1}",
            shape,
            compute_fans(shape),
            get_activation(layout.acts[layer]),
            np.dtype("float64"),
        )
        p = np.empty((runs, fan_out, fan_in + 1), dtype)
        for s in sorted(set(layout.seeds)):
            rng = stream(seed, s, _WEIGHTS, layer, layout.width)
            W = init.sample(rng, ctx).T  # drawn (fan_in, fan_out) as everywhere
            b = bias_init.sample(rng, ctx._replace(shape=(fan_out,)))
            for r in (r for r in range(runs) if layout.seeds[r] == s):
                np.multiply(W, layout.weight_scale[r, layer], out=p[r, :, :-1], casting="unsafe")
                p[r, :, -1] = b * layout.bias_scale[r, layer]
        params.append(p)
    return params


def make_data(kind: str, batch: int, width: int, out: int, loss: str, seed: int, noise: float | None):
    """The one fixed batch every width and seed trains on: X (batch, width) ~ N(0, 1) and random
    labels (``random``), or a toy set of ``initdiag train`` (2-D, its own labels). Y is one-hot
    (batch, out), or (batch, 1) labels for one output (binary cross-entropy); for ``mse`` the one-hot
    labels are the targets (as mup's ``one_hot_target``). Also the labels (batch,)."""
    from .inputs import stream

    rng = stream(seed, 0, _DATA)
    if kind == "random":
        X = rng.standard_normal((batch, width))
        labels = rng.integers(0, max(out, 2), batch)
    else:
        from .toy_data import NOISE, make_dataset

        data = make_dataset(kind, batch, 1, NOISE[kind] if noise is None else noise, rng)
        X, labels = data.X_train, data.y_train
    Y = labels[:, None].astype(float) if out == 1 else np.eye(out)[labels]
    return X, Y, labels


def loss_and_grad(logits: np.ndarray, Y: np.ndarray, loss: str):
    """Per-run mean loss (R,) in float64 and dL/dlogits, logits and Y (R, out, N) as PyTorch defines
    them: ``xent`` softmax cross-entropy (``F.cross_entropy``; one output: ``binary_cross_entropy_with_
    logits``), ``mse`` mean((y - t)^2) over every entry (``F.mse_loss``)."""
    n = logits.shape[2]
    if loss == "mse":
        diff = logits - Y
        value = (diff.astype(np.float64) ** 2).mean(axis=(1, 2))
        diff *= diff.dtype.type(2.0 / diff[0].size)
        return value, diff
    if logits.shape[1] == 1:
        z = logits.astype(np.float64)
        value = (np.logaddexp(0.0, z) - Y * z).mean(axis=(1, 2))
        grad = (0.5 * (1.0 + np.tanh(0.5 * z)) - Y) / n
        return value, grad.astype(logits.dtype)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    value = -(Y * log_probs.astype(np.float64)).sum(axis=1).mean(axis=1)
    grad = np.exp(log_probs)
    grad -= Y
    grad /= grad.dtype.type(n)
    return value, grad


class _Optimizer:
    """SGD, momentum (torch.optim.SGD's) or Adam (torch.optim.Adam's, betas 0.9/0.999), with a
    learning rate per run and column (the run's weight's, then its bias's) and, for Adam, an epsilon
    likewise: in place, no array allocated per step (the gradient's buffer is the scratch)."""

    def __init__(self, kind: str, params: list[np.ndarray], layout: Layout, dtype):
        self.kind, self.params = kind, params
        self.lr = [
            _columns(layout.weight_lr[:, i], layout.bias_lr[:, i], p, dtype) for i, p in enumerate(params)
        ]
        self.eps = [
            _columns(layout.weight_eps[:, i], layout.bias_eps[:, i], p, dtype) for i, p in enumerate(params)
        ]
        self.m = [np.zeros_like(p) for p in params] if kind != "sgd" else []
        self.v = [np.zeros_like(p) for p in params] if kind == "adam" else []

    def step(self, grads: list[np.ndarray], t: int) -> None:
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            if self.kind == "momentum":
                m = self.m[i]
                m *= m.dtype.type(MOMENTUM)
                m += g
                np.multiply(m, self.lr[i], out=g)
            elif self.kind == "adam":
                self._adam(i, g, t)
            else:
                g *= self.lr[i]
            p -= g

    def _adam(self, i: int, g: np.ndarray, t: int) -> None:
        """g becomes torch's update lr / c1 * m / (sqrt(v / c2) + eps), written as
        (lr sqrt(c2) / c1) * m / (sqrt(v) + eps sqrt(c2)) (c1, c2 = 1 - beta^t) to save a pass over
        the weights; m = b1 m + (1 - b1) g as b1 (m - g) + g, v likewise: in place."""
        b1, b2 = ADAM_BETAS
        m, v = self.m[i], self.v[i]
        kind = g.dtype.type
        root = math.sqrt(1 - b2**t)
        m -= g
        m *= kind(b1)
        m += g
        np.square(g, out=g)  # g is free once m has it
        v -= g
        v *= kind(b2)
        v += g
        np.sqrt(v, out=g)
        g += (self.eps[i] * root).astype(g.dtype)
        np.divide(m, g, out=g)
        g *= (self.lr[i] * (root / (1 - b1**t))).astype(g.dtype)


def _columns(weight: np.ndarray, bias: np.ndarray, p: np.ndarray, dtype) -> np.ndarray:
    """(R, 1, fan_in + 1): per run, *weight* over the weight's columns and *bias* over the last."""
    out = np.empty((p.shape[0], 1, p.shape[2]), dtype)
    out[:, 0, :-1] = weight[:, None]
    out[:, 0, -1] = bias
    return out


def madds(widths: list[int]) -> int:
    """Multiply-adds of one sample's forward pass."""
    return sum(a * b for a, b in itertools.pairwise(widths))


def task_bytes(widths: list[int], runs: int, seeds: int, batch: int, optimizer: str, dtype: str) -> int:
    """Peak bytes of one task: per run the parameters, gradients, optimizer state and the step's
    buffers; per seed the float64 draw of the largest layer; a worker's pickled results are small."""
    item = np.dtype(dtype).itemsize
    params = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    states = {"sgd": 0, "momentum": 1, "adam": 2}[optimizer]
    activations = batch * sum(a + 1 + 3 * b for a, b in itertools.pairwise(widths)) * item
    largest = max(a * b for a, b in itertools.pairwise(widths))
    return int(1.1 * (runs * (params * item * (2 + states) + activations) + 2 * 8 * largest)) + (8 << 20)
