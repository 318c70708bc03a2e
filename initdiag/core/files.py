"""Reading the user's numpy files: one place that refuses pickles and words every failure."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from ..errors import InitdiagError


def _load(path: str, what: str):
    """``np.load`` with ``allow_pickle=False``: an array for .npy, a dict of arrays for .npz."""
    if not Path(path).is_file():
        raise InitdiagError(f"file not found: '{path}' ({what})")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise InitdiagError(f"'{path}' cannot be read: {exc.strerror or exc}") from None
    # np.load falls back to unpickling anything else, which would read as "pickled data"
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK\x03\x04"):
        raise InitdiagError(f"'{path}' is not a numpy file (.npy or .npz, as numpy.save / numpy.savez write)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {key: loaded[key] for key in loaded.files}
        return loaded
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InitdiagError(
                f"'{path}' holds pickled Python objects, refused (allow_pickle=False); "
                "save plain numeric arrays with numpy.save / numpy.savez"
            ) from None
        raise InitdiagError(f"'{path}' is not a readable numpy file: {exc}") from None
    except (OSError, EOFError) as exc:
        raise InitdiagError(f"'{path}' is not a readable numpy file: {exc}") from None


def load_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive by name, read once per file (its absolute path, size and time of
    change: a relative path in another directory, or a rewritten file, is read again)."""
    try:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (str(path), 0, 0)
    return _load_npz(path, *key)


@cache
def _load_npz(path: str, *key) -> dict[str, np.ndarray]:
    arrays = _load(path, "file:PATH.npz needs an existing .npz")
    if not isinstance(arrays, dict):
        raise InitdiagError(f"'{path}' is a single array; file: needs an .npz of arrays by layer name")
    return arrays


def load_npy(path: str) -> np.ndarray:
    """One array from a .npy file."""
    array = _load(path, "--input takes normal, uniform or a FILE.npy")
    if isinstance(array, dict):
        raise InitdiagError(f"'{path}' is an .npz archive; --input needs one array in a .npy file")
    return array
