"""Reading an audited model's tensor names and shapes: fans in PyTorch's or Keras's layout, the role a
name gives a tensor (weight, embedding, bias, a norm's gain or bias), its block and its role within
blocks, RNN sizes, and the tensors saved twice (`initdiag.analysis.audit` uses them)."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_HEAD = re.compile(r"(^|\.)(lm_head|head|output|classifier|decoder|embed_out)\.weight$")
_EMBED = re.compile(
    r"(^|\.)(wte|embed_tokens|word_embeddings|tok_embeddings|token_embedding|embed|embedding)\.weight$"
)
# a module whose name says it normalizes: norm1, LayerNorm, input_layernorm, ln_f, bn3, gn
_NORM_MODULE = re.compile(r"norm|^(ln|bn|gn|rms)(\d+|_\w*)?$", re.IGNORECASE)
# nn.RNN/GRU/LSTM (weight_ih_l0, bias_hh_l1_reverse, weight_hr_l0) and their cells (weight_ih)
_RNN = re.compile(r"^(weight|bias)_(ih|hh|hr)(_l\d+(?:_reverse)?)?$")
# weight, in_proj_weight, weight_ih_l0, kernel (Keras, Flax), w (Haiku's linear/w), w1, W
_WEIGHT_NAME = re.compile(r"weight|kernel|(^|[/~_])[wW]\d*(:\d+)?$")


def plural(n: int, word: str) -> str:
    """``1 tensor``, ``2 tensors``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def fans_of(shape: tuple[int, ...], layout: str) -> tuple[int, int] | None:
    """(fan_in, fan_out) of a weight of *shape* in PyTorch's or Keras's layout."""
    if len(shape) < 2:
        return None
    if layout == "torch":
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _as_matrix(array: np.ndarray, layout: str) -> np.ndarray:
    """(fan_out rows..., fan_in): a conv kernel's output channels against everything else."""
    if layout == "torch":
        return array.reshape(array.shape[0], -1)
    return np.moveaxis(array, -1, 0).reshape(array.shape[-1], -1)


def _squeeze(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without its leading 1s (a ViT's pos_embed, 1 x 197 x 192, is a 197 x 192 table)."""
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _key(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def owner_weight(name: str) -> str:
    """The weight beside a bias: ``fc.weight`` for ``fc.bias``, ``weight_ih_l0`` for ``bias_ih_l0``."""
    prefix, _, last = name.rpartition(".")
    if _RNN.match(last) and last.startswith("bias"):
        return _key(prefix, "weight" + last[4:])
    return _key(prefix, last[: -len("bias")] + "weight" if last.endswith("_bias") else "weight")


def infer_role(
    name: str, shape: tuple[int, ...], shapes: Mapping[str, tuple[int, ...]], names: Iterable[str] = ()
) -> str:
    """A tensor's role from its name (a state dict carries no types). A matrix named like a weight
    (``weight``, ``kernel``, ``in_proj_weight``, ``w1``) is a weight, one named like an embedding
    (``wte``, ``tok``, ``emb``) an embedding, any other (a cls token) ``other``. A 1-D gain or bias
    is a normalization's only when its module's name says so (``ln_1``, ``norm1``, ``bn3``,
    ``LayerNorm``) or batch-norm buffers sit beside it (*names*: every name of the state dict): a
    LayerScale's ``ls1.gamma`` is not a norm."""
    prefix, _, last = name.rpartition(".")
    names = set(names) | set(shapes)
    norm = bool(_NORM_MODULE.search(prefix.rpartition(".")[2])) or any(
        _key(prefix, buffer) in names for buffer in _BUFFERS[:2]
    )
    if len(shape) >= 2:
        if re.search(r"emb|wte|wpe|tok", name, re.IGNORECASE):
            return "embedding"
        return "weight" if _WEIGHT_NAME.search(last) else "other"
    if len(shape) == 1:
        if last in ("beta", "b") or last.startswith("bias") or last.endswith("bias"):
            return "norm_bias" if norm and not _RNN.match(last) else "bias"
        if last in ("weight", "gamma", "g", "scale"):
            return "norm_weight" if norm else "other"
    return "other"


def _block_of(name: str) -> str | None:
    """``h.5`` for ``transformer.h.5.attn.c_attn.weight``: up to the first numbered segment."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def _role_key(name: str) -> str:
    return ".".join("#" if part.isdigit() else part for part in name.split("."))


def count_blocks(names: Iterable[str]) -> int | None:
    """The number of blocks (GPT-2's L): the most indices any numbered container holds."""
    seen: dict[str, set[str]] = defaultdict(set)
    for name in names:
        block = _block_of(name)
        if block:
            container, _, index = block.rpartition(".")
            seen[container].add(index)
    return max((len(v) for v in seen.values()), default=0) or None


def rnn_hidden_sizes(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """hidden_size of every parameter of an nn.RNN/GRU/LSTM (or cell), from its names: weight_hh is
    (gates * hidden, hidden), or (gates * hidden, proj) beside an LSTM's weight_hr (proj, hidden)."""
    out = {}
    for name in shapes:
        prefix, _, last = name.rpartition(".")
        match = _RNN.match(last)
        if not match:
            continue
        suffix = match.group(3) or ""
        hr, hh = (
            shapes.get(_key(prefix, "weight_hr" + suffix)),
            shapes.get(_key(prefix, "weight_hh" + suffix)),
        )
        hidden = hr[1] if hr and len(hr) == 2 else hh[1] if hh and len(hh) == 2 else None
        if hidden:
            out[name] = int(hidden)
    return out


def _same_values(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """{alias: first name} for tensors whose values are exactly another's (a tied tensor saved twice).
    Constant tensors (zero biases) are alike without being tied, and are left alone. Candidates share
    their shape, dtype and first values; only those are compared whole."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for name, array in arrays.items():
        flat = array.ravel()
        if flat.size > 1 and not (flat == flat[0]).all():
            groups[(array.shape, array.dtype.str, flat[:16].tobytes())].append(name)
    aliases: dict[str, str] = {}
    for names in groups.values():
        for i, alias in enumerate(names[1:], 1):
            first = next(
                (n for n in names[:i] if n not in aliases and np.array_equal(arrays[n], arrays[alias])), None
            )
            if first is not None:
                aliases[alias] = first
    return aliases
