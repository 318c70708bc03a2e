"""Generate ``tests/data/mup_reference.npz``: a few training steps of the ``mup`` package's own μP
(``set_base_shapes``, ``MuReadout``, ``MuSGD``, ``MuAdam``) and of plain ``torch.optim`` (SP), each
layer's mean |output| at every step, as its ``coord_check`` records them.

The test suite (``tests/test_coordcheck.py``) trains initdiag's coordcheck runs from the same weights
and compares, so initdiag's per-layer learning rates (Tensor Programs V, Table 3) are checked against
mup's behaviour, not against initdiag's own reading of the table. This script never imports initdiag.

Regenerate (from the repository root) with torch and mup 1.0.0 (its own dependencies are not
needed for these modules)::

    pip install --no-deps --target /tmp/mupdeps mup==1.0.0
    PYTHONPATH=/tmp/mupdeps python tests/reference/make_mup_reference.py

Keys
----
mup_version, torch_version       0-d strings
X, labels                        (5, 6) float64 input, (5,) int64 labels in [0, 3)
base                             the base width (8): mup's base model
widths                           (2,) the widths trained: 8 (the base) and 32
<n>/W<i>, <n>/b<i>               width n's effective weights (fan_out, fan_in) (the readout's as the
                                 forward pass multiplies by: MuReadout's weight / width_mult) and biases
lr/<opt>                         the learning rate given to the optimizer (sgd, momentum 0.9, adam)
<param>/<opt>/<n>/l1             (3, 4) mean |x| of layer i's output (relu outputs, then the logits) at
                                 steps 0..3; param sp (torch.optim) or mup (mup.optim, MuReadout)
"""

from __future__ import annotations

from pathlib import Path

import mup
import numpy as np
import torch
import torch.nn.functional as F
from mup import MuAdam, MuReadout, MuSGD, set_base_shapes
from torch import nn

BASE, WIDTHS, D_IN, OUT, BATCH, STEPS = 8, (8, 32), 6, 3, 5, 3
LR = {"sgd": 0.2, "momentum": 0.2, "adam": 0.02}


def model(width: int, readout: bool) -> nn.Sequential:
    last = MuReadout(width, OUT) if readout else nn.Linear(width, OUT)
    return nn.Sequential(nn.Linear(D_IN, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), last).double()


def train(param: str, opt: str, width: int, weights, X, labels) -> np.ndarray:
    net = model(width, param == "mup")
    if param == "mup":
        set_base_shapes(net, model(BASE, True))
    linears = [net[0], net[2], net[4]]
    with torch.no_grad():
        for i, (layer, (W, b)) in enumerate(zip(linears, weights, strict=True)):
            scale = layer.width_mult() if isinstance(layer, MuReadout) else 1.0  # forward divides by it
            layer.weight.copy_(torch.from_numpy(W * scale))
            layer.bias.copy_(torch.from_numpy(b))
            assert i < 3
    cls = (
        {"sgd": MuSGD, "momentum": MuSGD, "adam": MuAdam}
        if param == "mup"
        else {"sgd": torch.optim.SGD, "momentum": torch.optim.SGD, "adam": torch.optim.Adam}
    )
    kwargs = {"momentum": 0.9} if opt == "momentum" else {}
    optimizer = cls[opt](net.parameters(), lr=LR[opt], **kwargs)
    records = np.zeros((3, STEPS + 1))
    watched = [net[1], net[3], net[4]]
    for t in range(STEPS + 1):
        outputs = []
        hooks = [
            m.register_forward_hook(lambda m, i, o, out=outputs: out.append(o.detach().abs().mean().item()))
            for m in watched
        ]
        logits = net(torch.from_numpy(X))
        for h in hooks:
            h.remove()
        records[:, t] = outputs
        if t == STEPS:
            break
        loss = F.cross_entropy(logits, torch.from_numpy(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return records


def main() -> None:
    rng = np.random.default_rng(2022)
    X = rng.standard_normal((BATCH, D_IN))
    labels = rng.integers(0, OUT, BATCH)
    out = {
        "mup_version": np.array(getattr(mup, "__version__", "1.0.0")),
        "torch_version": np.array(torch.__version__),
        "X": X,
        "labels": labels,
        "base": np.array(BASE),
        "widths": np.array(WIDTHS),
    }
    out.update({f"lr/{opt}": np.array(lr) for opt, lr in LR.items()})
    for n in WIDTHS:
        shapes = [(n, D_IN), (n, n), (OUT, n)]
        weights = [(rng.standard_normal(s) / np.sqrt(s[1]), 0.1 * rng.standard_normal(s[0])) for s in shapes]
        weights[2] = (weights[2][0] * np.sqrt(BASE / n), weights[2][1])  # muP's readout: std ~ 1/fan_in
        for i, (W, b) in enumerate(weights, start=1):
            out[f"{n}/W{i}"], out[f"{n}/b{i}"] = W, b
        for param in ("sp", "mup"):
            for opt in LR:
                out[f"{param}/{opt}/{n}/l1"] = train(param, opt, n, weights, X, labels)
    path = Path(__file__).resolve().parents[1] / "data" / "mup_reference.npz"
    np.savez(path, **out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
