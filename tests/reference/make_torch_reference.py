"""Generate ``tests/data/torch_reference.npz``: reference values computed by real PyTorch.

The test suite (``tests/test_torch_reference.py``) compares initdiag against this file and never
imports torch. This script never imports initdiag, so the fixture is an independent truth.

Regenerate (from the repository root) with a separate venv that has the CPU build of torch::

    python3 -m venv /work/torchenv
    /work/torchenv/bin/pip install torch==2.13.0 numpy
    /work/torchenv/bin/python tests/reference/make_torch_reference.py

The fixture in the repository was made with torch 2.13.0+cpu; the exact version is stored in the
``torch_version`` key. Everything is float64, gradients come from autograd.

Keys
----
torch_version, numpy_version      0-d string arrays
act/z                             the input grid (61 points in [-8, 8] plus specials), sorted
act/<name>/value, act/<name>/grad phi(z) and phi'(z) (autograd of phi(z).sum()); <name> is the
                                  initdiag spec: relu, leaky_relu, leaky_relu:0.2, elu, elu:0.5,
                                  selu, gelu, silu, softplus, sigmoid, tanh
gain/<name>                       torch.nn.init.calculate_gain; <name> is linear, sigmoid, tanh,
                                  relu, leaky_relu (default param), leaky_relu:0.2, selu
loss/Y, loss/G, loss/T, loss/labels
                                  Y, G, T (16, 5) standard normal; labels (16,) int64 in [0, 5)
loss/<loss>/value, loss/<loss>/grad
                                  L and dL/dY for unit = sum(Y*G)/batch, mse = F.mse_loss(Y, T),
                                  xent = F.cross_entropy(Y, labels)
stack/X                           (32, 7) input
stack/acts                        activation names of the three layers: tanh, gelu, linear
stack/L<i>/W, stack/L<i>/b        weights in initdiag's layout (fan_in, fan_out), biases; i = 1, 2, 3
stack/target/<loss>               G (32, 4), T (32, 4) or labels (32,) for unit, mse, xent
stack/<loss>/value                the loss
stack/<loss>/L<i>/{z,a,dW,db}     pre-activation, output, dL/dW (fan_in, fan_out), dL/db
stack/<loss>/dX                   dL/dX, (32, 7)
cnn/X                             (8, 3, 9, 9) input, NCHW; a small conv net, train mode, all float64:
                                  conv1 (3 -> 4, 3x3, pad 1) tanh; bn1 BatchNorm2d(4) relu; res1 a
                                  residual block: shortcut 1x1 conv P (4 -> 6, stride 2, no bias) +
                                  scale * branch, branch res1.conv1 (4 -> 6, 3x3, stride 2, pad 1)
                                  linear, res1.ln1 LayerNorm([6, 5, 5]) silu; maxpool1 MaxPool2d(2)
                                  (5x5 -> 2x2); dropout1 a fixed mask; flatten1 (C, H, W order, 24);
                                  dense1 Linear(24 -> 5) gelu. Loss unit = sum(Y * G) / batch
cnn/eps, cnn/res1/scale           1e-5 (both norms), 0.7
cnn/G                             (8, 5) standard normal, the unit loss's target
cnn/{conv1,res1.conv1}/{W,b}      conv weights in torch's layout (out, in, kh, kw), biases (out,)
cnn/res1/P                        the shortcut's 1x1 projection, (6, 4, 1, 1)
cnn/{bn1,res1.ln1}/{gamma,beta}   (4,) and (6, 5, 5) (torch's layout), drawn away from 1 and 0
cnn/dropout1/mask                 (8, 6, 2, 2), 0 with probability 0.25 else 1 / 0.75
cnn/dense1/W, cnn/dense1/b        (24, 5) in initdiag's layout (fan_in, fan_out), (5,)
cnn/value                         the loss
cnn/<layer>/{z,a}                 pre-activation and output, NCHW or (N, D) as torch has them, for
                                  conv1, bn1, res1.conv1, res1.ln1, res1 (z = a = the sum), maxpool1,
                                  dropout1, flatten1 (z = a = the output), dense1
cnn/<layer>/d<param>              dL/d<param> in the layout of <param> above: dW, db for the convs
                                  and dense1, dgamma, dbeta for the norms, dP for res1
cnn/dX                            dL/dX, (8, 3, 9, 9)
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "data" / "torch_reference.npz"

ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.01),
    "leaky_relu:0.2": lambda z: F.leaky_relu(z, negative_slope=0.2),
    "elu": lambda z: F.elu(z, alpha=1.0),
    "elu:0.5": lambda z: F.elu(z, alpha=0.5),
    "selu": F.selu,
    "gelu": lambda z: F.gelu(z, approximate="none"),
    "silu": F.silu,
    "softplus": F.softplus,  # beta=1, threshold=20: exactly z for z > 20
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}

GAINS = {
    "linear": ("linear", None),
    "sigmoid": ("sigmoid", None),
    "tanh": ("tanh", None),
    "relu": ("relu", None),
    "leaky_relu": ("leaky_relu", None),
    "leaky_relu:0.2": ("leaky_relu", 0.2),
    "selu": ("selu", None),
}

STACK_ACTS = {"tanh": torch.tanh, "gelu": lambda z: F.gelu(z, approximate="none"), "linear": None}


def t64(x: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def loss_fn(loss: str, Y: torch.Tensor, target: np.ndarray) -> torch.Tensor:
    if loss == "unit":
        return (Y * t64(target)).sum() / Y.shape[0]
    if loss == "mse":
        return F.mse_loss(Y, t64(target))
    if loss == "xent":
        return F.cross_entropy(Y, torch.tensor(target, dtype=torch.int64))
    raise ValueError(loss)


def activations(out: dict) -> None:
    grid = np.linspace(-8.0, 8.0, 61)
    specials = [0.0, 1e-8, -1e-8, 0.5, -0.5, 20.0, -20.0, 30.0, -30.0]
    z = np.unique(np.concatenate([grid, specials]))
    out["act/z"] = z
    for name, phi in ACTIVATIONS.items():
        zt = t64(z, grad=True)
        a = phi(zt)
        a.sum().backward()
        out[f"act/{name}/value"] = np64(a)
        out[f"act/{name}/grad"] = np64(zt.grad)


def gains(out: dict) -> None:
    for key, (name, param) in GAINS.items():
        out[f"gain/{key}"] = np.float64(torch.nn.init.calculate_gain(name, param))


def losses(out: dict) -> None:
    rng = np.random.default_rng(1)
    Y = rng.standard_normal((16, 5))
    G = rng.standard_normal((16, 5))
    T = rng.standard_normal((16, 5))
    labels = rng.integers(0, 5, size=16).astype(np.int64)
    out.update({"loss/Y": Y, "loss/G": G, "loss/T": T, "loss/labels": labels})
    for loss, target in (("unit", G), ("mse", T), ("xent", labels)):
        Yt = t64(Y, grad=True)
        L = loss_fn(loss, Yt, target)
        L.backward()
        out[f"loss/{loss}/value"] = np.float64(L.item())
        out[f"loss/{loss}/grad"] = np64(Yt.grad)


def stack(out: dict) -> None:
    rng = np.random.default_rng(2)
    sizes = [7, 6, 5, 4]
    acts = list(STACK_ACTS)
    batch = 32
    X = rng.standard_normal((batch, sizes[0]))
    Ws, bs = [], []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), start=1):
        # gain 1.5 / sqrt(fan_in): pre-activations of order 1, so tanh and gelu are used nonlinearly
        W = rng.standard_normal((fan_in, fan_out)) * (1.5 / np.sqrt(fan_in))
        b = rng.normal(0.0, 0.1, size=fan_out)
        Ws.append(W)
        bs.append(b)
        out[f"stack/L{i}/W"] = W
        out[f"stack/L{i}/b"] = b
    out["stack/X"] = X
    out["stack/acts"] = np.array(acts)
    targets = {
        "unit": rng.standard_normal((batch, sizes[-1])),
        "mse": rng.standard_normal((batch, sizes[-1])),
        "xent": rng.integers(0, sizes[-1], size=batch).astype(np.int64),
    }
    for loss, target in targets.items():
        out[f"stack/target/{loss}"] = target
        linears = []
        for W, b in zip(Ws, bs, strict=True):
            lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(t64(W.T))  # torch's layout is (out, in)
                lin.bias.copy_(t64(b))
            linears.append(lin)
        Xt = t64(X, grad=True)
        h = Xt
        zs, as_ = [], []
        for lin, act in zip(linears, acts, strict=True):
            z = lin(h)
            h = z if STACK_ACTS[act] is None else STACK_ACTS[act](z)
            zs.append(z)
            as_.append(h)
        L = loss_fn(loss, h, target)
        L.backward()
        out[f"stack/{loss}/value"] = np.float64(L.item())
        for i, (lin, z, a) in enumerate(zip(linears, zs, as_, strict=True), start=1):
            out[f"stack/{loss}/L{i}/z"] = np64(z)
            out[f"stack/{loss}/L{i}/a"] = np64(a)
            out[f"stack/{loss}/L{i}/dW"] = np64(lin.weight.grad).T.copy()  # back to (fan_in, fan_out)
            out[f"stack/{loss}/L{i}/db"] = np64(lin.bias.grad)
        out[f"stack/{loss}/dX"] = np64(Xt.grad)


def cnn(out: dict) -> None:
    rng = np.random.default_rng(3)
    batch, eps, scale = 8, 1e-5, 0.7

    def conv_weights(c_out: int, c_in: int, k: int) -> np.ndarray:
        return rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)  # N(0, 1/fan_in)

    X = rng.standard_normal((batch, 3, 9, 9))
    params = {
        "conv1/W": conv_weights(4, 3, 3),
        "conv1/b": rng.normal(0.0, 0.1, size=4),
        "bn1/gamma": 1.0 + 0.1 * rng.standard_normal(4),
        "bn1/beta": 0.1 * rng.standard_normal(4),
        "res1.conv1/W": conv_weights(6, 4, 3),
        "res1.conv1/b": rng.normal(0.0, 0.1, size=6),
        "res1.ln1/gamma": 1.0 + 0.1 * rng.standard_normal((6, 5, 5)),
        "res1.ln1/beta": 0.1 * rng.standard_normal((6, 5, 5)),
        "res1/P": conv_weights(6, 4, 1),
        "dense1/W": rng.standard_normal((24, 5)) / np.sqrt(24),  # (fan_in, fan_out)
        "dense1/b": rng.normal(0.0, 0.1, size=5),
    }
    mask = np.where(rng.random((batch, 6, 2, 2)) < 0.25, 0.0, 1.0 / 0.75)
    G = rng.standard_normal((batch, 5))
    out.update({"cnn/X": X, "cnn/G": G, "cnn/dropout1/mask": mask})
    out["cnn/eps"], out["cnn/res1/scale"] = np.float64(eps), np.float64(scale)
    out.update({f"cnn/{key}": value for key, value in params.items()})

    f64 = {"dtype": torch.float64}
    conv1 = torch.nn.Conv2d(3, 4, 3, stride=1, padding=1, bias=True, **f64)
    bn1 = torch.nn.BatchNorm2d(4, eps=eps, **f64)
    res_conv1 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True, **f64)
    res_ln1 = torch.nn.LayerNorm([6, 5, 5], eps=eps, elementwise_affine=True, **f64)
    proj = torch.nn.Conv2d(4, 6, 1, stride=2, padding=0, bias=False, **f64)
    maxpool1 = torch.nn.MaxPool2d(2)
    dense1 = torch.nn.Linear(24, 5, **f64)
    with torch.no_grad():
        conv1.weight.copy_(t64(params["conv1/W"]))
        conv1.bias.copy_(t64(params["conv1/b"]))
        bn1.weight.copy_(t64(params["bn1/gamma"]))
        bn1.bias.copy_(t64(params["bn1/beta"]))
        res_conv1.weight.copy_(t64(params["res1.conv1/W"]))
        res_conv1.bias.copy_(t64(params["res1.conv1/b"]))
        res_ln1.weight.copy_(t64(params["res1.ln1/gamma"]))
        res_ln1.bias.copy_(t64(params["res1.ln1/beta"]))
        proj.weight.copy_(t64(params["res1/P"]))
        dense1.weight.copy_(t64(params["dense1/W"].T))  # torch's layout is (out, in)
        dense1.bias.copy_(t64(params["dense1/b"]))
    for module in (conv1, bn1, res_conv1, res_ln1, proj, maxpool1, dense1):
        module.train()  # batch statistics in bn1; biased variance in the normalization

    Xt = t64(X, grad=True)
    zs: dict[str, torch.Tensor] = {}
    as_: dict[str, torch.Tensor] = {}

    def record(name: str, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        zs[name], as_[name] = z, a
        return a

    h = record("conv1", z := conv1(Xt), torch.tanh(z))
    h = record("bn1", z := bn1(h), F.relu(z))
    branch = record("res1.conv1", z := res_conv1(h), z)
    branch = record("res1.ln1", z := res_ln1(branch), F.silu(z))
    h = record("res1", z := proj(h) + scale * branch, z)
    assert h.shape == (batch, 6, 5, 5)
    h = record("maxpool1", z := maxpool1(h), z)
    h = record("dropout1", z := h * t64(mask), z)
    h = record("flatten1", z := torch.flatten(h, 1), z)  # (C, H, W) order
    assert h.shape == (batch, 24)
    Y = record("dense1", z := dense1(h), F.gelu(z, approximate="none"))
    L = loss_fn("unit", Y, G)
    L.backward()

    out["cnn/value"] = np.float64(L.item())
    for name in zs:
        out[f"cnn/{name}/z"] = np64(zs[name])
        out[f"cnn/{name}/a"] = np64(as_[name])
    grads = {
        "conv1/dW": conv1.weight.grad,
        "conv1/db": conv1.bias.grad,
        "bn1/dgamma": bn1.weight.grad,
        "bn1/dbeta": bn1.bias.grad,
        "res1.conv1/dW": res_conv1.weight.grad,
        "res1.conv1/db": res_conv1.bias.grad,
        "res1.ln1/dgamma": res_ln1.weight.grad,
        "res1.ln1/dbeta": res_ln1.bias.grad,
        "res1/dP": proj.weight.grad,
        "dense1/dW": dense1.weight.grad.T,  # back to (fan_in, fan_out)
        "dense1/db": dense1.bias.grad,
    }
    for key, grad in grads.items():
        out[f"cnn/{key}"] = np64(grad).copy()
    out["cnn/dX"] = np64(Xt.grad)


def main() -> None:
    torch.set_num_threads(1)
    out: dict[str, np.ndarray] = {
        "torch_version": np.array(torch.__version__),
        "numpy_version": np.array(np.__version__),
    }
    activations(out)
    gains(out)
    losses(out)
    stack(out)
    cnn(out)
    for key, value in out.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert value.dtype == np.float64, key
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(out)} keys) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
