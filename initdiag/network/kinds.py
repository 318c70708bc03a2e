"""The layer kinds a stack is made of: what each kind takes (`KINDS`), one layer's description
(`LayerSpec`) and the checks of its keys and values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import SpecLayerError


class KindInfo(NamedTuple):
    """What a layer kind takes: its keys (besides kind and name), the required ones, whether it
    has sampled weights, whether it applies an activation, and the prefix of its automatic name."""

    keys: tuple[str, ...]
    required: tuple[str, ...]
    weighted: bool
    takes_act: bool
    prefix: str
    doc: str


KINDS: dict[str, KindInfo] = {
    "dense": KindInfo(("units", "act", "init", "bias_init"), ("units",), True, True, "dense",
                      "z = x @ W + b, W of shape (fan_in, units)"),
    "conv2d": KindInfo(("channels", "kernel", "stride", "padding", "act", "init", "bias_init"), ("channels",),
                       True, True, "conv", "2-D convolution, W of shape (channels, in_channels, kh, kw)"),
    "flatten": KindInfo((), (), False, False, "flatten", "(C, H, W) -> C*H*W features, in PyTorch's order"),
    "maxpool2d": KindInfo(("size",), (), False, False, "maxpool", "max of size x size windows"),
    "global_avgpool": KindInfo((), (), False, False, "avgpool", "(C, H, W) -> (C,), the mean over H and W"),
    "batchnorm": KindInfo(("eps", "act"), (), False, True, "bn",
                          "training-mode batch statistics per feature / channel, gamma 1, beta 0"),
    "layernorm": KindInfo(("eps", "act"), (), False, True, "ln",
                          "per-sample statistics over all features, gamma 1, beta 0"),
    "dropout": KindInfo(("rate",), ("rate",), False, False, "dropout", "inverted dropout, own random stream"),
    "activation": KindInfo(("act",), (), False, True, "act", "a = act(x)"),
    "residual": KindInfo(("layers", "scale", "act", "init", "bias_init"), ("layers",), False, False, "res",
                         "x + scale * branch(x), with a projection of x when shapes differ"),
    # transformers (token streams: one sample is (seq, d); see docs/transformers.md)
    "embedding": KindInfo(("d", "vocab", "positions", "max_seq", "scale", "init"), ("d",), True, False, "emb",
                          "token ids -> scale * W[ids], W of shape (vocab, d), plus positions"),
    "attention": KindInfo(("heads", "head_dim", "causal", "bias", "qk_norm", "init", "bias_init"), ("heads",),
                          True, False, "attn", "multi-head self-attention, (seq, d) -> (seq, d)"),
    "mlp": KindInfo(("mult", "hidden", "act", "bias", "init", "bias_init"), (), True, False, "mlp",
                    "d -> hidden -> d on every token, plain or gated (swiglu, geglu)"),
    "transformer": KindInfo(("heads", "head_dim", "causal", "bias", "qk_norm", "mult", "hidden", "act",
                             "norm", "sandwich", "norm_type", "eps", "alpha", "blocks", "init", "bias_init"),
                            ("heads",), True, False, "block",
                            "blocks of attention then an MLP, each added to the stream"),
    "rmsnorm": KindInfo(("eps", "act"), (), False, True, "rms",
                        "x / sqrt(mean(x^2) + eps) * gamma over each token's features, gamma 1"),
    "unembedding": KindInfo(("vocab", "tied", "bias", "init", "bias_init"), (), True, False, "unembed",
                            "(seq, d) -> (seq, vocab) logits, x @ W or tied to the embedding (x @ E^T)"),
}  # fmt: skip


LAYER_KINDS = tuple(KINDS)


NORM_KINDS = ("batchnorm", "layernorm", "rmsnorm")


# kinds that take a token stream (one sample (seq, d)) or make one
TOKEN_KINDS = ("embedding", "attention", "mlp", "transformer", "unembedding")


# positions of an embedding, norm placements and norm types of a transformer block
POSITIONS = ("learned", "sinusoidal", "none")
NORM_PLACEMENTS = ("pre", "post", "deepnorm", "none")
NORM_TYPES = ("layernorm", "rmsnorm")


POOL_KINDS = ("maxpool2d", "global_avgpool")


PADDINGS = ("same", "valid")


NORMS = ("none", "batch", "layer")


# defaults of the optional keys
DEFAULTS: dict[str, Any] = {
    "kernel": 3, "stride": 1, "padding": "same", "size": 2, "eps": 1e-5, "scale": 1.0, "positions": "learned",
    "causal": True, "bias": True, "qk_norm": False, "mult": 4.0, "norm": "pre", "sandwich": False,
    "norm_type": "layernorm", "blocks": 1, "tied": False,
}  # fmt: skip


# a kind's own defaults where they differ from DEFAULTS (an LM head has no bias, as GPT-2's and nn.Linear's
# in most language models)
KIND_DEFAULTS: dict[str, dict[str, Any]] = {"unembedding": {"bias": False}}


# keys that are the layer's structure (not the act/init it inherits)
_STRUCTURE_KEYS = ("units", "channels", "kernel", "stride", "padding", "size", "rate", "eps", "scale", "d",
                   "vocab", "positions", "max_seq", "heads", "head_dim", "causal", "bias", "qk_norm", "mult",
                   "hidden", "norm", "sandwich", "norm_type", "alpha", "blocks", "tied")  # fmt: skip


def default_of(kind: str, key: str) -> Any:
    """The default of *key* for a layer of *kind* (None: none, or derived from the shapes)."""
    return KIND_DEFAULTS.get(kind, {}).get(key, DEFAULTS.get(key))


@dataclass
class LayerSpec:
    """One layer of a kind in `KINDS`; only the keys its kind takes may be set (None = unset)."""

    units: int | None = None
    kind: str = "dense"
    name: str | None = None
    act: Any = None  # text (``relu``), or once resolved an `Activation`
    init: Any = None  # text (``he``), or once resolved an `Initializer`
    bias_init: Any = None
    channels: int | None = None
    kernel: int | tuple[int, int] | None = None
    stride: int | None = None
    padding: str | int | None = None
    size: int | None = None
    rate: float | None = None
    eps: float | None = None
    scale: float | None = None
    layers: tuple[LayerSpec, ...] = ()
    # transformers (see KINDS: embedding, attention, mlp, transformer, unembedding)
    d: int | None = None
    vocab: int | None = None
    positions: str | None = None
    max_seq: int | None = None
    heads: int | None = None
    head_dim: int | None = None
    causal: bool | None = None
    bias: bool | None = None
    qk_norm: bool | None = None
    mult: float | None = None
    hidden: int | None = None
    norm: str | None = None
    sandwich: bool | None = None
    norm_type: str | None = None
    alpha: float | None = None
    blocks: int | None = None
    tied: bool | None = None
    # set by resolving a transformer entry: the names of its blocks (not a key of spec files)
    block_names: tuple[str, ...] = ()

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    def get(self, key: str) -> Any:
        """The value of *key*, or its default when unset."""
        value = getattr(self, key)
        return default_of(self.kind, key) if value is None else value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        for key in KINDS[self.kind].keys:
            value = getattr(self, key)
            if key == "layers":
                out["layers"] = [layer.to_dict() for layer in value]
            elif key in ("act", "init", "bias_init") and value is not None:
                out[key] = str(value)  # a resolved layer holds objects; their canonical text
            elif value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


def is_int(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_layer(layer: LayerSpec, label: str, path: tuple) -> None:
    """The layer's keys and values, each problem one message naming the layer."""
    if layer.kind not in KINDS:
        from ..errors import did_you_mean

        hint = did_you_mean(str(layer.kind), KINDS) or f"; allowed: {', '.join(KINDS)}"
        raise SpecLayerError(f"{label}: unknown kind '{layer.kind}'{hint}", path)
    info = KINDS[layer.kind]
    for key in (*_STRUCTURE_KEYS, "act", "init", "bias_init"):
        if getattr(layer, key) is not None and key not in info.keys:
            takes = ", ".join(info.keys) or "no keys besides name"
            raise SpecLayerError(f"{label}: a {layer.kind} layer takes no '{key}' (it takes {takes})", path)
    if layer.layers and layer.kind != "residual":
        raise SpecLayerError(f"{label}: only a residual block has layers", path)
    for key in info.required:
        if key == "layers" and not layer.layers:
            raise SpecLayerError(f"{label}: a residual block needs at least one layer in its branch", path)
        if key != "layers" and getattr(layer, key) is None:
            raise SpecLayerError(f"{label}: a {layer.kind} layer needs '{key}'", path)
    problems = {
        "units": (lambda v: is_int(v), "a positive integer"),
        "channels": (lambda v: is_int(v), "a positive integer"),
        "stride": (lambda v: is_int(v), "a positive integer"),
        "size": (lambda v: is_int(v), "a positive integer"),
        "kernel": (
            lambda v: (
                is_int(v) or (isinstance(v, tuple | list) and len(v) == 2 and all(is_int(k) for k in v))
            ),
            "a positive integer or a pair [kh, kw]",
        ),
        "padding": (lambda v: v in PADDINGS or is_int(v, 0), "same, valid or a non-negative integer"),
        "rate": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
        "eps": (lambda v: is_number(v) and v > 0, "a positive number"),
        "scale": (lambda v: is_number(v), "a finite number"),
        "d": (lambda v: is_int(v), "a positive integer"),
        "vocab": (lambda v: is_int(v, 2), "an integer of at least 2"),
        "max_seq": (lambda v: is_int(v), "a positive integer"),
        "heads": (lambda v: is_int(v), "a positive integer"),
        "head_dim": (lambda v: is_int(v), "a positive integer"),
        "hidden": (lambda v: is_int(v), "a positive integer"),
        "blocks": (lambda v: is_int(v), "a positive integer"),
        "mult": (lambda v: is_number(v) and v > 0, "a positive number"),
        "alpha": (lambda v: is_number(v) and v > 0, "a positive number"),
        "positions": (lambda v: v in POSITIONS, " or ".join(POSITIONS)),
        "norm": (lambda v: v in NORM_PLACEMENTS, " or ".join(NORM_PLACEMENTS)),
        "norm_type": (lambda v: v in NORM_TYPES, " or ".join(NORM_TYPES)),
        **{key: (lambda v: isinstance(v, bool), "true or false")
           for key in ("causal", "bias", "qk_norm", "sandwich", "tied")},
    }  # fmt: skip
    for key, (ok, allowed) in problems.items():
        value = getattr(layer, key)
        if value is not None and not ok(value):
            raise SpecLayerError(f"{label}: {key} must be {allowed}, got {value!r}", path)


def row_count(layer: LayerSpec) -> int:
    """The rows one layer makes in the table (a residual block's branch not counted: its layers are)."""
    if layer.kind == "transformer":
        norm, sandwich = layer.get("norm"), layer.get("sandwich")
        per_block = 4 + (2 if norm != "none" else 0) + (2 if sandwich else 0)
        return per_block * (layer.blocks if is_int(layer.blocks) else 1)
    if layer.kind == "embedding":
        return 1 + (layer.get("positions") != "none")
    return 1


def walk_layers(layers: tuple[LayerSpec, ...]):
    """Every layer, depth first (a residual block before its branch)."""
    for layer in layers:
        yield layer
        yield from walk_layers(layer.layers)


def where(path: tuple) -> str:
    """("layers", 3, "units") -> "layers[3].units"; the document itself is "the spec"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the spec"
