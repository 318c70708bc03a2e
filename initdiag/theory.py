"""Mean-field theory beside the measurement (Poole et al. 2016, Schoenholz et al. 2017).

For a dense layer with i.i.d. zero-mean weights of variance Var(W) and biases of second moment
sigma_b^2, sigma_w^2 = fan_in * Var(W), and wide layers, the pre-activation variance obeys

    q_1 = sigma_w^2 * E[x^2] + sigma_b^2,    q_l = sigma_w^2 * E[phi(sqrt(q_{l-1}) z)^2] + sigma_b^2,

z ~ N(0, 1), from the input's second moment. Backward, dL/dx_l = W_l^T (phi'(z_l) * dL/da_l), so

    E[(dL/dx_l)^2] = fan_out * Var(W_l) * E[phi'(sqrt(q_l) z)^2] * E[(dL/da_l)^2],

from the gradient at the output (measured: for the unit loss it is exactly 1/batch^2). The per-layer
factor chi = sigma_w^2 * E[phi'(sqrt(q) z)^2] at the fixed point q* of the q-map is chi_1: below 1 the
network is in the ordered phase (gradients shrink), above 1 chaotic (they grow), 1 is critical (relu:
sigma_w^2 = 2; tanh at sigma_b = 0: sigma_w^2 = 1). Depth scales: xi_grad = 1 / |ln chi_1| layers for
gradients, and xi_c = -1 / ln chi_c for correlations, chi_c = sigma_w^2 E[phi'(u1) phi'(u2)] at the
correlation map's fixed point c* (chi_c = chi_1 when c* = 1).

Expectations are Gauss-Hermite quadratures (200 nodes, none at 0) for smooth activations; relu,
leaky_relu, elu and selu have a kink at 0, across which Gauss-Hermite converges only algebraically
(6e-5 relative error for selu at 200 nodes), so for them the two half lines get Gauss-Legendre rules.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np

from .activations import Activation

_NODES = 200


def _golub_welsch(off_diagonal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) of the Gauss rule whose orthogonal polynomials have this
    symmetric Jacobi matrix (zero diagonal): its eigenvalues, and the squared first components of its
    eigenvectors (Golub & Welsch 1969). numpy.polynomial would do the same at 3 ms of import."""
    n = len(off_diagonal) + 1
    jacobi = np.zeros((n, n))
    idx = np.arange(n - 1)
    jacobi[idx, idx + 1] = jacobi[idx + 1, idx] = off_diagonal
    nodes, vectors = np.linalg.eigh(jacobi)
    weights = vectors[0] ** 2
    return nodes, weights / weights.sum()


@functools.cache
def _nodes(n: int = _NODES) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite for the standard normal weight: Jacobi off-diagonal sqrt(k)."""
    return _golub_welsch(np.sqrt(np.arange(1, n, dtype=float)))


@functools.cache
def _split_nodes(panels: int = 12, points: int = 24, reach: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes on [-reach, 0] and [0, reach], weighted by the normal density:
    exact to ~1e-13 for functions smooth on each side of 0, however they join there."""
    k = np.arange(1, points, dtype=float)
    x, w = _golub_welsch(k / np.sqrt(4 * k * k - 1))  # Gauss-Legendre on [-1, 1]
    w = 2 * w
    edges = np.linspace(0.0, reach, panels + 1)
    half = np.concatenate([(a + b) / 2 + (b - a) / 2 * x for a, b in itertools.pairwise(edges)])
    half_w = np.concatenate([(b - a) / 2 * w for a, b in itertools.pairwise(edges)])
    nodes = np.concatenate([-half[::-1], half])
    weights = np.concatenate([half_w[::-1], half_w]) * np.exp(-nodes * nodes / 2) / math.sqrt(2 * math.pi)
    return nodes, weights


KINKED = ("relu", "leaky_relu", "elu", "selu")  # phi or phi' jumps at 0


def expect(f, q: float, kinked: bool = False) -> float:
    """E[f(sqrt(q) z)], z ~ N(0, 1): Gauss-Hermite (200 nodes, none at 0) for smooth f; for f with a
    kink at 0, Gauss-Legendre on each half line, where Gauss-Hermite converges only slowly."""
    nodes, weights = _split_nodes() if kinked else _nodes()
    with np.errstate(all="ignore"):
        return float(np.dot(weights, f(math.sqrt(max(q, 0.0)) * nodes)))


def _piecewise_linear_moment(act: Activation) -> float | None:
    """E[phi'(z)^2] for linear (1), relu (1/2) and leaky_relu with slope s ((1 + s^2)/2), which is
    also E[phi(sqrt(q) z)^2] / q; None for other activations."""
    if act.kind == "linear":
        return 1.0
    if act.kind in ("relu", "leaky_relu"):
        slope = act.param or 0.0
        return (1.0 + slope * slope) / 2.0
    return None


def second_moment(act: Activation, q: float) -> float:
    """E[phi(sqrt(q) z)^2]: in closed form for linear, relu and leaky_relu, else by quadrature."""
    closed = _piecewise_linear_moment(act)
    if closed is not None:
        return closed * q
    return expect(lambda u: act(u) ** 2, q, act.kind in KINKED)


def slope_moment(act: Activation, q: float) -> float:
    """E[phi'(sqrt(q) z)^2]: in closed form for linear, relu and leaky_relu, else by quadrature."""
    closed = _piecewise_linear_moment(act)
    if closed is not None:
        return closed
    return expect(lambda u: act.derivative(u, act(u)) ** 2, q, act.kind in KINKED)


class LayerTheory(NamedTuple):
    sigma_w2: float  # fan_in * Var(W)
    sigma_b2: float  # E[b^2]
    preact_var: float  # q_l
    chi: float  # sigma_w^2 * E[phi'(sqrt(q_l) z)^2]
    grad_input_var: float  # E[(dL/dx_l)^2]


class StackTheory(NamedTuple):
    """The q-map of one layer's sigma_w^2, sigma_b^2 and activation, iterated to its fixed point."""

    sigma_w2: float
    sigma_b2: float
    act: str
    q_star: float  # inf: q grows without bound; nan: any q is fixed (relu at sigma_w^2 = 2, sigma_b = 0)
    chi_1: float
    xi_grad: float  # layers over which gradients change by e (inf at criticality)
    xi_c: float
    phase: str  # ordered, critical, chaotic
    words: str

    def to_dict(self) -> dict:
        return self._asdict()


def layer_predictions(layers: list[tuple[float, float, float, Activation]], input_second: float,
                      output_grad_second: float) -> list[LayerTheory]:  # fmt: skip
    """*layers*: per layer (sigma_w^2, sigma_b^2, fan_out/fan_in, activation); the forward q_l from
    the input's second moment, the backward prediction from the gradient's at the output."""
    qs, chis = [], []
    second = input_second
    for sigma_w2, sigma_b2, _, act in layers:
        q = sigma_w2 * second + sigma_b2
        qs.append(q)
        chis.append(sigma_w2 * slope_moment(act, q))
        second = second_moment(act, q)
    grads = [math.nan] * len(layers)
    g = output_grad_second
    for i in range(len(layers) - 1, -1, -1):
        _, _, ratio, _ = layers[i]
        g = chis[i] * ratio * g  # fan_out * Var(W) = sigma_w^2 * fan_out / fan_in
        grads[i] = g
    return [LayerTheory(w2, b2, q, chi, g) for (w2, b2, _, _), q, chi, g in zip(layers, qs, chis, grads,
            strict=True)]  # fmt: skip


def fixed_point(sigma_w2: float, sigma_b2: float, act: Activation, q0: float = 1.0) -> float:
    """q* of q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 by iteration from q0: 0 when it collapses,
    inf when it grows without bound, nan when every q is fixed (a scale-free map at its critical
    weight variance with no bias)."""
    q = q0
    for _ in range(5000):
        new = sigma_w2 * second_moment(act, q) + sigma_b2
        if not math.isfinite(new) or new > 1e30:
            return math.inf
        if new < 1e-30:
            return 0.0
        if abs(new - q) <= 1e-12 * max(q, 1e-300):
            if sigma_b2 == 0 and abs(new / q - 1) < 1e-12 and _scale_free(act):
                return math.nan
            return new
        q = new
    return q


def _scale_free(act: Activation) -> bool:
    """phi(c x) = c phi(x) for c > 0 (linear, relu, leaky_relu): the q-map is multiplication."""
    return act.kind in ("linear", "relu", "leaky_relu")


def _chi_c(sigma_w2: float, sigma_b2: float, act: Activation, q: float) -> tuple[float, float]:
    """(c*, chi_c) of the correlation map c -> (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*,
    u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2), by iteration from c = 0.5."""
    nodes, weights = _nodes(60)
    z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
    w = np.outer(weights, weights)
    s = math.sqrt(q)
    c = 0.5
    with np.errstate(all="ignore"):
        for _ in range(2000):
            u1, u2 = s * z1, s * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
            new = (sigma_w2 * float(np.sum(w * act(u1) * act(u2))) + sigma_b2) / q
            new = min(max(new, -1.0), 1.0)
            if abs(new - c) < 1e-12:
                c = new
                break
            c = new
        u1, u2 = s * z1, s * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
        d1, d2 = act.derivative(u1, act(u1)), act.derivative(u2, act(u2))
        return c, sigma_w2 * float(np.sum(w * d1 * d2))


def stack_theory(sigma_w2: float, sigma_b2: float, act: Activation) -> StackTheory:
    """Fixed point, chi_1, depth scales and the phase of a deep stack of such layers, in words."""
    q = fixed_point(sigma_w2, sigma_b2, act)
    if _scale_free(act) or not math.isfinite(q):  # phi'(c z) = phi'(z): chi does not depend on q
        chi_1 = sigma_w2 * slope_moment(act, 1.0)
    else:
        chi_1 = sigma_w2 * slope_moment(act, q)
    log_chi = math.log(chi_1) if chi_1 > 0 else -math.inf
    xi_grad = math.inf if abs(log_chi) < 1e-9 else 1.0 / abs(log_chi)  # 0 when chi_1 = 0
    if math.isfinite(q) and q > 0:
        _, chi_c = _chi_c(sigma_w2, sigma_b2, act, q)
    else:
        chi_c = chi_1
    xi_c = math.inf if chi_c >= 1 - 1e-9 else (-1.0 / math.log(chi_c) if chi_c > 0 else 0.0)
    if chi_1 == 0:
        phase = "ordered"
        words = "no gradient passes a layer (chi_1 = 0)"
    elif abs(chi_1 - 1) < 1e-3:
        phase = "critical"
        words = f"critical (chi_1 = {chi_1:.3g}): gradients keep their size through depth"
    elif chi_1 < 1:
        phase = "ordered"
        words = f"ordered phase (chi_1 = {chi_1:.3g}): gradients shrink by e every {xi_grad:.3g} layers"
    else:
        phase = "chaotic"
        words = f"chaotic phase (chi_1 = {chi_1:.3g}): gradients grow by e every {xi_grad:.3g} layers"
    if math.isnan(q):
        words += "; q is preserved layer to layer"
    elif math.isinf(q):
        words += "; q grows without bound"
    elif q == 0:
        words += "; q collapses to 0"
    else:
        words += f"; q* = {q:.3g}"
    return StackTheory(sigma_w2, sigma_b2, str(act), q, chi_1, xi_grad, xi_c, phase, words)
