"""A spec stack as a PyTorch module: the same layers in PyTorch's layouts, so that a model built
here and probed by `probe_module` with the same initializer and seed gives a spec probe's numbers
(the weights are drawn from the same streams). Also a way to take an initdiag spec into PyTorch.

Layers map as a PyTorch user would write them: dense → ``nn.Linear`` then its activation module,
conv2d → ``nn.Conv2d`` (an uneven ``same`` padding, as TensorFlow pads, inside the module),
batchnorm → ``nn.BatchNorm1d/2d`` (training mode), layernorm → ``nn.LayerNorm(sample shape)``,
maxpool2d, global_avgpool → ``nn.AdaptiveAvgPool2d(1)`` + ``nn.Flatten``, flatten, dropout (a
module that applies initdiag's own mask for the trial, so both draw the same units), a residual
block → a module computing ``shortcut(x) + scale * branch(x)``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..analysis.inputs import stream
from ..core.activations import Activation
from ..core.ops import dropout_mask
from ..network.graph import Block, rows
from ..network.stack import StackSpec
from .torch_load import require_torch

_DROPOUT_STREAM = 3  # a spec probe's dropout masks


def act_module(act: Activation):
    """The torch module of an initdiag activation, or None for linear."""
    torch = require_torch()
    nn = torch.nn
    if act.kind == "linear":
        return None
    if act.kind == "leaky_relu":
        return nn.LeakyReLU(act.param)
    if act.kind == "elu":
        return nn.ELU(act.param)
    return {"relu": nn.ReLU, "selu": nn.SELU, "gelu": nn.GELU, "silu": nn.SiLU, "softplus": nn.Softplus,
            "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[act.kind]()  # fmt: skip


def build_module(
    stack: StackSpec, *, batch: int = 256, seed: int = 0, trial: int = 0, dtype: str = "float32"
):
    """(module, row_streams): the stack as an ``nn.Module`` and, for every weighted module's name, the
    spec row whose random stream its weights come from (pass it to `probe_module`). *batch*, *seed*
    and *trial* fix the dropout masks, which are drawn as a spec probe draws them."""
    torch = require_torch()
    nn = torch.nn
    stack = stack if not isinstance(stack.init, str) else stack.resolve()
    graph = rows(stack)
    row_streams: dict[str, int] = {}

    class Residual(nn.Module):
        """shortcut(x) + scale * branch(x); the shortcut is the identity or a projection."""

        def __init__(self, branch, projection, scale: float):
            super().__init__()
            self.branch, self.projection, self.scale = branch, projection, scale

        def forward(self, x):
            h = self.branch(x)
            return (x if self.projection is None else self.projection(x)) + self.scale * h

    class FixedDropout(nn.Dropout):
        """Inverted dropout with a given mask (initdiag's, for this batch and trial)."""

        def __init__(self, mask):
            super().__init__()
            self.register_buffer("mask", mask)

        def forward(self, x):
            return x * self.mask

    class PaddedConv2d(nn.Conv2d):
        """A convolution with TensorFlow's uneven ``same`` padding (the odd cell after), in one module,
        so that its dL/dx is the gradient of its own input."""

        def __init__(self, *args, pads=(0, 0, 0, 0), **kwargs):
            super().__init__(*args, **kwargs)
            self.pads = pads

        def forward(self, x):
            top, bottom, left, right = self.pads
            return super().forward(torch.nn.functional.pad(x, (left, right, top, bottom)))

    def modules_of(index: int, prefix: str) -> list[tuple[str, object]]:
        row = graph.rows[index]
        layer, key = row.layer, row.name.rpartition(".")[2]
        out: list[tuple[str, object]] = []
        if row.kind == "dense":
            out.append((key, nn.Linear(row.in_shape[0], row.units)))
            row_streams[prefix + key] = index
        elif row.kind == "conv2d":
            top, bottom, left, right = row.pads
            o, c, kh, kw = row.weight_shape
            if top == bottom and left == right:
                out.append((key, nn.Conv2d(c, o, (kh, kw), stride=row.stride, padding=(top, left))))
            else:
                out.append((key, PaddedConv2d(c, o, (kh, kw), stride=row.stride, pads=row.pads)))
            row_streams[prefix + key] = index
        elif row.kind == "batchnorm":
            norm = nn.BatchNorm2d if len(row.out_shape) == 3 else nn.BatchNorm1d
            out.append((key, norm(row.units, eps=layer.get("eps"))))
        elif row.kind == "layernorm":
            out.append((key, nn.LayerNorm(list(row.out_shape), eps=layer.get("eps"))))
        elif row.kind == "maxpool2d":
            out.append((key, nn.MaxPool2d(layer.get("size"))))
        elif row.kind == "global_avgpool":
            out += [(key, nn.AdaptiveAvgPool2d(1)), (f"{key}_flatten", nn.Flatten())]
        elif row.kind == "flatten":
            out.append((key, nn.Flatten()))
        elif row.kind == "dropout":
            rng = stream(seed, trial, _DROPOUT_STREAM, index)
            shape = row.out_shape if len(row.out_shape) == 1 else (*row.out_shape[1:], row.out_shape[0])
            mask = dropout_mask(rng, (batch, *shape), layer.rate, np.dtype(dtype))
            if mask.ndim == 4:  # drawn channels-last, as initdiag computes; torch is channels-first
                mask = np.ascontiguousarray(mask.transpose(0, 3, 1, 2))
            out.append((key, FixedDropout(torch.as_tensor(mask))))
        if (
            row.kind not in ("residual",)
            and row.layer.act is not None
            and row.kind in ("dense", "conv2d", "batchnorm", "layernorm", "activation")
        ):
            act = act_module(row.layer.act)
            if act is not None:
                out.append((f"{key}_act" if row.kind != "activation" else key, act))
        return out

    def sequence(tree, prefix: str):
        parts: list[tuple[str, object]] = []
        for item in tree:
            if isinstance(item, Block):
                row = graph.rows[item.sum_row]
                key = row.name.rpartition(".")[2]
                branch = sequence(item.branch, f"{prefix}{key}.branch.")
                projection = None
                if row.weight_shape is not None:
                    if len(row.weight_shape) == 2:
                        projection = nn.Linear(*row.weight_shape, bias=False)
                    else:
                        o, c, _, _ = row.weight_shape
                        projection = nn.Conv2d(c, o, 1, stride=row.stride, bias=False)
                    row_streams[f"{prefix}{key}.projection"] = item.sum_row
                parts.append((key, Residual(branch, projection, float(row.layer.get("scale")))))
            else:
                parts += modules_of(item, prefix)
        return nn.Sequential(OrderedDict(parts))

    module = sequence(graph.tree, "")
    return module.to(getattr(torch, dtype)), row_streams
