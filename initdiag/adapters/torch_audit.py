"""The audit of a PyTorch module: its state dict, with each tensor's role taken from the module that
owns it (a LayerNorm's weight is a normalization gain, an Embedding's an embedding), so nothing is
guessed from names."""

from __future__ import annotations

from typing import Any

from ..analysis.audit import AuditResult, audit
from ..network.model import ModelSpec
from .torch_load import require_torch
from .weights import to_numpy


def roles_of(model) -> dict[str, str]:
    """Every parameter's role, from its module's type."""
    torch = require_torch()
    nn = torch.nn
    candidates = ("LayerNorm", "GroupNorm", "RMSNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
                  "InstanceNorm1d", "InstanceNorm2d", "LocalResponseNorm")  # fmt: skip
    norms = tuple(getattr(nn, name) for name in candidates if hasattr(nn, name))
    roles: dict[str, str] = {}
    for prefix, module in model.named_modules():
        for key, _ in module.named_parameters(recurse=False):
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(module, norms):
                roles[name] = "norm_weight" if key == "weight" else "norm_bias"
            elif isinstance(module, nn.Embedding | nn.EmbeddingBag):
                roles[name] = "embedding"
            elif key.endswith("bias"):
                roles[name] = "bias"
            elif key.endswith("weight") and len(getattr(module, key).shape) >= 2:
                roles[name] = "weight"
    return roles


def audit_module(model: Any, *, layout: str = "torch", source: str | None = None) -> AuditResult:
    """Audit the weights *model* (an ``nn.Module``) holds now.

    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> r = audit_module(torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.LayerNorm(512)))
    >>> [(t.name, t.rule) for t in r.tensors]
    [('0.weight', 'torch_default'), ('0.bias', 'torch_default'), ('1.weight', 'ones'), ('1.bias', 'zeros')]
    """
    torch = require_torch()
    if not isinstance(model, torch.nn.Module):
        from ..errors import InitdiagError

        raise InitdiagError(f"audit_module needs an nn.Module, got {type(model).__name__}")
    state = {name: to_numpy(value) for name, value in model.state_dict().items()}
    return audit(state, layout=layout, roles=roles_of(model), source=source or type(model).__name__)


def audit_model_spec(spec: ModelSpec, seed: int, layout: str = "torch") -> AuditResult:
    """Build the model a `ModelSpec` names (torch's generator seeded, as a probe does) and audit it."""
    import numpy as np

    from .torch_load import build, load_factory

    torch = require_torch()
    factory = load_factory(spec)
    torch.manual_seed(int(np.random.SeedSequence(seed, spawn_key=(0, 6)).generate_state(1)[0]))
    return audit_module(build(spec, factory), layout=layout, source=spec.model)
