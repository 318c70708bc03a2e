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
    """Every parameter's role, from its module's type: a norm's (torch's norms, or a class whose name
    says Norm, as LLaMA's RMSNorm) gain and bias, an embedding, a bias, a weight matrix; any other
    parameter (a LayerScale's gamma, a cls token) is ``other``."""
    torch = require_torch()
    nn = torch.nn
    candidates = ("LayerNorm", "GroupNorm", "RMSNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
                  "InstanceNorm1d", "InstanceNorm2d", "LocalResponseNorm")  # fmt: skip
    norms = tuple(getattr(nn, name) for name in candidates if hasattr(nn, name))
    roles: dict[str, str] = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        for key, value in module.named_parameters(recurse=False, remove_duplicate=False):
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(module, norms) or "norm" in type(module).__name__.lower():
                roles[name] = "norm_bias" if "bias" in key else "norm_weight"
            elif isinstance(module, nn.Embedding | nn.EmbeddingBag):
                roles[name] = "embedding"
            elif key.startswith("bias") or key.endswith("bias"):
                roles[name] = "bias"
            elif "weight" in key and value.ndim >= 2:
                roles[name] = "weight"
            elif value.ndim < 2:
                roles[name] = "other"
            # any other matrix (a raw nn.Parameter ``w1``, a cls token): by its name, as in a file
    return roles


def kinds_of(model) -> dict[str, str]:
    """Every parameter's module type (``Conv2d``, ``BatchNorm2d``): siblings are of one type."""
    return {
        f"{prefix}.{key}" if prefix else key: type(module).__name__
        for prefix, module in model.named_modules(remove_duplicate=False)
        for key, _ in module.named_parameters(recurse=False, remove_duplicate=False)
    }


def tied_of(model) -> dict[str, str]:
    """{name: first name} of the entries of the state dict that are one tensor (the same storage, as
    an output head tied to the token embedding)."""
    first: dict[tuple, str] = {}
    tied: dict[str, str] = {}
    for name, value in model.state_dict(keep_vars=True).items():
        if not value.is_floating_point() or value.numel() == 0:
            continue
        key = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), value.stride())
        if key in first:
            tied[name] = first[key]
        else:
            first[key] = name
    return tied


def has_dropout(model) -> bool:
    """Whether any dropout module of the model drops something (its masks break symmetries)."""
    torch = require_torch()
    return any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


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
    return audit(state, layout=layout, roles=roles_of(model), source=source or type(model).__name__,
                 kinds=kinds_of(model), tied=tied_of(model), dropout=has_dropout(model))  # fmt: skip


def audit_model_spec(spec: ModelSpec, seed: int, layout: str = "torch") -> AuditResult:
    """Build the model a `ModelSpec` names (torch's generator seeded, as a probe does) and audit it."""
    import numpy as np

    from .torch_load import build, load_factory

    torch = require_torch()
    factory = load_factory(spec)
    torch.manual_seed(int(np.random.SeedSequence(seed, spawn_key=(0, 6)).generate_state(1)[0]))
    return audit_module(build(spec, factory), layout=layout, source=spec.model)
