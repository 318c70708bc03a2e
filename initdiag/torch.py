"""initdiag for PyTorch models (the ``torch`` extra: ``pip install 'initdiag[torch]'``).

    >>> import torch, initdiag.torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    >>> initdiag.torch.probe_module(net, input_shape="64", init="he", batch=16).summary.verdict
    'ok'

`probe_module` probes a module as ``initdiag probe --model`` does and returns the same
`ProbeResult` as `initdiag.probe`; `build_module` turns an initdiag stack into an ``nn.Module``
(whose probe with the same initializer and seed gives the spec probe's numbers); `audit_module`
reports the weights a module starts from, as ``initdiag audit --model``.
"""

from __future__ import annotations

from .adapters.torch_build import build_module
from .adapters.torch_probe import probe_module


def audit_module(model, **options):
    """The weights *model* starts from, tensor by tensor (`initdiag.analysis.audit.audit`)."""
    from .adapters.torch_audit import audit_module as _audit_module

    return _audit_module(model, **options)


__all__ = ["audit_module", "build_module", "probe_module"]
