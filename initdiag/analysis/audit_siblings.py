"""Tensors that should be alike and are not: the same role in every block (``h.3.mlp.c_fc.weight``
against ``h.#.mlp.c_fc.weight``), told apart by their init rule or a std more than `SIBLING_SE`
standard errors from the others' median; a block where several stand apart (`initdiag.analysis.audit`
flags them ``sibling`` and ``block``)."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .audit_names import _block_of, _role_key, owner_weight, plural
from .init_rules import MATCH, families

if TYPE_CHECKING:
    from .audit import TensorAudit

SIBLING_SE = 6.0  # standard errors of a std difference before siblings differ


def _std_se(t: TensorAudit) -> float:
    """Relative standard error of a sample std of this tensor's family."""
    family = families().get(t.shape_family or "normal", families()["normal"])
    return math.sqrt((family.kurtosis + 2) / (4 * max(1, math.prod(t.shape))))


def _differs(t: TensorAudit, std: float, rule: str | None) -> bool:
    # another best rule, unless the others' rule fits it too (64 biases cannot tell 0.0208 from 0.02)
    if t.rule is not None and rule is not None and t.rule != rule and rule not in t.alike:  # noqa: SIM102
        if t.fits.get(rule, 0.0) < MATCH:
            return True
    if t.std > 0 and std > 0:
        return abs(math.log(t.std / std)) > SIBLING_SE * math.sqrt(2) * _std_se(t)
    return (t.std > 0) != (std > 0)


def flag_siblings(results: list[TensorAudit], kinds: Mapping[str, str], shapes: Mapping[str, tuple]) -> None:
    """Tensors of the same role (name up to the block index, role, module type, shape, and a bias's
    weight shape) in different blocks that differ (see the module's doc)."""
    groups: dict[tuple, list[TensorAudit]] = defaultdict(list)
    for t in results:
        if _block_of(t.name) and math.isfinite(t.std):
            owner = shapes.get(owner_weight(t.name)) if t.role in ("bias", "norm_bias") else None
            groups[(_role_key(t.name), t.role, kinds.get(t.name), t.shape, owner)].append(t)
    outliers_by_block: dict[str, list[TensorAudit]] = defaultdict(list)
    partner: dict[str, str] = {}  # a block and the one other block it was compared with
    for (key, *_), members in groups.items():
        if len(members) == 2:
            a, b = members
            if not (_differs(a, b.std, b.rule) or _differs(b, a.std, a.rule)):
                continue
            for m, other in ((a, b), (b, a)):
                m.flags.append("sibling")
                m.reasons.append(
                    f"{m.name}: std {m.std:.4g}{_rule_in(m)}, where {other.name} has std {other.std:.4g}"
                    f"{_rule_in(other)}; with two blocks, which one is off cannot be told"
                )
                outliers_by_block[_block_of(m.name) or ""].append(m)
                partner[_block_of(m.name) or ""] = _block_of(other.name) or ""
            continue
        if len(members) < 3:
            continue
        median = float(np.median([m.std for m in members]))
        common = Counter(m.rule for m in members).most_common(1)[0][0]
        apart = [m for m in members if _differs(m, median, common)]
        if not apart or len(apart) * 2 > len(members):
            continue  # none stands apart, or the role varies by design (a depth-scaled init)
        for m in apart:
            m.flags.append("sibling")
            theirs = f" ({common})" if common else ""
            m.reasons.append(
                f"{m.name}: std {m.std:.4g}{_rule_in(m)}, where the other "
                f"{plural(len(members) - 1, 'tensor')} of {key} have std {median:.4g}{theirs}"
            )
            outliers_by_block[_block_of(m.name) or ""].append(m)
    for block, apart in outliers_by_block.items():
        if len(apart) < 2:
            continue
        names = ", ".join(m.name.removeprefix(block + ".") for m in apart)
        if block in partner and all(m.reasons[-1].endswith("cannot be told") for m in apart):
            first, second = sorted((block, partner[block]), key=_natural)
            reason = (f"blocks {first} and {second} differ in {len(apart)} of their tensors ({names}): "
                      "one of them was re-initialised, or the init scales by depth; with two blocks, which "
                      "one cannot be told")  # fmt: skip
        else:
            total = sum(1 for t in results if _block_of(t.name) == block)
            reason = (f"block {block} stands apart: {len(apart)} of its {total} tensors ({names}) differ "
                      "from the same tensors in the other blocks (was it re-initialised?)")  # fmt: skip
        for m in apart:
            m.flags.append("block")
            m.reasons.insert(0, reason)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _rule_in(t: TensorAudit) -> str:
    return f" ({t.rule})" if t.rule else ""
