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
gradients, and xi_c = -1 / ln chi_c for correlations. Two inputs whose pre-activations have correlation
c map to

    c' = M(c) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*,
    u1 = sqrt(q*) z1,  u2 = sqrt(q*) (c z1 + sqrt(1 - c^2) z2),

with slope chi_c(c) = M'(c) = sigma_w^2 E[phi'(u1) phi'(u2)] (Price's theorem: d/dc E[phi(u1) phi(u2)]
= q* E[phi'(u1) phi'(u2)]), taken at the map's stable fixed point c*. M is a power series in c with
non-negative coefficients (the squares of phi's Hermite coefficients), so it is increasing and convex on
[0, 1], and M(1) = 1 with slope chi_1: when chi_1 <= 1, c* = 1 and chi_c = chi_1; when chi_1 > 1, c* is
the one root of M(c) = c in [0, 1), which Newton's method reaches from c = 0 without overshooting.

Expectations. E[f(sqrt(q) z)] is a composite Gauss-Legendre rule in z on [-12, 12] (the normal density
is below 6e-32 beyond), weighted by the density, with 12 points on each panel. The panels split at every
even z (12 points integrate the density to double precision on a panel of length 2), at z = 0 (the kink
of relu, leaky_relu, elu and selu) and at z = +-2^k / sqrt(q), k = -4..7: an activation bends at
|u| ~ 1, u = sqrt(q) z, so those points give its features panels of their own size however narrow they
are in z. A fixed Gauss-Hermite rule does not: at q = 400 tanh' is non-negligible only for |z| < 0.2,
where 200 Gauss-Hermite nodes put a handful, and chi_1 of tanh at sigma_w^2 = 400 came out 0.156 instead
of 10.9. The rule agrees with 30-digit mpmath integrals to 1e-15 relative for every activation, for E[phi^2]
and E[phi'^2], at q from 1e-6 to 1e8 (and stays exact beyond: the ladder moves with sqrt(q)). The 2-D
expectations nest two such rules: for each outer node z1, the inner expectation over z2 of
g(a + b z2), a = sqrt(q) c z1, b = sqrt(q (1 - c^2)), splits where a + b z2 meets 0 and +-2^k; the outer
rule also splits at +-2^k sqrt(1 - c^2) / c, the scale on which the inner average (phi smoothed by a
Gaussian of width b) varies in z1, which for a kink is b however small. Against closed forms (the
arc-cosine kernels of relu and the step function, and E[erf(u1) erf(u2)] = 2/pi asin(2 q c / (1 + 2 q)))
the 2-D rule is within 1e-10 for q in [1e-6, 1e8] and c in [1e-3, 1 - 1e-6]. linear, relu and
leaky_relu keep their closed forms (and their q-map, T(q) = r q + sigma_b^2, its closed-form fixed point).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ..core.activations import Activation

_REACH = 12.0  # |z| beyond which the normal density (< 6e-32) adds nothing at double precision
_DENSITY_STEP = 2.0  # panels for the density itself: 12 points integrate exp(-z^2/2) exactly on them
_FEATURES = 2.0 ** np.arange(-4, 8)  # |u| = 1/16 ... 128, where activations bend, on a geometric ladder
_POINTS = 12  # Gauss-Legendre points per panel of 1-D rules: 1e-15 relative
# points per panel of the 2-D rules, outer and inner: 8 (1e-10 relative) for the answer, 5 (1e-5) for
# the first Newton steps towards c*, at a third of the cost
_PAIR_POINTS = 8
_PAIR_POINTS_COARSE = 5
# q = 0 is evaluated as this: the limit q -> 0+ averages the two slopes at a kink (selu: not phi'(0)^2)
_TINY_Q = 1e-300
_SQRT_2PI = math.sqrt(2.0 * math.pi)


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
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre on [-1, 1], weights summing to 1: Jacobi off-diagonal k / sqrt(4 k^2 - 1)."""
    k = np.arange(1, n, dtype=float)
    return _golub_welsch(k / np.sqrt(4 * k * k - 1))


@functools.cache
def _density_edges() -> np.ndarray:
    return np.arange(-_REACH, _REACH + _DENSITY_STEP / 2, _DENSITY_STEP)


def _panel_rule(edges: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of int f(z) N(z; 0, 1) dz with *points* Gauss-Legendre points on each panel
    between consecutive *edges* (sorted along the last axis; rows are independent rules). A zero-width
    panel gets zero weights, so every row keeps the same number of nodes."""
    x, w = _legendre(points)
    half = 0.5 * np.diff(edges, axis=-1)
    z = np.multiply.outer(half, x)  # outer products and in-place updates: 4x faster than broadcasting
    z += (edges[..., :-1] + half)[..., None]
    density = z * z
    density *= -0.5
    np.exp(density, out=density)
    weights = np.multiply.outer(half * (2.0 / _SQRT_2PI), w)
    weights *= density
    shape = (*edges.shape[:-1], -1)
    return z.reshape(shape), weights.reshape(shape)


@functools.lru_cache(maxsize=256)
def _rule(q: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes u = sqrt(q) z and weights with E[f(u)] ~ sum(weights * f(u)), u ~ N(0, q): panels split
    at even z, at 0 and at u = +-2^k (see the module's doc); at most 13 + 24 edges, 432 nodes."""
    s = math.sqrt(max(q, _TINY_Q))
    edges = np.concatenate([_density_edges(), _FEATURES / s, -_FEATURES / s])
    edges = np.unique(np.clip(edges, -_REACH, _REACH))  # points outside [-12, 12] merge into its ends
    z, weights = _panel_rule(edges, _POINTS)
    u = s * z
    u.flags.writeable = weights.flags.writeable = False  # shared by the cache
    return u, weights


def expect(f, q: float) -> float:
    """E[f(sqrt(q) z)], z ~ N(0, 1), by the composite Gauss-Legendre rule of the module's doc: accurate
    for f smooth on each side of 0 with its features at |u| <~ 1, whatever q is."""
    u, weights = _rule(float(q))
    with np.errstate(all="ignore"):
        return float(np.dot(weights, f(u)))


def _piecewise_linear_moment(act: Activation) -> float | None:
    """E[phi'(z)^2] for linear (1), relu (1/2) and leaky_relu with slope s ((1 + s^2)/2), which is
    also E[phi(sqrt(q) z)^2] / q; None for other activations."""
    if act.kind == "linear":
        return 1.0
    if act.kind in ("relu", "leaky_relu"):
        slope = act.param or 0.0
        return (1.0 + slope * slope) / 2.0
    return None


def _moments(act: Activation, q: float) -> tuple[float, float, float]:
    """(E[phi(u)^2], E[phi'(u)^2], E[phi(u) phi'(u) u] / q), u = sqrt(q) z: the q-map's moment, the
    slope moment, and d/dq E[phi(u)^2] (= E[phi phi' z] / sqrt(q)), from one evaluation of phi."""
    return _cached_moments(act.kind, act.param, float(q))


@functools.lru_cache(maxsize=1024)
def _cached_moments(kind: str, param: float | None, q: float) -> tuple[float, float, float]:
    act = Activation(kind, param)
    closed = _piecewise_linear_moment(act)
    if closed is not None:
        return closed * q, closed, closed
    u, weights = _rule(q)
    with np.errstate(all="ignore"):
        phi = act(u)
        slope = act.derivative(u, phi)
        return (
            float(np.dot(weights, phi * phi)),
            float(np.dot(weights, slope * slope)),
            float(np.dot(weights, phi * slope * u)) / max(q, _TINY_Q),
        )


def second_moment(act: Activation, q: float) -> float:
    """E[phi(sqrt(q) z)^2]: in closed form for linear, relu and leaky_relu, else by quadrature."""
    return _moments(act, q)[0]


def slope_moment(act: Activation, q: float) -> float:
    """E[phi'(sqrt(q) z)^2]: in closed form for linear, relu and leaky_relu, else by quadrature."""
    return _moments(act, q)[1]


def _pair_moments(act: Activation, q: float, c: float, points: int = _PAIR_POINTS) -> tuple[float, float]:
    """(E[phi(u1) phi(u2)], E[phi'(u1) phi'(u2)]), u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2),
    0 <= c < 1: an outer rule in z1 over inner rules in z2, each split where its argument meets the
    activation's features (the module's doc)."""
    if c == 0:  # independent: products of 1-D expectations
        u, weights = _rule(float(q))
        with np.errstate(all="ignore"):
            phi = act(u)
            slope = act.derivative(u, phi)
            return float(np.dot(weights, phi)) ** 2, float(np.dot(weights, slope)) ** 2
    s = math.sqrt(max(q, _TINY_Q))
    sine = math.sqrt((1.0 - c) * (1.0 + c))  # sqrt(1 - c^2) without losing digits near c = 1
    b = s * sine
    # the inner average E_z2[phi(a + b z2)] is phi smoothed at width b: in z1 it varies on the scale
    # b / (s c) = sqrt(1 - c^2) / c, which for a kink is no larger however small b is
    smooth = sine / c
    outer = np.concatenate(
        [_density_edges(), _FEATURES / s, -_FEATURES / s, _FEATURES * smooth, -_FEATURES * smooth]
    )
    z1, w1 = _panel_rule(np.unique(np.clip(outer, -_REACH, _REACH)), points)
    a = (s * c) * z1
    features = np.concatenate([[0.0], _FEATURES, -_FEATURES])
    with np.errstate(all="ignore"):
        inner = np.clip((features - a[:, None]) / b, -_REACH, _REACH)
    # a feature outside [-12, 12] for every outer node only adds zero-width panels: drop it whole, so
    # every row keeps the same number of edges
    inner = inner[:, np.any(np.abs(inner) < _REACH, axis=0)]
    grid = _density_edges()
    edges = np.empty((len(z1), len(grid) + inner.shape[1]))  # C order, which the rule's products want
    edges[:, : len(grid)] = grid
    edges[:, len(grid) :] = inner
    edges.sort(axis=1)
    z2, w2 = _panel_rule(edges, points)
    with np.errstate(all="ignore"):
        u2 = a[:, None] + b * z2
        phi2 = act(u2)
        slope2 = act.derivative(u2, phi2)
        u1 = s * z1
        phi1 = act(u1)
        slope1 = act.derivative(u1, phi1)
        return (
            float(np.dot(w1 * phi1, np.einsum("ij,ij->i", w2, phi2))),
            float(np.dot(w1 * slope1, np.einsum("ij,ij->i", w2, slope2))),
        )


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


_UNBOUNDED = 1e30  # q beyond this: grows without bound
_COLLAPSED = 1e-30  # q below this: collapses to 0
# with no bias and phi(0) = 0, q = 0 is itself fixed and the approach to it can be algebraic (tanh at
# sigma_w^2 = 1: q_l ~ 1/(2 l)), with T(q) - q ~ q^2 lost in rounding below q ~ 1e-13: iterates
# heading down below this fraction of q0 are taken to reach it
_COLLAPSED_NO_BIAS = 1e-9
_MAX_STEPS = 500


def _q_map(sigma_w2: float, sigma_b2: float, act: Activation, q: float) -> tuple[float, float]:
    """T(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 and its slope T'(q) = sigma_w^2 E[phi phi' u] / q."""
    second, _, mixed = _moments(act, q)
    return sigma_w2 * second + sigma_b2, sigma_w2 * mixed


def fixed_point(sigma_w2: float, sigma_b2: float, act: Activation, q0: float = 1.0) -> float:
    """q* = T(q*), T(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2: the fixed point that iterating T
    from q0 reaches (a layer-by-layer forward pass of a deep stack); 0 when it collapses, inf when it
    grows without bound, nan when every q is fixed (a scale-free map at its critical weight variance
    with no bias: linear, relu and leaky_relu have T(q) = r q + sigma_b^2, solved in closed form).

    T is increasing, so its iterates move monotonically towards that fixed point and never pass it, but
    near a critical point they crawl (like T'(q*)^n with T'(q*) ~ 1, or algebraically). So each step goes
    at least as far as T(q), and further by Newton's method on T(q) - q = 0 where T'(q) < 1, at most by a
    factor 2 (by 2 where T' >= 1: growth towards inf or 0). Once a step lands past the fixed point,
    T(q) - q has changed sign and the fixed point is bracketed; each evaluation narrows the bracket to
    T(q) on q's side (T is increasing), and the steps are Newton's where they stay inside, else bisection."""
    if _scale_free(act):  # T(q) = r q + sigma_b^2
        r = sigma_w2 * _piecewise_linear_moment(act)
        if abs(r - 1) <= 1e-12:
            return math.nan if sigma_b2 == 0 else math.inf
        if r > 1:
            return math.inf
        return sigma_b2 / (1 - r)
    no_bias_zero = sigma_b2 == 0 and float(act(np.zeros(1))[0]) == 0.0
    # r(q) = E[phi(sqrt(q) z)^2] / q is monotone in q for every activation here (|phi(u) / u| is monotone
    # in |u| on each side of 0; for gelu and silu, Phi(u) and sigmoid(u) gain more at +u than they lose
    # at -u), between its limits at 0 and inf: (phi'(0+)^2 + phi'(0-)^2) / 2 and the same at +-inf
    ratio_zero, ratio_inf = slope_moment(act, 0.0), _slope_at_infinity(act)
    q, direction = q0, 0.0  # direction: +1 when the iterates increase, -1 when they decrease
    short = past = None  # the bracket's ends: T(q) - q has the sign of direction at short, not at past
    for _ in range(_MAX_STEPS):
        value, slope = _q_map(sigma_w2, sigma_b2, act, q)
        if not math.isfinite(value):
            return math.inf
        step = value - q
        # converged when Newton's distance to the fixed point, (T(q) - q) / (1 - T'(q)), is below 1e-12 q;
        # not when the plain step is, which is also tiny where q grows slowly for ever: elu at
        # sigma_w^2 = 2 (he) gains ~1 a layer, softplus O(1/sqrt(q)), until the gain is below rounding.
        # Then T' ~ 1 and no fixed point is in sight: q grows without bound
        if slope < 1 and abs(step) <= 1e-12 * q * (1 - slope):
            return value
        if direction > 0 and abs(step) <= 1e-15 * q and slope >= 1 - 1e-9:
            return math.inf
        if step == 0:  # T(q) = q exactly, where the iterates stay
            return value
        direction = direction or math.copysign(1.0, step)
        if step * direction > 0:  # short of q*, and so is T(q), further on
            ratio = (value - sigma_b2) / q  # sigma_w^2 r(q)
            # T(q') / q' = sigma_w^2 r(q') + sigma_b^2 / q' stays on one side of 1 beyond q when
            # sigma_w^2 r does at q and at the limit (r is monotone): no fixed point ahead
            if value > _UNBOUNDED or (direction > 0 and min(ratio, sigma_w2 * ratio_inf) > 1 + 1e-9):
                return math.inf
            if value < _COLLAPSED or (
                no_bias_zero
                and direction < 0
                and (max(ratio, sigma_w2 * ratio_zero) < 1 - 1e-9 or value < _COLLAPSED_NO_BIAS * q0)
            ):
                return 0.0
            short = value
        else:  # past q*: T(q) is between q* and q
            past = value
        newton = q + step / (1.0 - slope) if slope < 1 else None
        if past is None:
            far = 2.0 * q if direction > 0 else 0.5 * q
            if newton is not None:
                far = min(newton, far) if direction > 0 else max(newton, far)
            q = max(value, far) if direction > 0 else min(value, far)
        elif abs(past - short) <= 1e-12 * abs(short):
            return (past + short) / 2
        elif newton is not None and (newton - short) * (past - newton) > 0:
            q = newton
        else:
            q = (short + past) / 2
    return q


def _scale_free(act: Activation) -> bool:
    """phi(c x) = c phi(x) for c > 0 (linear, relu, leaky_relu): the q-map is multiplication."""
    return act.kind in ("linear", "relu", "leaky_relu")


def _chi_c(sigma_w2: float, sigma_b2: float, act: Activation, q: float, chi_1: float) -> tuple[float, float]:
    """(c*, chi_c) of the correlation map M(c) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*, whose
    slope is M'(c) = sigma_w^2 E[phi'(u1) phi'(u2)]: c* = 1 and chi_c = chi_1 unless chi_1 > 1; then c*
    is the root of M(c) = c in [0, 1), by Newton's method from c = 0 (M is convex: the iterates rise
    to c* without passing it, quadratically near it). The first steps use a coarser rule; the last two,
    the full one: the step before last leaves c within ~1e-4 of c*, the last within 1e-9."""
    if not chi_1 > 1 + 1e-9:
        return 1.0, chi_1
    c, chi_c, points = 0.0, chi_1, _PAIR_POINTS_COARSE
    for _ in range(40):
        pair, slopes = _pair_moments(act, q, c, points)
        value, chi_c = (sigma_w2 * pair + sigma_b2) / q, sigma_w2 * slopes
        if not (math.isfinite(value) and chi_c < 1):
            break
        step = (value - c) / (1.0 - chi_c)
        if points == _PAIR_POINTS and abs(step) <= 1e-9:  # chi_c moves by ~1e-9 with c: done
            return min(c + step, 1.0), chi_c
        if abs(step) <= 1e-4:
            points = _PAIR_POINTS
        c = min(c + step, 1.0)
    return c, chi_c


def _slope_at_infinity(act: Activation) -> float:
    """lim E[phi'(sqrt(q) z)^2] as q -> inf: (phi'(inf)^2 + phi'(-inf)^2) / 2."""
    u = np.array([1e150, -1e150])
    with np.errstate(all="ignore"):
        return float(np.mean(act.derivative(u, act(u)) ** 2))


def stack_theory(sigma_w2: float, sigma_b2: float, act: Activation) -> StackTheory:
    """Fixed point, chi_1, depth scales and the phase of a deep stack of such layers, in words. Where q
    collapses to 0 or grows without bound, chi_1 is the limit the layers' chi approach: sigma_w^2 times
    the mean of phi'^2 on the two sides of 0, or at +-inf."""
    q = fixed_point(sigma_w2, sigma_b2, act)
    if math.isnan(q):  # scale-free: phi'(c z) = phi'(z), chi does not depend on q
        chi_1 = sigma_w2 * slope_moment(act, 1.0)
    elif math.isinf(q):  # the limit the layers' chi approach as q grows
        chi_1 = sigma_w2 * _slope_at_infinity(act)
    else:
        chi_1 = sigma_w2 * slope_moment(act, q)
    log_chi = math.log(chi_1) if chi_1 > 0 else -math.inf
    xi_grad = math.inf if abs(log_chi) < 1e-9 else 1.0 / abs(log_chi)  # 0 when chi_1 = 0
    if math.isfinite(q) and q > 0:
        _, chi_c = _chi_c(sigma_w2, sigma_b2, act, q, chi_1)
    else:
        chi_c = chi_1
    xi_c = math.inf if chi_c >= 1 - 1e-9 else (-1.0 / math.log(chi_c) if chi_c > 0 else 0.0)
    if chi_1 == 0:
        phase, how = "ordered", "no gradient passes a layer"
    elif abs(chi_1 - 1) < 1e-3:
        phase, how = "critical", "gradients keep their size"
    elif chi_1 < 1:
        phase, how = "ordered", f"gradients shrink by e every {xi_grad:.3g} layers"
    else:
        phase, how = "chaotic", f"gradients grow by e every {xi_grad:.3g} layers"
    at = f"chi_1 = {chi_1:.3g} ({'ordered phase' if phase == 'ordered' else phase}: {how})"
    if math.isnan(q):
        words = "deeper stacks of these layers: q is preserved layer to layer, "
        words += f"chi_1 = {chi_1:.3g} at every depth ({phase}: {how})"
    elif math.isinf(q):
        words = f"deeper stacks of these layers: q grows without bound, where chi tends to {at}"
    elif q == 0:
        words = f"deeper stacks of these layers: q collapses to 0, where chi tends to {at}"
    else:
        words = f"deeper stacks of these layers: q tends to q* = {q:.3g}, where {at}"
    return StackTheory(sigma_w2, sigma_b2, str(act), q, chi_1, xi_grad, xi_c, phase, words)


def depth_theory(predictions: list[LayerTheory], ratios: list[float], start: int, names: list[str]) -> dict:
    """What the theory predicts for this stack at this depth: the gradient's E[x^2] from the last
    layer back to layer *start* (where the summary's backward gain is read) changes by the product of
    chi_l * fan_out/fan_in over the layers between, chi_l = sigma_w^2 E[phi'(sqrt(q_l) z)^2] along this
    stack's own q_l (*ratios*: each layer's fan_out/fan_in), which the ∂x th column shows layer by
    layer. The fixed point is only where a deeper stack tends: tanh at sigma_w^2 = 1 is critical there
    (q* = 0) but reaches it like q_l ~ 1/(2 l), and over 20 layers the gradient shrinks 13-fold."""
    last = len(predictions) - 1
    between = predictions[start:last]
    chis = [p.chi for p in between]
    factor = math.prod(c * r for c, r in zip(chis, ratios[start:last], strict=True))
    out = {"backward_factor": factor, "backward_factor_at": names[start], "backward_layers": len(between)}
    if not between:
        out["depth_words"] = "no hidden layer passes the gradient back, so depth plays no part"
        return out
    positive = all(c > 0 for c in chis)
    mean = math.exp(sum(math.log(c) for c in chis) / len(chis)) if positive else 0.0
    out["chi_geometric_mean"] = mean
    if factor == 0:
        change = "to vanish"
    elif not math.isfinite(factor):
        change = f"to change by a factor {factor:.3g}"
    elif 0.9 <= factor <= 1 / 0.9:
        change = f"to keep its size (x{factor:.3g})"
    elif factor < 1:
        change = f"to shrink to {factor:.3g} of its size"
    else:
        change = f"to grow {factor:.3g}-fold"
    span = (
        f"{min(chis):.3g}"
        if max(chis) - min(chis) <= 1e-3 * max(chis)
        else f"{min(chis):.3g} to {max(chis):.3g}"
    )
    many = f"{len(chis)} layer{'s' if len(chis) != 1 else ''}"
    out["depth_words"] = (
        f"from {names[last]} back to {names[start]} ({many}) the gradient's E[x^2] is predicted {change}: "
        f"chi along this stack's q_l is {span}" + (f" (geometric mean {mean:.3g})" if len(chis) > 1 and
                                                    "to" in span else "")
    )  # fmt: skip
    return out
