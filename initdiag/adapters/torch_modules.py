"""What a PyTorch module is in initdiag's terms: its kind (Linear is ``dense``, BatchNorm2d
``batchnorm``, anything unknown ``module:<ClassName>``), the initdiag activation of an activation
module (for saturation), and the leaves a probe hooks."""

from __future__ import annotations

from typing import Any

from ..core.activations import Activation, get_activation
from .torch_load import require_torch


def kind_of(module) -> str:
    """initdiag's kind for a torch module (``module:<ClassName>`` for any other)."""
    torch = require_torch()
    nn = torch.nn
    table = (
        (nn.Linear, "dense"), (nn.Conv1d, "conv1d"), (nn.Conv2d, "conv2d"), (nn.Conv3d, "conv3d"),
        ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), "batchnorm"), (nn.LayerNorm, "layernorm"),
        (nn.GroupNorm, "groupnorm"), (getattr(nn, "RMSNorm", ()), "rmsnorm"),
        ((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), "maxpool2d"),
        ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
          nn.AdaptiveAvgPool3d), "global_avgpool"),
        ((nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d), "dropout"), (nn.Flatten, "flatten"),
        (nn.Embedding, "embedding"), (nn.MultiheadAttention, "attention"),
    )  # fmt: skip
    for classes, kind in table:
        if classes and isinstance(module, classes):
            return kind
    if activation_of(module) is not None:
        return "activation"
    return f"module:{type(module).__name__}"


def activation_of(module) -> Activation | None:
    """initdiag's activation for a torch activation module (its derivative gives sat%), or None."""
    torch = require_torch()
    nn = torch.nn
    if isinstance(module, nn.ReLU):
        return get_activation("relu")
    if isinstance(module, nn.LeakyReLU):
        return get_activation(f"leaky_relu:{module.negative_slope}")
    if isinstance(module, nn.ELU):
        return get_activation(f"elu:{module.alpha}")
    if isinstance(module, nn.Softplus):
        return get_activation("softplus") if module.beta == 1 else None
    named = {nn.SELU: "selu", nn.GELU: "gelu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
             nn.Identity: "linear"}  # fmt: skip
    for cls, name in named.items():
        if type(module) is cls:
            return get_activation(name)
    return None


def leaves(model) -> list[tuple[str, Any]]:
    """(name, module) of every leaf in ``named_modules()`` order: modules without children, and
    attention modules as a whole (their projections are inside them)."""
    torch = require_torch()
    out, skip = [], []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in skip):
            continue
        if isinstance(module, torch.nn.MultiheadAttention):
            out.append((name, module))
            skip.append(name)
        elif not any(True for _ in module.children()):
            out.append((name or type(module).__name__, module))
    return out
