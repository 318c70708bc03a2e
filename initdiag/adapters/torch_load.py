"""Finding, building and sizing a PyTorch model named on the command line or in a spec file.

Imports torch only inside its functions (`require_torch`), so that importing initdiag, and every
command that does not look at a model, never loads it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import InitdiagError, one_line
from ..network.model import InputShape, ModelSpec

DEVICES = ("cpu", "cuda", "mps")


def require_torch():
    """The torch module, or the one line that says how to get it."""
    try:
        import torch
    except ImportError:
        raise InitdiagError(
            "this needs PyTorch, which is an optional extra: pip install 'initdiag[torch]'"
        ) from None
    return torch


def load_factory(spec: ModelSpec):
    """The class or function ``spec.model`` names: ``PATH.py:FACTORY`` (a relative path is found
    from the spec file's folder) or ``package.module:FACTORY`` (importable from the current folder)."""
    ref = spec.model
    where, sep, name = str(ref).rpartition(":")
    usage = "write PATH.py:FACTORY or package.module:FACTORY, e.g. models.py:make_net"
    if not sep or not where or not name.isidentifier():
        raise InitdiagError(f"--model '{one_line(ref)}': {usage}")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_absolute() and spec.base_dir:
            path = Path(spec.base_dir) / path
        if not path.is_file():
            raise InitdiagError(f"--model '{one_line(ref)}': file not found: {path}")
        module_name = f"_initdiag_model_{abs(hash(str(path.resolve())))}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader)
        sys.path.insert(0, str(path.resolve().parent))  # the file may import its neighbours
        try:
            loader.loader.exec_module(module)
        except Exception as exc:
            raise InitdiagError(
                f"--model '{one_line(ref)}': running {path.name} failed: {_said(exc)}"
            ) from None
        finally:
            sys.path.remove(str(path.resolve().parent))
        what = path.name
    else:
        if "" not in sys.path and "." not in sys.path:
            sys.path.insert(0, "")  # `package.module` from the current folder, as `python -m` finds it
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            raise InitdiagError(f"--model '{one_line(ref)}': no module named '{exc.name}'; {usage}") from None
        except Exception as exc:
            raise InitdiagError(
                f"--model '{one_line(ref)}': importing {where} failed: {_said(exc)}"
            ) from None
        what = where
    if not hasattr(module, name):
        defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        hint = f"; it defines: {', '.join(defined[:12])}" if defined else ""
        raise InitdiagError(f"--model '{one_line(ref)}': {what} has no '{name}'{hint}")
    factory = getattr(module, name)
    if not callable(factory):
        raise InitdiagError(f"--model '{one_line(ref)}': {name} in {what} is not a class or function")
    return factory


def _said(exc: BaseException) -> str:
    """An exception as one line: its type and message."""
    message = one_line(str(exc), 200)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def build(
    spec: ModelSpec, factory=None, seed: int | None = None, device: str = "cpu", dtype: str = "float32"
):
    """Call the factory with the spec's arguments (torch's own random generator seeded with *seed*,
    so "keep" draws the same weights every time) and check it returns an ``nn.Module``."""
    torch = require_torch()
    factory = factory or load_factory(spec)
    if seed is not None:
        torch.manual_seed(seed)
    try:
        model = factory(**spec.args)
    except InitdiagError:
        raise
    except Exception as exc:
        raise InitdiagError(f"--model '{one_line(spec.model)}': calling it raised {_said(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise InitdiagError(
            f"--model '{one_line(spec.model)}' returned {type(model).__name__!r}, not a torch.nn.Module"
        )
    return model.to(device=device, dtype=getattr(torch, dtype))


def check_device(device: str) -> str:
    torch = require_torch()
    device = device.strip().lower()
    if device not in DEVICES:
        raise InitdiagError(f"--device '{one_line(device)}' is not one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InitdiagError("--device cuda: no CUDA device is available here (torch sees none)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InitdiagError("--device mps: no MPS device is available here")
    return device


def example_input(shape: InputShape, batch: int, device: str = "meta", dtype: str = "float32"):
    torch = require_torch()
    if shape.kind == "tokens":
        return torch.zeros((batch, *shape.shape), dtype=torch.long, device=device)
    return torch.zeros((batch, *shape.shape), dtype=getattr(torch, dtype), device=device)


def estimate_bytes(spec: ModelSpec, factory, batch: int, dtype: str, trials: int = 1) -> tuple[int, str]:
    """Bytes a probe of the model will need, from a dry run on the ``meta`` device (shapes only,
    nothing allocated): its parameters, their gradients and a copy (re-initialised weights), and
    every module output three times (kept for backward, its gradient, initdiag's float64 chunks are
    bounded apart). Returns (bytes, how it was estimated)."""
    torch = require_torch()
    item = torch.finfo(getattr(torch, dtype)).bits // 8
    try:
        with torch.device("meta"):
            model = factory(**spec.args)
    except Exception:
        return 0, "not estimated: the model could not be built on the meta device"
    if not isinstance(model, torch.nn.Module):
        return 0, "not estimated"
    params = sum(p.numel() for p in model.parameters())
    outputs = [0]

    def count(_module, _inputs, output):
        for tensor in output if isinstance(output, tuple | list) else (output,):
            if isinstance(tensor, torch.Tensor):
                outputs[0] += tensor.numel()

    handles = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            model(example_input(spec.input_shape, batch))
        how = "a dry run on the meta device"
    except Exception:
        outputs[0] = 0
        how = "the parameters only (the meta dry run failed)"
    finally:
        for handle in handles:
            handle.remove()
    total = item * (3 * params + 3 * outputs[0]) + 64 * (1 << 20)
    return int(total), how


def parameter_count(model) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())


def model_spec(
    model: str, input_shape: Any, args: list[str] | dict | None = None, init: str = "keep", **extra: Any
) -> ModelSpec:
    """A `ModelSpec` from command-line text."""
    from ..network.model import parse_input_shape, parse_model_args

    if input_shape is None:
        raise InitdiagError("--model needs --input-shape, e.g. 3x32x32 or seq=128,vocab=50257")
    return ModelSpec(str(model), parse_input_shape(input_shape), parse_model_args(args), init, **extra)
