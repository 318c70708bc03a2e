"""Reading named weight tensors from a file, as numpy arrays, for `initdiag.analysis.audit`.

``.npz`` (numpy's archive; no torch needed), ``.npy`` (one array, named by the file), ``.safetensors``
(the ``safetensors`` package; through torch when torch is installed, so bfloat16 reads too) and
``.pt``/``.pth``/``.bin``/``.ckpt`` (``torch.load(weights_only=True)``: tensors and containers only,
never code). A checkpoint that holds its weights under ``state_dict``, ``model`` or ``module`` is
opened there; nested dicts are flattened with dots.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InitdiagError, one_line

SUFFIXES = (".npz", ".npy", ".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_CONTAINERS = ("state_dict", "model_state_dict", "model", "module", "params", "weights")


def load_weights(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) of every tensor in the file (read lazily where the format allows)."""
    path = Path(path)
    if not path.exists():
        raise InitdiagError(f"file not found: '{path}'")
    if path.is_dir():
        raise InitdiagError(f"'{path}' is a folder; give a weights file ({', '.join(SUFFIXES)})")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InitdiagError(
            f"'{path}': unknown weights format '{suffix or path.name}'; allowed: {', '.join(SUFFIXES)}"
        )
    if suffix == ".npz":
        return _npz(path)
    if suffix == ".npy":
        return iter([(path.stem, _npy(path))])
    if suffix == ".safetensors":
        return _safetensors(path)
    return _torch(path)


ALLOWED = (
    "allowed: a state dict saved by torch.save (.pt, .pth, .bin, .ckpt), .safetensors, "
    "numpy's .npz archive or .npy array"
)


def _start(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(64)
    except OSError as exc:
        raise InitdiagError(f"'{path}' cannot be read: {one_line(exc.strerror or str(exc))}") from None


def _looks(head: bytes) -> str:
    """What a file is, from its first bytes, for a message that says what it is not."""
    if not head:
        return "it is empty"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "it is a zip archive of something else"
    if head.startswith(b"\x93NUMPY"):
        return "it is a .npy array"
    if head[:1] == b"\x80":
        return "it is a pickle"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "its first bytes are none of these formats'"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"it is text ('{one_line(first, 30)}')" if first else "it is blank text"


def _npz(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    head = _start(path)
    if head.startswith(b"\x93NUMPY"):
        raise InitdiagError(f"'{path}' is a .npy array, not a .npz archive; rename it to .npy")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise InitdiagError(
            f"'{path}' is not a .npz archive (a zip of .npy arrays): {_looks(head)}; {ALLOWED}"
        )
    try:
        archive = np.load(path, allow_pickle=False)
        names = list(archive.files)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InitdiagError(f"'{path}' is not a readable .npz archive: {one_line(str(exc))}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InitdiagError(f"'{path}' is a .npy array, not a .npz archive")

    def read():
        with archive:
            for name in names:
                try:
                    yield name, archive[name]
                except ValueError as exc:  # an object array needs pickle: refused
                    raise InitdiagError(f"'{path}': array '{name}' cannot be read without pickle: "
                                        f"{one_line(str(exc))}") from None  # fmt: skip

    return read()


def _npy(path: Path) -> np.ndarray:
    head = _start(path)
    if not head.startswith(b"\x93NUMPY"):
        raise InitdiagError(f"'{path}' is not a .npy array: {_looks(head)}; {ALLOWED}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InitdiagError(f"'{path}' is not a readable .npy array: {one_line(str(exc))}") from None


def _safetensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise InitdiagError(
            "reading .safetensors needs the safetensors package: pip install 'initdiag[torch]'"
        ) from None
    try:
        import torch  # noqa: F401  (bfloat16 has no numpy dtype; torch reads it)

        framework = "pt"
    except ImportError:
        framework = "numpy"
    try:
        handle = safe_open(str(path), framework=framework)
        # a safetensors header is sorted by name; h.2 before h.10 reads as the model's order
        names = sorted(handle.keys(), key=_natural)
    except Exception as exc:  # SafetensorError: a header that is not one
        head = _start(path)
        # a header starts with its length, 8 bytes little-endian: zeros at the top
        text = not head or b"\x00" not in head[:8]
        raise InitdiagError(f"'{path}' is not a readable .safetensors file: "
                            + (f"{_looks(head)}; {ALLOWED}" if text else one_line(str(exc)))
                            ) from None  # fmt: skip

    def read():
        for name in names:
            try:
                tensor = handle.get_tensor(name)
            except Exception as exc:
                raise InitdiagError(
                    f"'{path}': tensor '{name}' cannot be read: {one_line(str(exc))}"
                ) from None
            yield name, to_numpy(tensor)

    return read()


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _torch(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    from .torch_load import require_torch

    torch = require_torch()
    import pickle

    head = _start(path)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip, or its legacy pickle
        raise InitdiagError(f"'{path}' is not a PyTorch file (torch.save writes a zip archive): "
                            f"{_looks(head)}; {ALLOWED}")  # fmt: skip
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            data = torch.load(path, map_location="cpu", weights_only=True)  # an old, non-zip file
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        what = f"a pickled {found.group(1)}" if found else "more than tensors"
        raise InitdiagError(
            f"'{path}' holds {what}: torch.load(weights_only=True) refuses it, and initdiag never runs a "
            "pickle's code; save model.state_dict() instead, or audit the module with --model"
        ) from None
    except Exception as exc:
        zipped = re.search(r"failed reading zip archive: ([^.]+)", str(exc))
        why = f"its zip archive is cut short or corrupt ({zipped.group(1)})" if zipped else str(exc)
        raise InitdiagError(f"'{path}' is not a readable PyTorch file: {one_line(why, 160)}") from None
    for key in _CONTAINERS:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if isinstance(data, torch.nn.Module):  # pragma: no cover - weights_only refuses modules
        data = data.state_dict()
    if not isinstance(data, dict):
        raise InitdiagError(f"'{path}' holds a {type(data).__name__}, not a dict of tensors (a state dict)")
    return ((name, to_numpy(value)) for name, value in _flatten(data, "") if value is not None)


def _flatten(data: dict, prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            yield name, value


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array of a tensor: half precisions become float32 (numpy has no bfloat16)."""
    if isinstance(value, np.ndarray):
        return value
    tensor = value.detach().cpu() if hasattr(value, "detach") else value
    if hasattr(tensor, "is_floating_point") and tensor.is_floating_point() and tensor.element_size() < 4:
        tensor = tensor.float()
    return tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)


def audit_file(path: str | Path, *, layout: str = "torch"):
    """Audit the weights in a file (`load_weights`): `initdiag.analysis.audit.audit` of its tensors."""
    from ..analysis.audit import audit

    return audit(load_weights(path), layout=layout, source=str(path))
