"""Which initialization rule drew a tensor: the shape of its distribution (normal, uniform, normal
truncated at ±2 std) and its std, tested against every rule PyTorch, Keras, JAX and GPT-2 use.

A rule is a family and a std. For a tensor of n values with sample mean m, std s and excess
kurtosis g2, each rule gets three z-scores, under the hypothesis that the values are n independent
draws of the rule:

    z_std  = (s / std - 1) / sqrt((kappa + 2) / (4 n))      (delta method; 1/sqrt(2n) for a normal)
    z_kurt = (g2 - kappa) / se_kurt(family) / sqrt(n)        (delta method on m4 / m2^2)
    z_mean = m / (std / sqrt(n))

and ``fit`` is the chi-square(3) tail probability of z_std^2 + z_kurt^2 + z_mean^2: the chance that
a true draw of the rule looks at least this far off. At n = 768 x 768 the std alone is known to
0.09%, so PyTorch's default for a 768-wide Linear (uniform, std 1/sqrt(3*768) = 0.02083) and
N(0, 0.02) are 45 standard errors apart, and their kurtoses (-1.2 against 0) another 190.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np

TRUNCATION = 2.0  # a truncated normal is cut at +-2 of its underlying std (Keras, JAX, initdiag)


@dataclass(frozen=True)
class Family:
    """A distribution shape: its excess kurtosis, the standard error of a sample's excess kurtosis
    times sqrt(n), and the largest |x|/std it can reach (inf for a normal)."""

    name: str
    kurtosis: float
    kurtosis_se: float
    max_ratio: float


def _family(name: str, m2: float, m4: float, m6: float, m8: float, max_abs: float) -> Family:
    """Var(m4/m2^2) = [Var(x^4)/m2^4 - 4 m4 Cov(x^4, x^2)/m2^5 + 4 m4^2 Var(x^2)/m2^6] / n."""
    var = (m8 - m4**2) / m2**4 - 4 * m4 * (m6 - m4 * m2) / m2**5 + 4 * m4**2 * (m4 - m2**2) / m2**6
    return Family(name, m4 / m2**2 - 3, math.sqrt(var), max_abs / math.sqrt(m2))


@cache
def families() -> dict[str, Family]:
    """normal (kurtosis 0, se sqrt(24)), uniform (-1.2) and the normal cut at +-2 std (-0.86)."""
    u = np.linspace(-TRUNCATION, TRUNCATION, 400_001)
    density = np.exp(-(u**2) / 2)
    moment = [float(np.trapezoid(u**k * density, u) / np.trapezoid(density, u)) for k in (2, 4, 6, 8)]
    return {
        "normal": _family("normal", 1, 3, 15, 105, math.inf),
        "uniform": _family("uniform", 1 / 3, 1 / 5, 1 / 7, 1 / 9, 1.0),
        "truncated": _family("truncated", *moment, TRUNCATION),
    }


@dataclass(frozen=True)
class Rule:
    """An initialization rule as it applies to one tensor: initdiag's name for it (so that
    ``--init NAME`` draws it), the family and the std it gives at this tensor's fans."""

    name: str
    family: str
    std: float
    note: str = ""  # where the rule comes from, when the name alone does not say


@dataclass
class Fit:
    """The best rule for a tensor, how well it fits (``fit``, a probability), and the rules that
    give the same draw here (a square matrix: xavier_normal is lecun_normal)."""

    rule: Rule | None
    fit: float
    z: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # std, kurtosis, mean
    alike: list[str] = field(default_factory=list)
    family: str | None = None  # the family the shape alone points to (when no rule fits)
    fits: dict[str, float] = field(default_factory=dict)  # every candidate rule's fit, by name

    @property
    def confident(self) -> bool:
        return self.rule is not None and self.fit >= 1e-3


def chi2_3_tail(x: float) -> float:
    """P(chi-square with 3 degrees of freedom > x) = erfc(sqrt(x/2)) + sqrt(2x/pi) exp(-x/2)."""
    if not math.isfinite(x):
        return 0.0
    return math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)


def weight_rules(fan_in: int, fan_out: int, blocks: int | None) -> list[Rule]:
    """Every rule a weight of these fans may come from, most common first (that order breaks ties)."""
    rules = [Rule("torch_default", "uniform", 1 / math.sqrt(3 * fan_in), "PyTorch's nn.Linear/Conv default")]
    rules.append(Rule("normal:0.02", "normal", 0.02, "GPT-2, BERT"))
    if blocks:
        std = 0.02 / math.sqrt(2 * blocks)
        rules.append(
            Rule(f"normal:{std:.4g}", "normal", std, f"GPT-2's residual projections, 0.02/sqrt(2*{blocks})")
        )
    rules.append(Rule("normal:1", "normal", 1.0, "nn.Embedding's default"))
    presets = (
        ("he", 2.0, "fan_in"), ("he", 2.0, "fan_out"), ("xavier", 1.0, "fan_avg"), ("lecun", 1.0, "fan_in"),
        ("lecun", 1.0, "fan_out"),
    )  # fmt: skip
    fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
    for preset, scale, mode in presets:
        std = math.sqrt(scale / fans[mode])
        mode_arg = f"mode={mode}" if mode not in ("fan_in", "fan_avg") else ""
        for family, suffix in (("normal", "_normal"), ("uniform", "_uniform"), ("truncated", "_normal")):
            args = [
                a for a in (mode_arg, "distribution=truncated_normal" if family == "truncated" else "") if a
            ]
            name = preset + suffix + (":" + ",".join(args) if args else "")
            rules.append(Rule(name, family, std))
    rules.append(Rule("trunc_normal:0.02", "truncated", 0.02, "timm, ViT"))
    return rules


def bias_rules(fan_in: int | None) -> list[Rule]:
    rules = []
    if fan_in:
        rules.append(Rule("torch_default", "uniform", 1 / math.sqrt(3 * fan_in), "PyTorch's default bias"))
    rules.append(Rule("normal:0.02", "normal", 0.02))
    return rules


def best_rule(values: np.ndarray, rules: list[Rule]) -> Fit:
    """The rule that fits *values* best (see the module's doc for the test), or ``Fit(None, 0)``
    when none fits at all, with the family the shape points to."""
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    mean = float(x.mean())
    centred = x - mean
    m2 = float(np.mean(centred**2))
    if n < 8 or m2 == 0 or not math.isfinite(m2):
        return Fit(None, 0.0)
    s = math.sqrt(m2)
    g2 = float(np.mean(centred**4)) / m2**2 - 3
    shape = families()
    scored = []
    for rule in rules:
        family = shape[rule.family]
        z_std = (s / rule.std - 1) / math.sqrt((family.kurtosis + 2) / (4 * n))
        z_kurt = (g2 - family.kurtosis) / (family.kurtosis_se / math.sqrt(n))
        z_mean = mean / (rule.std / math.sqrt(n))
        scored.append((z_std**2 + z_kurt**2 + z_mean**2, rule, (z_std, z_kurt, z_mean)))
    lowest = min(c for c, _, _ in scored)
    # the first rule (the most common) among those that fit equally well: a square matrix's
    # xavier_normal is lecun_normal, a 3 fan_in = fan_out matrix's torch_default a lecun_uniform
    same = [(c, r, zs) for c, r, zs in scored if math.isclose(c, lowest, rel_tol=1e-6, abs_tol=1e-9)]
    chi2, rule, z = same[0]
    alike = [r.name for _, r, _ in same[1:]]
    closest = min(shape.values(), key=lambda f: abs(g2 - f.kurtosis) / f.kurtosis_se)
    fits = {r.name: chi2_3_tail(c) for c, r, _ in scored}
    fit = Fit(rule, chi2_3_tail(chi2), z, alike, closest.name, fits)
    if fit.fit < MATCH and len(rules) > 1:
        # no named rule: the family its shape points to, at the roundest std that fits
        for digits in (1, 2, 3):
            generic = best_rule(x, [_generic(closest, s, digits)])
            if generic.fit >= MATCH:
                generic.fits = {**fits, **generic.fits}
                return generic
    return fit


MATCH = 1e-3  # a rule whose fit probability is below this does not match


def _generic(family: Family, std: float, digits: int) -> Rule:
    """initdiag's name for a draw of *family* at *std* rounded to *digits* significant digits."""
    rounded = float(f"{std:.{digits}g}")
    if family.name == "normal":
        return Rule(f"normal:{rounded:g}", "normal", rounded, "no named rule: a normal of this std")
    if family.name == "truncated":
        return Rule(f"trunc_normal:{rounded:g}", "truncated", rounded, "no named rule: a truncated normal")
    bound = float(f"{std * math.sqrt(3):.{digits}g}")
    return Rule(f"uniform:{bound:g}", "uniform", bound / math.sqrt(3), "no named rule: U(-a, a)")


def top_singular_values(matrix: np.ndarray, steps: int = 40) -> tuple[np.ndarray, bool]:
    """(values, all_equal): the largest singular values of *matrix* (Ritz values, largest first; those
    separated from the rest, as outliers are, are exact), by Lanczos on its smaller Gram
    matrix (40 steps with full reorthogonalisation give it to 1e-8 for a random 768 x 768 matrix,
    with matrix-vector products only: a dense eigensolver costs 20x more and stalls when BLAS
    threads compete), and whether every singular value is the same (the Krylov space of a random
    start vector collapses at once only for a multiple of an orthogonal matrix)."""
    rows, cols = matrix.shape
    # einsum rather than BLAS's gemv: its thread pool stalls for milliseconds a call when other
    # threads hold the cores, and forty small products are where that shows
    if rows <= cols:
        n, apply = rows, (lambda v: np.einsum("ij,j->i", matrix, np.einsum("ij,i->j", matrix, v)))
    else:
        n, apply = cols, (lambda v: np.einsum("ij,i->j", matrix, np.einsum("ij,j->i", matrix, v)))
    k = min(steps, n)
    basis = np.zeros((k + 1, n))
    alpha, beta = np.zeros(k), np.zeros(k)
    start = np.random.default_rng(0).standard_normal(n)
    basis[0] = start / np.linalg.norm(start)
    for j in range(k):
        w = apply(basis[j])
        alpha[j] = basis[j] @ w
        for _ in range(2):  # twice is enough (Kahan)
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta[j] = np.linalg.norm(w)
        if j == 0 and beta[0] <= 1e-5 * abs(alpha[0]):
            return np.array([math.sqrt(max(alpha[0], 0.0))]), True
        if beta[j] <= 1e-12 * abs(alpha[j]):
            k = j + 1
            break
        basis[j + 1] = w / beta[j]
    tridiagonal = np.diag(alpha[:k]) + np.diag(beta[: k - 1], 1) + np.diag(beta[: k - 1], -1)
    ritz = np.sqrt(np.clip(np.linalg.eigvalsh(tridiagonal), 0.0, None))
    return ritz[::-1], False
