"""Weight initializers: one variance-scaling core, thin named presets, and the other kinds.

Layouts follow the contract: dense weights are stored ``(fan_in, fan_out)`` and a dense layer computes
``z = x @ W + b`` (as Keras and JAX); conv weights are ``(out_ch, in_ch, kh, kw)`` with
``fan_in = in_ch*kh*kw`` (as PyTorch). Every sampler takes an explicit ``numpy.random.Generator``.

The variance-scaling family (Glorot & Bengio 2010, He et al. 2015, LeCun et al. 1998) is one
formula, ``Var(W) = scale * gain^2 / fan``, with ``fan`` = fan_in, fan_out or their average, and
three distributions derived from that variance (as ``jax.nn.initializers.variance_scaling``)::

    normal            N(0, var)
    uniform           U(-limit, limit), limit = sqrt(3 var)
    truncated_normal  N(0, s^2) cut at +-2 s, s = sqrt(var) / 0.87962566103423978

The constant is the std of a standard normal truncated to (-2, 2), so the truncated draw has exactly
the requested variance (Keras and JAX do the same). The presets' default gain is PyTorch's:
``he_*`` use sqrt(2) (``kaiming_*_`` with ``nonlinearity='leaky_relu', a=0``), the others 1;
``gain=G`` replaces it and ``gain=auto`` uses the gain of the layer's own activation, so
``he_normal:gain=auto`` on a tanh layer is ``kaiming_normal_(w, nonlinearity='tanh')``.
``*_normal`` presets draw from an untruncated normal as PyTorch does; Keras and JAX truncate theirs
(same variance; ``distribution=truncated_normal`` reproduces them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import InitdiagError, unknown_name
from .activations import Activation, calculate_gain
from .callspec import Call, fmt_number, parse_call, to_choice, to_float, to_int
from .files import load_npz
from .names import ALIASES, NO_CUT, TRUNCATED_NORMAL_STD, Resolution, resolve

FAN_MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
# std of N(0, 1) truncated to (-2, 2): the correction Keras and JAX apply
TRUNCATION = 2.0


class Fans(NamedTuple):
    """(fan_in, fan_out); unpacks like PyTorch's ``_calculate_fan_in_and_fan_out``."""

    fan_in: int
    fan_out: int

    def of(self, mode: str) -> float:
        if mode == "fan_in":
            return float(self.fan_in)
        if mode == "fan_out":
            return float(self.fan_out)
        return (self.fan_in + self.fan_out) / 2.0


def compute_fans(shape: tuple[int, ...]) -> Fans:
    """Fans of a weight array: dense ``(fan_in, fan_out)``; conv ``(out_ch, in_ch, *kernel)`` gives
    ``fan_in = in_ch * prod(kernel)`` and ``fan_out = out_ch * prod(kernel)``, as PyTorch."""
    if len(shape) == 2:
        return Fans(int(shape[0]), int(shape[1]))
    if len(shape) >= 3:
        receptive = math.prod(shape[2:])
        return Fans(int(shape[1]) * receptive, int(shape[0]) * receptive)
    raise InitdiagError(f"fans need a weight of at least 2 dimensions, got shape {tuple(shape)}")


def units_of(shape: tuple[int, ...]) -> int:
    """Output units of a weight array (the length of its bias): dense ``(fan_in, units)``, conv
    ``(out_ch, ...)``."""
    return int(shape[1]) if len(shape) == 2 else int(shape[0])


def layout_of(shape: tuple[int, ...]) -> str:
    return "(fan_in, fan_out)" if len(shape) == 2 else "(out_ch, in_ch, kh, kw)"


class LayerContext(NamedTuple):
    """What an initializer may look at: the layer's name, weight shape, fans and activation."""

    name: str
    shape: tuple[int, ...]
    fans: Fans
    act: Activation
    dtype: np.dtype = np.dtype(np.float32)


DRAW_CHUNK = 1 << 20  # float64 entries drawn at a time before the cast: bounded extra memory


def _truncated_standard_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """N(0, 1) restricted to (-2, 2), by redrawing the ~4.6% of entries that fall outside."""
    out = rng.standard_normal(size)
    bad = np.flatnonzero(np.abs(out) >= TRUNCATION)
    while bad.size:
        out[bad] = rng.standard_normal(bad.size)
        bad = bad[np.abs(out[bad]) >= TRUNCATION]
    return out


def _draw(rng, shape, dtype, distribution: str, std: float, mean: float = 0.0) -> np.ndarray:
    """A draw with the given mean and std from one of the three distributions.

    Drawn in float64, ``DRAW_CHUNK`` entries at a time, and cast into the output: ``--dtype float32``
    and ``float64`` probe the very same weights, and the extra memory stays small. (Chunked draws
    are the same numbers as one big draw for normal and uniform.)
    """
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, DRAW_CHUNK):
        size = min(DRAW_CHUNK, flat.size - start)
        if distribution == "normal":
            block = rng.standard_normal(size)
            block *= std
        elif distribution == "truncated_normal":
            block = _truncated_standard_normal(rng, size)
            block *= std / TRUNCATED_NORMAL_STD
        else:  # uniform on [-limit, limit)
            limit = math.sqrt(3.0) * std
            block = rng.random(size)
            block *= 2 * limit
            block -= limit
        if mean:
            block += mean
        flat[start : start + size] = block
    return out


class Initializer:
    """Base: ``sample(rng, ctx)`` returns the weights; ``str()`` is the canonical ``NAME[:ARGS]``."""

    name: str
    weight_only = False  # orthogonal, identity, lsuv, file: not meaningful for a bias vector
    data_driven = False  # lsuv: rescaled with a forward pass after sampling

    def sample(self, rng: np.random.Generator, ctx: LayerContext) -> np.ndarray:
        raise NotImplementedError

    def variance(self, ctx: LayerContext) -> float | None:
        """Closed-form variance of one weight entry, or None where it depends on data."""
        return None

    def mean(self, ctx: LayerContext) -> float | None:
        return 0.0

    def default_bias(self) -> Initializer:
        """The bias initializer used when none is given (zeros, except for ``torch_default``)."""
        return Constant("zeros", 0.0)

    def check(self, ctx: LayerContext) -> None:
        """Raise `InitdiagError` before any allocation if this layer cannot use the initializer."""

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<initializer {self}>"


@dataclass(repr=False)
class Constant(Initializer):
    """Every entry equal to ``value``: ``zeros``, ``ones``, ``constant:V``. Never breaks symmetry."""

    name: str
    value: float

    def sample(self, rng, ctx):
        return np.full(ctx.shape, self.value, dtype=ctx.dtype)

    def variance(self, ctx):
        return 0.0

    def mean(self, ctx):
        return self.value

    def __str__(self):
        return self.name if self.name in ("zeros", "ones") else f"constant:{fmt_number(self.value)}"


@dataclass(repr=False)
class Normal(Initializer):
    """N(mean, std^2) (``torch.nn.init.normal_``); ``trunc_normal`` cuts it at 2 std and corrects
    the std so the draw still has variance std^2."""

    name: str
    std: float
    mu: float = 0.0

    def sample(self, rng, ctx):
        dist = "truncated_normal" if self.name == "trunc_normal" else "normal"
        return _draw(rng, ctx.shape, ctx.dtype, dist, self.std, self.mu)

    def variance(self, ctx):
        return self.std**2

    def mean(self, ctx):
        return self.mu

    def __str__(self):
        if self.mu:
            return f"{self.name}:std={fmt_number(self.std)},mean={fmt_number(self.mu)}"
        return f"{self.name}:{fmt_number(self.std)}"


@dataclass(repr=False)
class Uniform(Initializer):
    """U(low, high); ``uniform:A`` is U(-A, A)."""

    low: float
    high: float
    name: str = "uniform"

    def sample(self, rng, ctx):
        # U(low, high) is U(-limit, limit) shifted: the same draw as _draw's uniform
        half = (self.high - self.low) / 2
        return _draw(rng, ctx.shape, ctx.dtype, "uniform", half / math.sqrt(3.0), self.low + half)

    def variance(self, ctx):
        return (self.high - self.low) ** 2 / 12.0

    def mean(self, ctx):
        return (self.low + self.high) / 2.0

    def __str__(self):
        if self.low == -self.high:
            return f"uniform:{fmt_number(self.high)}"
        return f"uniform:low={fmt_number(self.low)},high={fmt_number(self.high)}"


class _Preset(NamedTuple):
    scale: float
    gain: float
    mode: str
    distribution: str
    doc: str


# One core, many names. ``gain`` is the default PyTorch uses for that family.
VARIANCE_SCALING_PRESETS: dict[str, _Preset] = {
    "variance_scaling": _Preset(1.0, 1.0, "fan_in", "truncated_normal", "Keras/JAX defaults"),
    "xavier_uniform": _Preset(1.0, 1.0, "fan_avg", "uniform", "Glorot & Bengio 2010"),
    "xavier_normal": _Preset(1.0, 1.0, "fan_avg", "normal", "Glorot & Bengio 2010"),
    "he_normal": _Preset(1.0, math.sqrt(2.0), "fan_in", "normal", "He et al. 2015"),
    "he_uniform": _Preset(1.0, math.sqrt(2.0), "fan_in", "uniform", "He et al. 2015"),
    "lecun_normal": _Preset(1.0, 1.0, "fan_in", "normal", "LeCun et al. 1998"),
    "lecun_uniform": _Preset(1.0, 1.0, "fan_in", "uniform", "LeCun et al. 1998"),
}


@dataclass(repr=False)
class VarianceScaling(Initializer):
    """Var(W) = scale * gain^2 / fan(mode), drawn from ``distribution`` (see the module doc).

    ``gain`` is a number or ``"auto"`` (the layer activation's gain, as ``calculate_gain``).
    """

    name: str
    scale: float
    gain: float | str
    mode: str
    distribution: str

    def resolved_gain(self, act: Activation) -> float:
        return act.gain if self.gain == "auto" else float(self.gain)

    def variance(self, ctx):
        return self.scale * self.resolved_gain(ctx.act) ** 2 / ctx.fans.of(self.mode)

    def sample(self, rng, ctx):
        std = math.sqrt(self.variance(ctx))
        return _draw(rng, ctx.shape, ctx.dtype, self.distribution, std)

    def __str__(self):
        preset = VARIANCE_SCALING_PRESETS.get(self.name)
        if preset is None:  # keras_default / flax_default: fixed
            return self.name
        args = []
        if self.name == "variance_scaling" and self.scale != preset.scale:
            args.append(f"scale={fmt_number(self.scale)}")
        if self.mode != preset.mode:
            args.append(f"mode={self.mode}")
        if self.distribution != preset.distribution:
            args.append(f"distribution={self.distribution}")
        if self.gain == "auto":
            args.append("gain=auto")
        elif not math.isclose(float(self.gain), preset.gain, rel_tol=1e-15):
            args.append(f"gain={fmt_number(float(self.gain))}")
        return self.name + (":" + ",".join(args) if args else "")


@dataclass(repr=False)
class TorchDefault(Initializer):
    """What ``nn.Linear`` / ``nn.Conv2d`` give you: ``kaiming_uniform_(w, a=sqrt(5))``, which is
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1/(3 fan_in); the bias uses the same bound
    (pytorch#15314)."""

    name: str = "torch_default"

    def _bound(self, ctx):
        return 1.0 / math.sqrt(ctx.fans.fan_in)

    def sample(self, rng, ctx):
        return Uniform(-self._bound(ctx), self._bound(ctx)).sample(rng, ctx)

    def variance(self, ctx):
        return 1.0 / (3.0 * ctx.fans.fan_in)

    def default_bias(self):
        return self


@dataclass(repr=False)
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014), by QR of a Gaussian matrix with
    the sign fix of ``torch.nn.init.orthogonal_`` (multiply by sign(diag R)) so the draw is Haar.
    Tall W (fan_in >= fan_out): W^T W = gain^2 I; wide W: W W^T = gain^2 I. Conv weights are
    flattened to (out_ch, in_ch*kh*kw) first, as PyTorch."""

    gain: float | str = 1.0
    name: str = "orthogonal"
    weight_only = True

    def sample(self, rng, ctx):
        gain = ctx.act.gain if self.gain == "auto" else float(self.gain)
        if len(ctx.shape) == 2:
            rows, cols = ctx.shape
        else:
            rows, cols = ctx.shape[0], math.prod(ctx.shape[1:])
        transpose = rows < cols
        a = rng.standard_normal((cols, rows) if transpose else (rows, cols))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if transpose:
            q = q.T
        return (gain * q).astype(ctx.dtype, copy=False).reshape(ctx.shape)

    def variance(self, ctx):
        gain = ctx.act.gain if self.gain == "auto" else float(self.gain)
        rows, cols = ctx.shape[0], math.prod(ctx.shape[1:])
        return gain**2 / max(rows, cols)

    def __str__(self):
        if self.gain == "auto":
            return "orthogonal:gain=auto"
        return "orthogonal" if self.gain == 1.0 else f"orthogonal:gain={fmt_number(self.gain)}"


@dataclass(repr=False)
class Identity(Initializer):
    """``gain`` times the (rectangular) identity, as ``torch.nn.init.eye_``: as many inputs as
    possible pass through unchanged."""

    gain: float = 1.0
    name: str = "identity"
    weight_only = True

    def check(self, ctx):
        if len(ctx.shape) != 2:
            raise InitdiagError(f"identity needs a 2-D weight; layer {ctx.name} has {ctx.shape}")

    def sample(self, rng, ctx):
        return (self.gain * np.eye(*ctx.shape)).astype(ctx.dtype)

    def variance(self, ctx):
        n_in, n_out = ctx.shape
        k = min(n_in, n_out)
        p = k / (n_in * n_out)
        return self.gain**2 * p * (1 - p)

    def mean(self, ctx):
        n_in, n_out = ctx.shape
        return self.gain * min(n_in, n_out) / (n_in * n_out)

    def __str__(self):
        return "identity" if self.gain == 1.0 else f"identity:gain={fmt_number(self.gain)}"


@dataclass(repr=False)
class LSUV(Initializer):
    """Layer-sequential unit-variance init (Mishkin & Matas 2015): orthogonal weights, then, layer
    by layer from the input, divide W by sqrt(Var(z)) until |Var(z) - 1| < ``tol`` or ``max_iter``
    passes (tol 0.1 and 10 iterations, as the authors' PyTorch port). z is the layer's affine output
    on the probe's own input batch. The rescaling is done by the probe, which has the data."""

    tol: float = 0.1
    max_iter: int = 10
    name: str = "lsuv"
    weight_only = True
    data_driven = True

    def sample(self, rng, ctx):
        return Orthogonal(1.0).sample(rng, ctx)

    def __str__(self):
        args = []
        if self.tol != 0.1:
            args.append(f"tol={fmt_number(self.tol)}")
        if self.max_iter != 10:
            args.append(f"max_iter={self.max_iter}")
        return "lsuv" + (":" + ",".join(args) if args else "")

    def mean(self, ctx):
        return None


@dataclass(repr=False)
class FromFile(Initializer):
    """Pretrained or hand-made weights: array ``NAME`` (or ``NAME.weight``) of an .npz, in our
    layout (dense (fan_in, fan_out), conv PyTorch's (out_ch, in_ch, kh, kw)); ``NAME.bias``, when
    present, is the default bias."""

    path: str
    name: str = "file"
    weight_only = True

    def _array(self, ctx: LayerContext, suffix: str = ".weight") -> np.ndarray | None:
        arrays = load_npz(self.path)
        for key in (ctx.name, ctx.name + suffix) if suffix == ".weight" else (ctx.name + suffix,):
            if key in arrays:
                return arrays[key]
        return None

    def check(self, ctx):
        array = self._array(ctx)
        if array is None:
            keys = ", ".join(sorted(load_npz(self.path))) or "none"
            raise InitdiagError(
                f"'{self.path}' has no array for layer {ctx.name} "
                f"(looked for '{ctx.name}' and '{ctx.name}.weight'; it holds: {keys})"
            )
        if array.dtype.kind not in "fiu":
            raise InitdiagError(f"'{self.path}': array for layer {ctx.name} is not numeric ({array.dtype})")
        if tuple(array.shape) != tuple(ctx.shape):
            hint = ""
            if len(ctx.shape) == 2 and tuple(array.shape) == tuple(reversed(ctx.shape)):
                hint = "; it looks like PyTorch's (out, in) layout, save W.T"
            elif len(ctx.shape) == 4 and array.ndim == 4 and array.shape[1] != ctx.shape[1]:
                hint = f"; its {array.shape[1]} input channels do not match the layer's {ctx.shape[1]}"
            raise InitdiagError(
                f"'{self.path}': layer {ctx.name} needs shape {tuple(ctx.shape)} {layout_of(ctx.shape)} "
                f"but the file holds {tuple(array.shape)}{hint}"
            )
        bias = self._array(ctx, ".bias")
        units = units_of(ctx.shape)
        if bias is not None and tuple(bias.shape) != (units,):
            raise InitdiagError(
                f"'{self.path}': {ctx.name}.bias needs shape ({units},) "
                f"but the file holds {tuple(bias.shape)}"
            )

    def sample(self, rng, ctx):
        self.check(ctx)
        return np.array(self._array(ctx), dtype=ctx.dtype)

    def bias(self, ctx: LayerContext) -> np.ndarray | None:
        bias = self._array(ctx, ".bias")
        return None if bias is None else np.array(bias, dtype=ctx.dtype)

    def mean(self, ctx):
        return None

    def __str__(self):
        return f"file:{self.path}"


# --- names -------------------------------------------------------------------------------------


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
    init = get_initializer(text)
    if init.weight_only:
        raise InitdiagError(
            f"'{text}' is a weight-only initializer; for biases use zeros, ones, constant:V, "
            "normal:STD, uniform:A, trunc_normal:STD, torch_default or a variance-scaling name"
        )
    return init
