"""The weights a model starts from, tensor by tensor: shape, fans, mean, std, the initialization rule
each matches best (`init_rules`), and what looks wrong.

Flags (a tensor's ``flags``; the summary's are their union):

- ``norm``: a normalization gain that is not all ones, or its bias not all zeros (at init a norm
  must pass its input through; GPT-2 and BERT set LayerNorm to 1 and 0).
- ``sibling``: a tensor that differs from the tensors with the same role in the other blocks
  (``h.3.mlp.c_fc.weight`` against ``h.#.mlp.c_fc.weight``), or from the tensor it is usually tied
  to (an output head and the token embedding): another rule, or a std more than 6 standard errors
  from the others' median. When more than half of a role's tensors differ, the role varies by
  design (a depth-scaled init) and nothing is flagged.
- ``block``: two or more of a block's tensors are ``sibling``: the block stands apart (was it
  re-initialised?).
- ``spectrum``: singular values beyond the Marchenko–Pastur edge. An m x n matrix of independent
  entries of std sigma has its singular values below sigma (sqrt(m) + sqrt(n)) up to a Tracy–Widom
  fluctuation of 0.5 (1/sqrt(m) + 1/sqrt(n))^(1/3) sigma; a spike beyond 6 of those is structure
  that no random init has (a trained or broken matrix, a shared mean).
- ``symmetric``: a weight matrix whose values are all equal (zeros, a constant): its units compute
  the same function and receive the same gradient.
- ``nonfinite``: nan or inf values.

A tensor's fans follow PyTorch (``weight`` is (out, in, *kernel): fan_in = in * prod(kernel)), or
Keras/JAX with ``layout="keras"`` ((*kernel, in, out)).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InitdiagError
from .init_rules import MATCH, Rule, best_rule, bias_rules, families, top_singular_values, weight_rules

AUDIT_FLAGS = ("nonfinite", "symmetric", "norm", "sibling", "block", "spectrum")
FAILING_FLAGS = ("nonfinite", "symmetric")
LAYOUTS = ("torch", "keras")
ROLES = ("weight", "embedding", "bias", "norm_weight", "norm_bias", "other")
TW_MARGIN = 6.0  # Tracy–Widom scales above the Marchenko–Pastur edge before a value is an outlier
SIBLING_SE = 6.0  # standard errors of a std difference before siblings differ
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_TIED = (
    re.compile(r"(^|\.)(lm_head|head|output|classifier|decoder|embed_out)\.weight$"),
    re.compile(
        r"(^|\.)(wte|embed_tokens|word_embeddings|tok_embeddings|token_embedding|embed|embedding)\.weight$"
    ),
)


@dataclass
class TensorAudit:
    """One tensor: its statistics, the rule it matches (``fit`` is that rule's probability, see
    `init_rules`), its spectrum's top singular value over the Marchenko–Pastur edge, and flags."""

    name: str
    shape: tuple[int, ...]
    role: str
    fan_in: int | None = None
    fan_out: int | None = None
    mean: float = math.nan
    std: float = math.nan
    kurtosis: float | None = None
    max_ratio: float | None = None  # max |x - mean| / std
    rule: str | None = None
    rule_std: float | None = None
    rule_note: str = ""
    fit: float | None = None
    alike: list[str] = field(default_factory=list)
    shape_family: str | None = None  # normal, uniform or truncated, by kurtosis, when no rule fits
    spectrum_ratio: float | None = None
    spectrum_outliers: int | None = None
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data


@dataclass
class AuditSummary:
    verdict: str
    flags: list[str]
    reasons: list[str]
    notes: list[str]
    rules: dict[str, int]  # how many tensors each rule drew


@dataclass
class AuditResult:
    source: str
    layout: str
    tensors: list[TensorAudit]
    summary: AuditSummary
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from .._version import __version__
        from .result import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "initdiag_version": __version__,
            "source": self.source,
            "layout": self.layout,
            "tensors": [t.to_dict() for t in self.tensors],
            "skipped": list(self.skipped),
            "summary": asdict(self.summary),
        }


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


def infer_role(name: str, shape: tuple[int, ...], shapes: Mapping[str, tuple[int, ...]]) -> str:
    """A tensor's role from its name and its neighbours' shapes (a state dict carries no types): a
    1-D ``weight`` is a normalization gain (Linear and Conv weights have two or more dimensions)."""
    prefix, _, last = name.rpartition(".")
    sibling = lambda key: shapes.get(f"{prefix}.{key}" if prefix else key)  # noqa: E731
    if len(shape) >= 2:
        return "embedding" if re.search(r"emb|wte|wpe|tok", name, re.IGNORECASE) else "weight"
    if len(shape) == 1:
        weight = sibling("weight")
        if last in ("bias", "beta", "b"):
            if weight is not None and len(weight) >= 2:
                return "bias"
            return "norm_bias" if weight is not None else "bias"
        if last in ("weight", "gamma", "g", "scale"):
            return "norm_weight"
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


def audit(
    tensors: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    layout: str = "torch",
    roles: Mapping[str, str] | None = None,
    source: str = "",
) -> AuditResult:
    """Audit named arrays (a state dict as numpy arrays; anything ``np.asarray`` takes).

    *roles* overrides the role inferred from a name (``weight``, ``embedding``, ``bias``,
    ``norm_weight``, ``norm_bias``, ``other``), as a module's types give it.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> r = audit({"fc.weight": rng.normal(0, 0.02, (512, 512)), "ln.weight": np.ones(512)})
    >>> [(t.name, t.rule) for t in r.tensors], r.summary.verdict
    ([('fc.weight', 'normal:0.02'), ('ln.weight', 'ones')], 'ok')
    """
    if layout not in LAYOUTS:
        raise InitdiagError(f"unknown layout '{layout}'; allowed: {', '.join(LAYOUTS)}")
    items = list(tensors.items() if isinstance(tensors, Mapping) else tensors)
    arrays: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    for name, value in items:
        array = np.asarray(value)
        if name.rpartition(".")[2] in _BUFFERS or not np.issubdtype(array.dtype, np.floating):
            skipped.append(name)
            continue
        arrays[name] = array
    if not arrays:
        raise InitdiagError(f"{source or 'the weights'}: no floating-point tensors to audit")
    shapes = {name: tuple(a.shape) for name, a in arrays.items()}
    blocks = count_blocks(arrays)
    results = []
    for name, array in arrays.items():
        role = (roles or {}).get(name) or infer_role(name, shapes[name], shapes)
        if role not in ROLES:
            raise InitdiagError(f"tensor '{name}': unknown role '{role}'; allowed: {', '.join(ROLES)}")
        results.append(_audit_tensor(name, array, role, layout, blocks, shapes))
    _flag_siblings(results)
    _flag_tied(results, arrays)
    return AuditResult(source, layout, results, _summary(results, skipped), skipped)


def _audit_tensor(name: str, array: np.ndarray, role: str, layout: str, blocks: int | None,
                  shapes: Mapping[str, tuple[int, ...]]) -> TensorAudit:  # fmt: skip
    shape = tuple(int(d) for d in array.shape)
    t = TensorAudit(name, shape, role)
    fans = fans_of(shape, layout) if role in ("weight", "embedding") else None
    if role == "bias":
        prefix = name.rpartition(".")[0]
        weight = shapes.get(f"{prefix}.weight" if prefix else "weight")
        fans = fans_of(weight, layout) if weight else None
        t.fan_in = fans[0] if fans else None
    elif fans:
        t.fan_in, t.fan_out = fans
    x = array.astype(np.float64, copy=False).ravel()
    finite = np.isfinite(x)
    if not finite.all():
        t.flags.append("nonfinite")
        t.reasons.append(f"{name}: {int((~finite).sum())} of {x.size} values are nan or inf")
        x = x[finite]
    if x.size == 0:
        return t
    t.mean, t.std = float(x.mean()), float(x.std())
    if (x == x[0]).all():  # exactly constant (a computed std of 0.1s is 1e-17, not 0)
        t.mean, t.std = float(x[0]), 0.0
        value = t.mean
        t.rule = "zeros" if value == 0 else "ones" if value == 1 else f"constant:{value:.6g}"
        t.fit = 1.0
        if role in ("weight", "embedding") and x.size > 1 and len(shape) >= 2:
            t.flags.append("symmetric")
            t.reasons.append(f"{name}: every value is {value:.6g}, so its units compute the same function "
                             "and get the same gradient")  # fmt: skip
    else:
        centred = (x - t.mean) / t.std
        t.kurtosis = float(np.mean(centred**4) - 3)
        t.max_ratio = float(np.abs(centred).max())
        rules: list[Rule]
        if role in ("weight", "embedding") and fans:
            rules = weight_rules(fans[0], fans[1], blocks)
        elif role == "bias":
            rules = bias_rules(t.fan_in)
        else:
            rules = [Rule("normal:0.02", "normal", 0.02), Rule("normal:1", "normal", 1.0)]
        fit = best_rule(x, rules)
        t.shape_family = fit.family
        if fit.rule is not None:
            t.rule, t.rule_std, t.rule_note, t.fit, t.alike = (fit.rule.name, fit.rule.std, fit.rule.note,
                                                               fit.fit, fit.alike)  # fmt: skip
        if len(shape) >= 2 and role in ("weight", "embedding"):
            _spectrum(t, _as_matrix(array.astype(np.float64, copy=False), layout) if finite.all() else None)
    if role == "norm_weight" and not (t.std == 0 and t.mean == 1):
        t.flags.append("norm")
        t.reasons.append(f"{name}: a normalization gain should start at 1; it has mean {t.mean:.4g}, "
                         f"std {t.std:.4g}" + (f" (like {t.rule})" if t.rule else ""))  # fmt: skip
    if role == "norm_bias" and not (t.std == 0 and t.mean == 0):
        t.flags.append("norm")
        t.reasons.append(
            f"{name}: a normalization bias should start at 0; it has mean {t.mean:.4g}, std {t.std:.4g}"
        )
    return t


def _spectrum(t: TensorAudit, matrix: np.ndarray | None) -> None:
    """The top singular values (Lanczos, `top_singular_values`); orthogonal when all are equal; outliers
    beyond the Marchenko–Pastur edge (see the module's doc)."""
    if matrix is None:
        return
    m, n = matrix.shape
    small = min(m, n)
    if small < 2:
        return
    singular, equal = top_singular_values(matrix)
    top = float(singular[0])
    if equal:
        gain = top
        t.rule = "orthogonal" if math.isclose(gain, 1, rel_tol=1e-4) else f"orthogonal:gain={gain:.4g}"
        t.rule_std, t.fit, t.alike = gain / math.sqrt(max(m, n)), 1.0, []
        t.rule_note = "all singular values equal"
        return
    if small < 16:
        return
    edge = t.std * (math.sqrt(m) + math.sqrt(n))
    fluctuation = 0.5 * (1 / math.sqrt(m) + 1 / math.sqrt(n)) ** (1 / 3) * t.std
    threshold = edge + TW_MARGIN * fluctuation
    t.spectrum_ratio = top / edge
    t.spectrum_outliers = int((singular > threshold).sum())
    if t.spectrum_outliers:
        t.flags.append("spectrum")
        t.reasons.append(
            f"{t.name}: {t.spectrum_outliers} singular value{'s' if t.spectrum_outliers > 1 else ''} beyond "
            f"the Marchenko–Pastur edge (the largest is {t.spectrum_ratio:.3g}x it); a random init has none"
        )


def _std_se(t: TensorAudit) -> float:
    """Relative standard error of a sample std of this tensor's family."""
    family = families().get(t.shape_family or "normal", families()["normal"])
    return math.sqrt((family.kurtosis + 2) / (4 * max(1, math.prod(t.shape))))


def _differs(t: TensorAudit, std: float, rule: str | None) -> bool:
    if t.rule is not None and rule is not None and t.rule != rule and rule not in t.alike:
        return True
    if t.std > 0 and std > 0:
        return abs(math.log(t.std / std)) > SIBLING_SE * math.sqrt(2) * _std_se(t)
    return (t.std > 0) != (std > 0)


def _flag_siblings(results: list[TensorAudit]) -> None:
    groups: dict[tuple, list[TensorAudit]] = defaultdict(list)
    for t in results:
        if _block_of(t.name) and math.isfinite(t.std):
            groups[(_role_key(t.name), t.shape)].append(t)
    outliers_by_block: dict[str, list[TensorAudit]] = defaultdict(list)
    for (key, _), members in groups.items():
        if len(members) < 3:
            continue
        median = float(np.median([m.std for m in members]))
        common = Counter(m.rule for m in members).most_common(1)[0][0]
        apart = [m for m in members if _differs(m, median, common)]
        if not apart or len(apart) * 2 > len(members):
            continue  # none stands apart, or the role varies by design (a depth-scaled init)
        for m in apart:
            m.flags.append("sibling")
            mine = f" ({m.rule})" if m.rule else ""
            theirs = f" ({common})" if common else ""
            m.reasons.append(
                f"{m.name}: std {m.std:.4g}{mine}, where the other {len(members) - 1} tensors of {key} "
                f"have std {median:.4g}{theirs}"
            )
            outliers_by_block[_block_of(m.name) or ""].append(m)
    for block, apart in outliers_by_block.items():
        if len(apart) >= 2:
            total = sum(1 for t in results if _block_of(t.name) == block)
            names = ", ".join(m.name.removeprefix(block + ".") for m in apart)
            for m in apart:
                m.flags.append("block")
                m.reasons.insert(
                    0,
                    f"block {block} stands apart: {len(apart)} of its {total} tensors ({names}) differ from "
                    "the same tensors in the other blocks (was it re-initialised?)",
                )


def _flag_tied(results: list[TensorAudit], arrays: Mapping[str, np.ndarray]) -> None:
    """An output head and a token embedding of the same shape are usually tied (the same tensor)."""
    heads = [t for t in results if _TIED[0].search(t.name)]
    embeds = [t for t in results if _TIED[1].search(t.name)]
    for head in heads:
        for embed in embeds:
            if head.shape != embed.shape or np.array_equal(arrays[head.name], arrays[embed.name]):
                continue
            if _differs(head, embed.std, embed.rule):
                head.flags.append("sibling")
                head.reasons.append(
                    f"{head.name} has the shape of {embed.name} but not its init (std {head.std:.4g} against "
                    f"{embed.std:.4g}): untied, or re-initialised after tying?"
                )


def _summary(results: list[TensorAudit], skipped: list[str]) -> AuditSummary:
    flags = [f for f in AUDIT_FLAGS if any(f in t.flags for t in results)]
    verdict = "fail" if any(f in FAILING_FLAGS for f in flags) else "warn" if flags else "ok"
    # a block that stands apart is one reason (its tensors' own are in their rows and in JSON)
    reasons = list(
        dict.fromkeys(r for t in results for r in (t.reasons[:1] if "block" in t.flags else t.reasons))
    )
    notes = []
    if skipped:
        notes.append(f"not audited: {len(skipped)} buffers and integer tensors ({', '.join(skipped[:3])}"
                     + (", ..." if len(skipped) > 3 else "") + ")")  # fmt: skip
    unmatched = [t.name for t in results if not matched(t) and t.std > 0]
    if unmatched:
        notes.append(f"{len(unmatched)} tensors match no init rule well (trained weights, or a rule initdiag "
                     "does not know)")  # fmt: skip
    rules = Counter(t.rule for t in results if matched(t))
    sources = {t.rule: t.rule_note for t in results if matched(t) and "residual" in t.rule_note}
    notes += [f"{rule} is {note}" for rule, note in sources.items()]
    return AuditSummary(verdict, flags, reasons, notes, dict(rules.most_common()))


def matched(t: TensorAudit) -> bool:
    """Whether the tensor's closest rule fits (a draw of it looks this far off 1 time in 1000 or
    more); if not, ``rule`` is only the nearest."""
    return t.rule is not None and (t.fit or 0) >= MATCH
