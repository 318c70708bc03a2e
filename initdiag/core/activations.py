"""Activations and their derivatives, written side by side.

Each activation maps a pre-activation ``z`` to ``a = phi(z)`` and gives ``phi'(z)`` (from ``z`` and
the already computed ``a`` where that is cheaper, as for sigmoid and tanh). Definitions follow
PyTorch: GELU is the exact erf form (``approximate='none'``), SELU uses its published constants,
leaky ReLU's slope defaults to 0.01, the derivative of ReLU at 0 is 0. Constants are Python floats,
so float32 arrays stay float32.

``calculate_gain`` reproduces ``torch.nn.init.calculate_gain``; ``second_moment_gain`` is the gain
that preserves the second moment through phi, 1 / sqrt(E[phi(z)^2]) for z ~ N(0, 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np

from ..errors import InitdiagError, unknown_name
from .callspec import Call, fmt_number, parse_call, to_float

# Klambauer et al. 2017, as torch.nn.SELU
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_RELU_DEFAULT_SLOPE = 0.01


# The piecewise activations select between their pieces with arithmetic, not np.where, whose random
# branches are 15x slower (numpy 2.4): x + 0 and x * 1 are x exactly, for the finite pieces used here.


def _sigmoid(z):
    # stable on both sides: exp of a non-positive number never overflows; 1/(1+e) for z >= 0, e/(1+e) below
    e = np.exp(-np.abs(z))
    one_plus = 1.0 + e
    positive = np.asarray(z) >= 0
    return (positive / one_plus + np.logical_not(positive) * (e / one_plus)).astype(z.dtype, copy=False)


def _gelu(z, _):
    from .special import gelu_float32, normal_cdf

    if np.asarray(z).dtype == np.float32:
        return gelu_float32(z)
    return z * normal_cdf(z)


def _gelu_d(z, _, __):
    from .special import gelu_float32, normal_cdf, normal_pdf

    if np.asarray(z).dtype == np.float32:
        return gelu_float32(z, value=False, slope=True)
    return normal_cdf(z) + z * normal_pdf(z)


def _gelu_both(z, _):
    from .special import gelu_float32

    if np.asarray(z).dtype == np.float32:
        return gelu_float32(z, slope=True)  # one erfc for both
    return _gelu(z, _), _gelu_d(z, None, _)


def _leaky(z, slope):
    # max(z, s z) is z where z > 0 and s z elsewhere for s <= 1 (min for s > 1)
    if slope == 0:
        return np.maximum(z, 0)  # relu (s z would be nan at z = inf)
    scaled = slope * z  # a Python float keeps float32 float32
    return np.maximum(z, scaled) if slope <= 1 else np.minimum(z, scaled)


def _leaky_d(z, slope):
    if 0 <= slope <= 1:  # max(1 or 0, s) is 1 or s, exactly
        return np.maximum(z > 0, np.asarray(z).dtype.type(slope))
    return np.where(z > 0, 1.0, slope).astype(np.asarray(z).dtype, copy=False)


def _elu(z, alpha):
    # z + alpha * expm1(0) for z > 0, 0 + alpha * expm1(z) below (and -alpha at -inf)
    return np.maximum(z, 0) + alpha * np.expm1(np.minimum(z, 0))


def _elu_d(z, a, alpha):
    # alpha * exp(z), not a + alpha: that subtraction loses the tail's precision (as PyTorch)
    return ((z > 0) + (z <= 0) * (alpha * np.exp(np.minimum(z, 0)))).astype(z.dtype, copy=False)


def _softplus(z):
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|), as numpy's logaddexp(0, z) computes it, at a tenth the time
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _silu_d(z, _, __):
    s = _sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


class _Kind(NamedTuple):
    forward: Callable  # (z, param) -> a
    derivative: Callable  # (z, a, param) -> phi'(z)
    max_derivative: Callable  # param -> max over z of |phi'(z)|
    piecewise_linear: bool = False  # its flat part is measured by dead_fraction, not saturation
    param_name: str | None = None
    param_default: float | None = None
    both: Callable | None = None  # (z, param) -> (a, phi'(z)), where one pass gives both for less


# The maximum of GELU' and SiLU' (at z ~ 1.4 and 2.4) are found numerically once, in _max_derivative.
_KINDS: dict[str, _Kind] = {
    "linear": _Kind(
        lambda z, _: z,
        lambda z, a, _: np.ones_like(z),
        lambda _: 1.0,
        piecewise_linear=True,
    ),
    "relu": _Kind(
        lambda z, _: np.maximum(z, 0),
        lambda z, a, _: (z > 0).astype(z.dtype),
        lambda _: 1.0,
        piecewise_linear=True,
    ),
    "leaky_relu": _Kind(
        lambda z, s: _leaky(z, s),
        lambda z, a, s: _leaky_d(z, s),
        lambda s: max(1.0, abs(s)),
        piecewise_linear=True,
        param_name="slope",
        param_default=LEAKY_RELU_DEFAULT_SLOPE,
    ),
    "elu": _Kind(
        _elu,
        _elu_d,
        lambda alpha: max(1.0, alpha),
        param_name="alpha",
        param_default=1.0,
    ),
    "selu": _Kind(
        lambda z, _: SELU_SCALE * _elu(z, SELU_ALPHA),
        lambda z, a, _: SELU_SCALE * _elu_d(z, a, SELU_ALPHA),
        lambda _: SELU_SCALE * SELU_ALPHA,
    ),
    "gelu": _Kind(_gelu, _gelu_d, lambda _: _max_derivative("gelu"), both=_gelu_both),
    "silu": _Kind(lambda z, _: z * _sigmoid(z), _silu_d, lambda _: _max_derivative("silu")),
    "softplus": _Kind(
        lambda z, _: _softplus(z),
        lambda z, a, _: _sigmoid(z),
        lambda _: 1.0,
    ),
    "sigmoid": _Kind(
        lambda z, _: _sigmoid(z),
        lambda z, a, _: a * (1.0 - a),
        lambda _: 0.25,
    ),
    "tanh": _Kind(
        lambda z, _: np.tanh(z),
        lambda z, a, _: 1.0 - a * a,
        lambda _: 1.0,
    ),
}

ACTIVATION_NAMES: tuple[str, ...] = tuple(_KINDS)
_ALIASES = {"identity": "linear", "none": "linear", "swish": "silu", "leakyrelu": "leaky_relu"}


@cache
def _max_derivative(kind: str) -> float:
    z = np.linspace(0.0, 6.0, 600001)
    return float(np.max(_KINDS[kind].derivative(z, _KINDS[kind].forward(z, None), None)))


@dataclass
class Activation:
    """A named activation: ``act(z)`` is phi(z), ``act.derivative(z, a)`` is phi'(z)."""

    kind: str
    param: float | None = None

    @property
    def _k(self) -> _Kind:
        return _KINDS[self.kind]

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self._k.forward(z, self.param)

    def derivative(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """phi'(z); *a* = phi(z) must be the forward output for the same *z*."""
        return self._k.derivative(z, a, self.param)

    def with_derivative(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(phi(z), phi'(z)), the same numbers as the two calls, in one pass where that is cheaper
        (float32 GELU: one erfc for both)."""
        if self._k.both is not None:
            return self._k.both(z, self.param)
        a = self(z)
        return a, self.derivative(z, a)

    @property
    def fused(self) -> bool:
        """True where `with_derivative` costs less than the two calls (a training step takes phi'
        with the forward pass then)."""
        return self._k.both is not None

    @property
    def max_derivative(self) -> float:
        """max |phi'|, the reference for the saturation threshold (5% of it)."""
        return self._k.max_derivative(self.param)

    @property
    def is_linear(self) -> bool:
        return self.kind == "linear"

    @property
    def relu_family(self) -> bool:
        """True for relu and leaky_relu, whose units can die (z <= 0 for every sample)."""
        return self.kind in ("relu", "leaky_relu")

    @property
    def piecewise_linear(self) -> bool:
        """linear, relu, leaky_relu: no saturation; their flat side is what dead_fraction counts."""
        return self._k.piecewise_linear

    @property
    def torch_gain(self) -> float | None:
        """``torch.nn.init.calculate_gain`` for this activation, or None where PyTorch has no entry."""
        try:
            return calculate_gain(self.kind, self.param)
        except InitdiagError:
            return None

    @property
    def gain(self) -> float:
        """The gain ``gain=auto`` uses: PyTorch's table where it has an entry, else the
        second-moment-preserving gain 1/sqrt(E[phi(z)^2]) (elu, gelu, silu, softplus)."""
        torch_gain = self.torch_gain
        return torch_gain if torch_gain is not None else second_moment_gain(self)

    def __str__(self) -> str:
        k = self._k
        if k.param_name is not None and self.param is not None and self.param != k.param_default:
            return f"{self.kind}:{fmt_number(self.param)}"
        return self.kind


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, exactly as ``torch.nn.init.calculate_gain``.

    ================= ====================================================
    nonlinearity      gain
    ================= ====================================================
    linear / conv     1
    sigmoid           1
    tanh              5/3
    relu              sqrt(2)
    leaky_relu        sqrt(2 / (1 + negative_slope^2)), slope 0.01 default
    selu              3/4
    ================= ====================================================
    """
    name = _ALIASES.get(nonlinearity, nonlinearity)
    if name in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if name == "tanh":
        return 5.0 / 3
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        slope = LEAKY_RELU_DEFAULT_SLOPE if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if name == "selu":
        # PyTorch's value, chosen empirically (pytorch PR #50664); not self-normalizing
        return 3.0 / 4
    raise InitdiagError(f"PyTorch's calculate_gain has no entry for '{nonlinearity}'")


def second_moment_gain(act: Activation) -> float:
    """1 / sqrt(E[phi(z)^2]), z ~ N(0, 1): the weight gain that keeps E[z^2] fixed layer to layer
    for a wide layer whose inputs are phi of unit-variance pre-activations (relu gives sqrt 2)."""
    from .special import gaussian_expectation

    second_moment = gaussian_expectation(lambda z: act(z) ** 2, n=201)
    return 1.0 / math.sqrt(second_moment)


def get_activation(text: str | Activation) -> Activation:
    """Parse ``relu``, ``leaky_relu:0.2``, ``elu:alpha=0.5``, ... into an `Activation`."""
    if isinstance(text, Activation):
        return text
    call: Call = parse_call(str(text), "activation")
    kind = _ALIASES.get(call.name, call.name)
    if kind not in _KINDS:
        raise unknown_name("activation", call.name, ACTIVATION_NAMES)
    spec = _KINDS[kind]
    keys = (spec.param_name,) if spec.param_name else ()
    values = call.bind(keys, spec.param_name)
    param = spec.param_default
    if spec.param_name in values:
        param = to_float(call, spec.param_name, values[spec.param_name])
        if kind == "elu" and param <= 0:
            raise InitdiagError(f"'{call.text}': alpha must be > 0, got {fmt_number(param)}")
    return Activation(kind, param)
