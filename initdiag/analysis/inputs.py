"""The input batch of a probe, and the random stream each draw comes from."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.activations import get_activation
from ..core.files import load_npy
from ..core.init_parser import get_initializer
from ..core.initializers import Initializer, LayerContext, Normal, Uniform, compute_fans
from ..errors import InitdiagError


def stream(seed: int, trial: int, *key: int) -> np.random.Generator:
    """The Generator for one purpose of one trial (see the module doc)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(trial, *key)))


@dataclass
class InputSource:
    """``normal`` (N(0, 1)), ``uniform`` (U(-sqrt 3, sqrt 3), also unit variance), any
    ``normal:...`` / ``uniform:...`` the initializer grammar accepts, or a ``.npy`` file of shape
    (batch, *input_shape)."""

    text: str
    sampler: Initializer | None = None
    array: np.ndarray | None = None
    vocab: int | None = None  # token ids below vocab (drawn uniformly, or the file's)

    def batch(self, rng: np.random.Generator, batch: int, shape: tuple[int, ...], dtype) -> np.ndarray:
        """(batch, *shape) in PyTorch's order: images are (batch, C, H, W); token ids (batch, seq)
        int64, uniform in [0, vocab) (the ids a PyTorch model's probe draws from the same stream)."""
        if self.vocab is not None:
            if self.array is not None:
                return self.array.astype(np.int64, copy=False)
            return rng.integers(0, self.vocab, size=(batch, *shape))
        if self.array is not None:
            return self.array.astype(dtype, copy=False)
        full = (batch, *shape)
        ctx = LayerContext("input", full, compute_fans(full), get_activation("linear"), np.dtype(dtype))
        return self.sampler.sample(rng, ctx)


def get_input(text: str, shape: tuple[int, ...] | int, vocab: int | None = None) -> InputSource:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    text = str(text).strip()
    if vocab is not None:
        return _token_input(text, shape, vocab)
    if text.lower().endswith(".npy"):
        return InputSource(text, array=_load_npy(text, shape))
    name = text.split(":", 1)[0].strip().lower()
    if name not in ("normal", "uniform"):
        raise InitdiagError(
            f"--input '{text}': use normal, uniform, normal:STD, uniform:low=L,high=H or a FILE.npy"
        )
    if ":" not in text:
        sampler = Normal("normal", 1.0) if name == "normal" else Uniform(-math.sqrt(3), math.sqrt(3))
        return InputSource(name, sampler)
    sampler = get_initializer(text)
    if sampler.variance(None) == 0:
        raise InitdiagError(
            f"--input '{text}' has variance 0: every sample would be the same, so the probe would "
            "measure nothing; give a positive std (normal:1) or width (uniform:low=-1,high=1)"
        )
    return InputSource(str(sampler), sampler)


def _token_input(text: str, shape: tuple[int, ...], vocab: int) -> InputSource:
    """Token ids: ``tokens`` (uniform in [0, vocab); ``normal``, the default of --input, means it
    too) or ``tokens:FILE.npy`` (also a bare FILE.npy): integers of shape (batch, seq) below vocab."""
    lowered = text.lower()
    if lowered in ("tokens", "normal", "uniform"):
        return InputSource("tokens", vocab=vocab)
    path = text[7:].strip() if lowered.startswith("tokens:") else text
    if not path.lower().endswith(".npy"):
        raise InitdiagError(
            f"--input '{text}': the stack takes token ids; use tokens (uniform ids below vocab, the default) "
            "or tokens:FILE.npy"
        )
    array = load_npy(path)
    seq = shape[0]
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iu":
        raise InitdiagError(f"'{path}' must hold one integer array of token ids, shape (batch, {seq})")
    if array.ndim != 2 or array.shape[1] != seq or array.shape[0] < 1:
        raise InitdiagError(f"'{path}' has shape {array.shape} but the stack takes (batch, {seq}) token ids")
    if array.size and (array.min() < 0 or array.max() >= vocab):
        raise InitdiagError(
            f"'{path}': token ids must be in [0, {vocab}) (vocab {vocab}), got {array.min()}..{array.max()}"
        )
    return InputSource(f"tokens:{path}", array=array, vocab=vocab)


def _load_npy(path: str, shape: tuple[int, ...]) -> np.ndarray:
    want = ", ".join(map(str, shape))
    array = load_npy(path)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise InitdiagError(f"'{path}' must hold one numeric array of shape (batch, {want})")
    if array.shape[1:] != shape or array.shape[0] < 1:
        what = "channels" if len(shape) == 3 and array.ndim == 4 and array.shape[1] != shape[0] else "shape"
        raise InitdiagError(
            f"'{path}' has shape {array.shape} but the stack takes (batch, {want}), batch >= 1"
            + (f": {array.shape[1]} channels where the stack has {shape[0]}" if what == "channels" else "")
        )
    bad = array.size - int(np.count_nonzero(np.isfinite(array))) if array.dtype.kind == "f" else 0
    if bad:
        raise InitdiagError(
            f"--input '{path}' holds {bad} non-finite value{'s' if bad > 1 else ''} (nan or inf); "
            "the input must be finite numbers"
        )
    if array.size and not np.any(array != array.reshape(-1)[0]):
        raise InitdiagError(
            f"--input '{path}': every entry is {array.reshape(-1)[0]:g}, so every sample is the same and "
            "the probe would measure nothing; give varied inputs"
        )
    return array


def channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, H, W, C), the layout the layers compute in; flat batches unchanged."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x
