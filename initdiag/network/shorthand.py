"""The ``--layers`` shorthand: ``784,256x8,10`` as a stack of dense layers, first width = input."""

from __future__ import annotations

import itertools
from typing import Any

from ..errors import InitdiagError, did_you_mean, one_line
from .kinds import NORM_PLACEMENTS, NORM_TYPES, NORMS, POSITIONS, LayerSpec, is_number
from .stack import MAX_ROWS, StackSpec, too_many_rows


def parse_widths(text: str) -> list[int]:
    """``"784,256x3,10"`` -> [784, 256, 256, 256, 10]; one clear error per malformed entry. More than
    `MAX_ROWS` layers are refused before the list is built (``256x1000000000000`` at once)."""
    text = str(text)
    shown = one_line(text)
    entries: list[tuple[int, int]] = []
    for position, raw in enumerate(text.split(","), start=1):
        item = raw.strip()
        if not item:
            raise InitdiagError(
                f"--layers '{shown}': empty width at position {position}; "
                "write comma-separated positive integers, e.g. 784,256,10"
            )
        if item.lower().count("x") > 1:
            raise InitdiagError(
                f"--layers '{shown}': '{one_line(item)}' looks like an image shape; the shorthand builds "
                "dense stacks, so describe a conv stack in a spec file "
                '(input_shape = [3, 32, 32], kind = "conv2d")'
            )
        base, sep, count = item.lower().partition("x")
        width = _positive_int(base, shown, item, "width")
        repeat = _positive_int(count, shown, item, "repeat count") if sep else 1
        entries.append((width, repeat))
    layers = sum(repeat for _, repeat in entries) - 1  # the first width is the input
    if layers < 1:
        raise InitdiagError(
            f"--layers '{shown}': needs an input width and at least one layer, e.g. 784,256,10"
        )
    if layers > MAX_ROWS:
        raise InitdiagError(f"--layers '{shown}': {too_many_rows(layers)}")
    return [width for width, repeat in entries for _ in range(repeat)]


def _positive_int(token: str, text: str, item: str, what: str) -> int:
    """*token* as a positive integer (ASCII digits, as Python writes them), or one clear error;
    *text* is the shorthand as messages show it."""
    token = token.strip()
    try:
        if not token.isascii():
            raise ValueError(token)
        value = int(token)
    except ValueError:
        if token.isascii() and token.lstrip("+").isdigit():  # more digits than int() reads
            raise InitdiagError(f"--layers '{text}': {what} '{one_line(token, 20)}' is too large") from None
        raise InitdiagError(
            f"--layers '{text}': '{one_line(item)}' is not a {what}; write positive integers, "
            "a width may repeat as 256x8"
        ) from None
    if value < 1:
        raise InitdiagError(
            f"--layers '{text}': {what} must be a positive integer, got {one_line(str(value), 20)}"
        )
    return value


def parse_layers(
    text: str,
    *,
    act: str | None = None,
    out_act: str = "linear",
    init: str = "he_normal",
    bias_init: str | None = None,
    norm: str | None = None,
    residual: bool = False,
    residual_scale: float | None = None,
    dropout: float | None = None,
) -> StackSpec:
    """The shorthand: first width is the input, each further width a dense layer.

    On every hidden layer (not the last): *norm* (``batch`` or ``layer``) adds a normalization
    layer after the dense one, which takes the activation (Linear -> Norm -> act); *dropout* adds
    ``dropout`` with that rate after it. *residual* makes each hidden layer that keeps its width a
    pre-activation residual block (He et al. 2016): ``x + residual_scale * W act(norm(x))``, the
    branch being [norm], activation, dense (linear), [dropout]. *act* defaults to relu.

    ``transformer:d=256,heads=4,blocks=12,seq=64,vocab=1000`` is a transformer (`parse_transformer`).
    """
    if str(text).strip().lower().startswith("transformer:"):
        shaping = {"--norm": norm, "--residual": residual or None, "--dropout": dropout, "--out-act": out_act}
        given = [option for option, value in shaping.items() if value not in (None, "linear")]
        if given:
            raise InitdiagError(
                f"{given[0]} shapes a dense shorthand; a transformer's keys go in --layers text"
            )
        return parse_transformer(str(text), act=act, init=init, bias_init=bias_init)
    act = act or "relu"
    widths = parse_widths(text)
    if norm is not None and norm not in NORMS:
        raise InitdiagError(f"--norm '{norm}': allowed: {', '.join(NORMS)}")
    if dropout is not None and not (is_number(dropout) and 0 <= dropout < 1):
        raise InitdiagError(f"--dropout must be a number in [0, 1), got {dropout:g}")
    if residual_scale is not None:
        if not residual:
            raise InitdiagError("--residual-scale needs --residual")
        if not is_number(residual_scale):
            raise InitdiagError(f"--residual-scale must be a finite number, got {residual_scale}")
    layers: list[LayerSpec] = []
    blocks = 0
    normalization = [LayerSpec(kind=f"{norm}norm")] if norm in ("batch", "layer") else []
    drop = [LayerSpec(kind="dropout", rate=dropout)] if dropout else []
    for fan_in, units in itertools.pairwise(widths[:-1]):
        if residual and fan_in == units:
            # pre-activation (He et al. 2016, "Identity mappings"): x + scale * W act(norm(x))
            branch = (
                *normalization,
                LayerSpec(kind="activation"),
                LayerSpec(units=units, act="linear"),
                *drop,
            )
            layers.append(LayerSpec(kind="residual", layers=branch, scale=residual_scale))
            blocks += 1
        else:
            layers.extend([LayerSpec(units=units), *normalization, *drop])
    if residual and not blocks:
        raise InitdiagError(
            f"--residual: no hidden layer of '{text}' keeps its width, so none can add its input "
            "to its output; e.g. 256,256x8,10"
        )
    layers.append(LayerSpec(units=widths[-1]))
    return StackSpec(
        input_shape=(widths[0],),
        layers=tuple(layers),
        act=act,
        out_act=out_act,
        init=init,
        bias_init=bias_init,
    )


# the keys of the transformer shorthand, each with its type (int, float, bool or its allowed words)
TRANSFORMER_KEYS: dict[str, Any] = {
    "d": int, "heads": int, "seq": int, "vocab": int, "blocks": int, "head_dim": int, "hidden": int,
    "mult": float, "alpha": float, "causal": bool, "bias": bool, "qk_norm": bool, "sandwich": bool,
    "tied": bool,
    "norm": NORM_PLACEMENTS, "norm_type": NORM_TYPES, "positions": POSITIONS, "act": str,
}  # fmt: skip


def parse_transformer(text: str, *, act=None, init="he_normal", bias_init=None) -> StackSpec:
    """``transformer:d=256,heads=4,blocks=12,seq=64,vocab=1000[,norm=pre,...]``: with vocab, token ids
    (seq, vocab) into an ``embedding`` (d, learned positions unless positions=...), the ``transformer``
    entry (heads, blocks, norm, ...), a final norm when norm=pre (GPT-2's ln_f) and an
    ``unembedding`` (tied=true ties it); without vocab, an input of seq vectors of width d and the
    blocks alone. The MLP's act is act=, else *act* (``--act``), else gelu; d, heads and seq are
    required. The same stack as the spec file ``--emit-spec`` writes."""
    shown = one_line(text)
    values: dict[str, Any] = {}
    for part in text.split(":", 1)[1].split(","):
        key, sep, raw = part.partition("=")
        key, raw = key.strip().lower(), raw.strip()
        if not sep or key not in TRANSFORMER_KEYS:
            hint = did_you_mean(key, TRANSFORMER_KEYS) or f"; keys: {', '.join(TRANSFORMER_KEYS)}"
            what = f"unknown key '{one_line(key)}'" if sep else f"'{one_line(part)}' is not key=value"
            raise InitdiagError(f"--layers '{shown}': {what}{hint}")
        if key in values:
            raise InitdiagError(f"--layers '{shown}': {key} given twice")
        values[key] = _value(TRANSFORMER_KEYS[key], raw, key, shown)
    missing = [k for k in ("d", "heads", "seq") if k not in values]
    if missing:
        raise InitdiagError(
            f"--layers '{shown}': a transformer needs {', '.join(missing)}, e.g. "
            "transformer:d=256,heads=4,blocks=12,seq=64,vocab=1000"
        )
    d, seq, vocab = values.pop("d"), values.pop("seq"), values.pop("vocab", None)
    if vocab is not None and vocab < 2:
        raise InitdiagError(f"--layers '{shown}': vocab must be at least 2, got {vocab}")
    positions, tied = values.pop("positions", None), values.pop("tied", None)
    values["act"] = values.get("act") or act
    block = LayerSpec(kind="transformer", **values)
    layers = [block]
    if vocab is not None:
        layers.insert(0, LayerSpec(kind="embedding", d=d, positions=positions))
    elif positions is not None or tied is not None:
        raise InitdiagError(f"--layers '{shown}': positions and tied go with vocab (an embedding)")
    if block.get("norm") == "pre":
        layers.append(LayerSpec(kind="layernorm" if block.get("norm_type") == "layernorm" else "rmsnorm"))
    if vocab is not None:
        layers.append(LayerSpec(kind="unembedding", tied=tied))
    shape = f"seq={seq},vocab={vocab}" if vocab is not None else (seq, d)
    return StackSpec(input_shape=shape, layers=tuple(layers), init=init, bias_init=bias_init)


def _value(kind: Any, raw: str, key: str, shown: str) -> Any:
    if kind is int:
        return _positive_int(raw, shown, f"{key}={raw}", key)
    if kind is float:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not (value > 0 and is_number(value)):
            raise InitdiagError(
                f"--layers '{shown}': {key} must be a positive number, got '{one_line(raw, 20)}'"
            )
        return value
    if kind is bool:
        if raw.lower() not in ("true", "false"):
            raise InitdiagError(f"--layers '{shown}': {key} must be true or false, got '{one_line(raw, 20)}'")
        return raw.lower() == "true"
    if kind is str:
        return raw
    if raw.lower() not in kind:
        hint = did_you_mean(raw.lower(), kind) or f"; allowed: {', '.join(kind)}"
        raise InitdiagError(f"--layers '{shown}': unknown {key} '{one_line(raw, 20)}'{hint}")
    return raw.lower()


def as_shorthand(layers: Any) -> str:
    """The ``--layers`` text of *layers*: the text itself, or any sequence of widths, input first
    (``[784, 256, 10]``, a tuple, a numpy array) joined as ``784,256,10``."""
    if isinstance(layers, str):
        return layers
    import numbers

    try:
        widths = list(layers)
    except TypeError:
        widths = None
    if widths is None or not all(isinstance(w, numbers.Integral) and not isinstance(w, bool) for w in widths):
        raise InitdiagError(
            f"--layers must be text like '784,256,10' or a sequence of integer widths like [784, 256, 10], "
            f"got {layers!r}"
        )
    return ",".join(str(int(w)) for w in widths)
