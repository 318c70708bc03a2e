"""The ``--init`` grammar: ``NAME[:ARGS]`` text (initdiag's names, and PyTorch's, Keras's and JAX's
spellings, resolved by `initdiag.core.names.resolve`) into an `Initializer`; every mistake is one
clear line."""

from __future__ import annotations

import math

from ..errors import InitdiagError, unknown_name
from .activations import calculate_gain
from .callspec import Call, fmt_number, parse_call, to_choice, to_float, to_int
from .files import load_npz
from .initializers import (
    DISTRIBUTIONS,
    FAN_MODES,
    LSUV,
    TRUNCATION,
    VARIANCE_SCALING_PRESETS,
    Constant,
    FromFile,
    Identity,
    Initializer,
    Normal,
    Orthogonal,
    TorchDefault,
    Uniform,
    VarianceScaling,
)
from .names import ALIASES, NO_CUT, TRUNCATED_NORMAL_STD, Resolution, resolve
from .role_inits import PRESETS

INITIALIZER_NAMES: tuple[str, ...] = (
    "zeros",
    "ones",
    "constant",
    "normal",
    "uniform",
    "trunc_normal",
    *VARIANCE_SCALING_PRESETS,
    "orthogonal",
    "identity",
    "torch_default",
    "keras_default",
    "flax_default",
    *PRESETS,
    "lsuv",
    "file",
)


def _gain(call: Call, value: str) -> float | str:
    if value.lower() == "auto":
        return "auto"
    gain = to_float(call, "gain", value)
    if gain <= 0:
        raise InitdiagError(f"'{call.text}': gain must be > 0 or auto, got {value}")
    return gain


def _non_negative(call: Call, key: str, value: str) -> float:
    number = to_float(call, key, value)
    if number < 0:
        raise InitdiagError(f"'{call.text}': {key} must be >= 0, got {value}")
    return number


def _cut_normal(
    call: Call, std: float, mean: float, lower: float, upper: float
) -> tuple[str, dict[str, str]]:
    """N(mean, std^2) restricted to mean + std*(lower, upper) WITHOUT correcting the std (PyTorch's
    trunc_normal_, Keras's TruncatedNormal, JAX's truncated_normal), in initdiag's terms: cut at 2 std
    it is trunc_normal with std*0.8796 exactly; cut `NO_CUT` std away or further it is a normal."""
    args = {"mean": fmt_number(mean)} if mean else {}
    if std == 0:
        return "normal", {"std": "0", **args}
    if not lower < upper:
        raise InitdiagError(f"'{call.text}': the lower bound must be below the upper one")
    if math.isclose(lower, -TRUNCATION, rel_tol=1e-9) and math.isclose(upper, TRUNCATION, rel_tol=1e-9):
        return "trunc_normal", {"std": fmt_number(std * TRUNCATED_NORMAL_STD), **args}
    if lower <= -NO_CUT and upper >= NO_CUT:
        return "normal", {"std": fmt_number(std), **args}
    raise InitdiagError(
        f"'{call.text}': a normal cut at {lower:.4g} and {upper:.4g} std has no initdiag equivalent: "
        f"trunc_normal cuts at exactly 2 std, and a cut {NO_CUT:g} or more std away is no cut (normal)"
    )


def _framework_call(call: Call, found: Resolution) -> tuple[str, Call]:
    """A framework name's call in initdiag's terms: its arguments renamed and translated where the
    framework reads them differently (see `initdiag.names.Spelling`), the arguments its name implies
    added (Keras's HeNormal: distribution=truncated_normal)."""
    spelling = found.spelling
    assert spelling is not None
    name, kwargs, positional = spelling.name, dict(call.kwargs), call.positional
    if positional is not None and spelling.positional:
        raise InitdiagError(f"'{call.text}': {spelling.positional}")
    for theirs, ours in spelling.renames:
        if theirs in kwargs:
            if ours in kwargs:
                raise InitdiagError(f"'{call.text}': {theirs} and {ours} are the same argument; give one")
            kwargs[ours] = kwargs.pop(theirs)
    what, example = spelling.needs
    bounds = {"low", "high"} & kwargs.keys()
    if what and ((positional is None and not kwargs) or (what == "both bounds" and len(bounds) < 2)):
        raise InitdiagError(
            f"'{call.text}': {found.display} needs {what} here, e.g. {found.text}:{example} "
            f"(initdiag takes no default; {found.framework}'s is {spelling.resolves_to})"
        )

    def number(key: str, default: float) -> float:
        return to_float(call, key, kwargs.pop(key)) if key in kwargs else default

    if spelling.convert in ("torch_trunc", "keras_trunc", "jax_trunc"):
        if positional is not None:
            kwargs["std"] = positional
            positional = None
        if "std" not in kwargs:
            raise InitdiagError(f"'{call.text}': {found.display} needs a std, e.g. {found.text}:std=0.02")
        std = _non_negative(call, "std", kwargs.pop("std"))
        mean = number("mean", 0.0)
        if spelling.convert == "torch_trunc":  # absolute bounds
            a, b = number("a", -2.0), number("b", 2.0)
            lower, upper = ((a - mean) / std, (b - mean) / std) if std else (-math.inf, math.inf)
            if std == 0 and not a <= mean <= b:
                raise InitdiagError(f"'{call.text}': the mean must lie between a and b")
        elif spelling.convert == "jax_trunc":  # in units of the std
            lower, upper = number("lower", -2.0), number("upper", 2.0)
        else:  # Keras: always 2 std
            lower, upper = -TRUNCATION, TRUNCATION
        name, cut = _cut_normal(call, std, mean, lower, upper)
        kwargs.update(cut)
    elif spelling.convert == "jax_uniform":  # U(0, scale)
        scale = positional if positional is not None else kwargs.pop("scale", None)
        positional = None
        if scale is None:
            raise InitdiagError(f"'{call.text}': {found.display} needs the scale, e.g. {found.text}:0.01")
        high = to_float(call, "scale", scale)
        if high <= 0:
            raise InitdiagError(f"'{call.text}': scale must be > 0, got {scale}")
        kwargs.update(low="0", high=fmt_number(high))
    elif spelling.convert == "torch_kaiming" and ("a" in kwargs or "nonlinearity" in kwargs):
        if "gain" in kwargs:
            raise InitdiagError(f"'{call.text}': give gain or PyTorch's a/nonlinearity, not both")
        nonlinearity = kwargs.pop("nonlinearity", "leaky_relu").lower()
        slope = number("a", 0.0)
        try:
            gain = calculate_gain(nonlinearity, slope if nonlinearity == "leaky_relu" else None)
        except InitdiagError:
            raise InitdiagError(
                f"'{call.text}': nonlinearity must be one of PyTorch's calculate_gain names (linear, conv1d, "
                f"conv2d, conv3d, sigmoid, tanh, relu, leaky_relu, selu), got '{nonlinearity}'"
            ) from None
        kwargs["gain"] = fmt_number(gain)
    elif spelling.convert == "keras_variance_scaling" and "distribution" in kwargs:
        keras = {"normal": "truncated_normal", "untruncated_normal": "normal"}
        kwargs["distribution"] = keras.get(kwargs["distribution"].lower(), kwargs["distribution"])
    if spelling.implied:
        for pair in spelling.implied.split(","):
            key, _, value = pair.partition("=")
            kwargs.setdefault(key, value)
    return name, Call(call.text, call.name, positional, kwargs)


def _parse(call: Call, name: str) -> Initializer:
    """The initializer *name* (canonical) with the arguments of *call*."""
    if name in ("zeros", "ones"):
        call.bind((), None)
        return Constant(name, 0.0 if name == "zeros" else 1.0)
    if name == "constant":
        values = call.bind(("value",), "value")
        if "value" not in values:
            raise InitdiagError(f"'{call.text}': constant needs a value, e.g. constant:0.5")
        return Constant("constant", to_float(call, "value", values["value"]))
    if name in ("normal", "trunc_normal"):
        values = call.bind(("std", "mean"), "std")
        if "std" not in values:
            raise InitdiagError(f"'{call.text}': {name} needs a std, e.g. {name}:0.01")
        std = _non_negative(call, "std", values["std"])
        return Normal(name, std, to_float(call, "mean", values.get("mean", "0")))
    if name == "uniform":
        values = call.bind(("a", "low", "high"), "a")
        if "a" in values:
            if "low" in values or "high" in values:
                raise InitdiagError(f"'{call.text}': give uniform:A or uniform:low=L,high=H, not both")
            a = _non_negative(call, "a", values["a"])
            return Uniform(-a, a)
        if "low" not in values or "high" not in values:
            raise InitdiagError(f"'{call.text}': uniform needs A (U(-A, A)) or low=L,high=H")
        low, high = to_float(call, "low", values["low"]), to_float(call, "high", values["high"])
        if not low < high:
            raise InitdiagError(
                f"'{call.text}': low must be below high, got low={fmt_number(low)}, high={fmt_number(high)}"
            )
        return Uniform(low, high)
    if name in VARIANCE_SCALING_PRESETS:
        preset = VARIANCE_SCALING_PRESETS[name]
        keys = ("gain", "mode", "distribution")
        if name == "variance_scaling":
            keys = ("scale", *keys)
        values = call.bind(keys, "scale" if name == "variance_scaling" else None)
        scale = preset.scale
        if "scale" in values:
            scale = to_float(call, "scale", values["scale"])
            if scale <= 0:
                raise InitdiagError(f"'{call.text}': scale must be > 0, got {values['scale']}")
        return VarianceScaling(
            name,
            scale,
            _gain(call, values["gain"]) if "gain" in values else preset.gain,
            to_choice(call, "mode", values["mode"], FAN_MODES) if "mode" in values else preset.mode,
            to_choice(call, "distribution", values["distribution"], DISTRIBUTIONS)
            if "distribution" in values
            else preset.distribution,
        )
    if name == "keras_default":
        call.bind((), None)
        return VarianceScaling("keras_default", 1.0, 1.0, "fan_avg", "uniform")
    if name == "flax_default":
        call.bind((), None)
        return VarianceScaling("flax_default", 1.0, 1.0, "fan_in", "truncated_normal")
    if name == "torch_default":
        call.bind((), None)
        return TorchDefault()
    if name in ("gpt2", "small_init_emb"):  # one positive number: gpt2's std, small_init_emb's bound
        key, default = ("std", "0.02") if name == "gpt2" else ("a", "1e-4")
        values = call.bind((key,), key)
        value = _non_negative(call, key, values.get(key, default))
        if value == 0:
            raise InitdiagError(f"'{call.text}': {key} must be > 0, got {values[key]}")
        return PRESETS[name](value)
    if name in PRESETS:
        call.bind((), None)
        return PRESETS[name]()
    if name == "orthogonal":
        values = call.bind(("gain",), "gain")
        return Orthogonal(_gain(call, values["gain"]) if "gain" in values else 1.0)
    if name == "identity":
        values = call.bind(("gain",), "gain")
        gain = to_float(call, "gain", values.get("gain", "1"))
        if gain <= 0:
            raise InitdiagError(f"'{call.text}': gain must be > 0, got {values['gain']}")
        return Identity(gain)
    if name == "lsuv":
        values = call.bind(("tol", "max_iter"), "tol")
        tol = to_float(call, "tol", values.get("tol", "0.1"))
        if not 0 < tol < 1:
            raise InitdiagError(f"'{call.text}': tol must be in (0, 1), got {values['tol']}")
        return LSUV(tol, to_int(call, "max_iter", values.get("max_iter", "10")))
    raise unknown_name("initializer", call.name, INITIALIZER_NAMES + tuple(ALIASES))  # (resolve checked)


def get_initializer(text: str | Initializer) -> Initializer:
    """Parse ``NAME[:ARGS]`` (``he``, ``normal:0.01``, ``variance_scaling:scale=2,mode=fan_avg``,
    ``file:weights.npz``) into an `Initializer`; every mistake is one `InitdiagError` line.

    NAME may also be a framework's name, read as `initdiag.names.resolve` reads it and meaning what it
    means there: ``torch.nn.init.kaiming_normal_`` is ``he_normal``, ``tf.keras.initializers.HeNormal``
    ``he_normal:distribution=truncated_normal``, ``trunc_normal_:std=0.02`` (PyTorch's absolute cut at
    +-2, i.e. none) ``normal:0.02``."""
    if isinstance(text, Initializer):
        return text
    text = str(text).strip()
    if text.lower().startswith("file:"):
        path = text[5:].strip()
        if not path:
            raise InitdiagError("file: needs a path, e.g. file:weights.npz")
        load_npz(path)  # read (once) now: a missing or unreadable file is named where the name is
        return FromFile(path)
    if text.lower() == "file":
        raise InitdiagError("file: needs a path, e.g. file:weights.npz")
    call = parse_call(text, "initializer")
    found = resolve(text.partition(":")[0], INITIALIZER_NAMES)
    call.name = found.display
    if found.spelling is None:
        return _parse(call, found.name)
    name, call = _framework_call(call, found)
    return _parse(call, name)


def get_bias_initializer(text: str | Initializer) -> Initializer:
    """Like `get_initializer`, refusing the weight-only kinds (orthogonal, identity, lsuv, file)."""
    is_file = isinstance(text, str) and text.strip().lower().startswith("file:")
    init = None if is_file else get_initializer(text)  # file: refused before its file is read
    if init is None or init.weight_only:
        raise InitdiagError(
            f"'{text}' is a weight-only initializer; for biases use zeros, ones, constant:V, "
            "normal:STD, uniform:A, trunc_normal:STD, torch_default or a variance-scaling name"
        )
    return init
