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

from ..errors import InitdiagError
from .activations import Activation
from .callspec import fmt_number
from .files import load_npz
from .names import TRUNCATED_NORMAL_STD

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
    """What an initializer may look at: the layer's name, weight shape, fans and activation; in a
    transformer, the weight's role (`initdiag.core.role_inits`: ``q``, ``out_proj``, ``embedding``,
    ...; ``weight`` for a dense or conv layer's), the stack's transformer blocks, whether its attention
    is causal (a decoder), and the heads of an attention weight."""

    name: str
    shape: tuple[int, ...]
    fans: Fans
    act: Activation
    dtype: np.dtype = np.dtype(np.float32)
    role: str = "weight"
    blocks: int = 0
    causal: bool = False
    heads: int = 1


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
    buffer = np.empty(min(DRAW_CHUNK, flat.size))  # one for every chunk: fresh pages cost page faults
    for start in range(0, flat.size, DRAW_CHUNK):
        size = min(DRAW_CHUNK, flat.size - start)
        if distribution == "normal":
            block = rng.standard_normal(out=buffer[:size])
            block *= std
        elif distribution == "truncated_normal":
            block = _truncated_standard_normal(rng, size)
            block *= std / TRUNCATED_NORMAL_STD
        else:  # uniform on [-limit, limit)
            limit = math.sqrt(3.0) * std
            block = rng.random(out=buffer[:size])
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
    zero_bias: bool = False  # nn.MultiheadAttention's out_proj: the Linear's weight, a zero bias

    def _bound(self, ctx):
        return 1.0 / math.sqrt(ctx.fans.fan_in)

    def sample(self, rng, ctx):
        return Uniform(-self._bound(ctx), self._bound(ctx)).sample(rng, ctx)

    def variance(self, ctx):
        return 1.0 / (3.0 * ctx.fans.fan_in)

    def default_bias(self):
        return Constant("zeros", 0.0) if self.zero_bias else self


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
