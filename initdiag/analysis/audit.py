"""The weights a model starts from, tensor by tensor: shape, fans, mean, std, the initialization rule
each matches best (`init_rules`), and what looks wrong.

Flags (a tensor's ``flags``; the summary's are their union):

- ``nonfinite``: nan or inf values (fail).
- ``symmetric``: a weight matrix whose units all start identical (one constant) with nothing to
  tell them apart: every tensor of the model is a constant (nothing random anywhere), the matrix
  is not the readout (another weight matrix reads its output) and no dropout is known. Each unit
  then computes the same function of the input, and the gradient treats them alike at every step
  (W's rows get delta_i x with delta_i the same for every i, since the next layer's columns are
  equal too), so the layer trains as one unit (fail). An all-zero tensor by itself is not a
  failure: zero readouts (muP, mup), the last layer of a residual branch (Fixup), a block's last
  norm gain (ResNet's zero_init_residual), a cls token start at 0 on purpose, and any other random
  layer separates the units through its gradient; the note says what the zero is for.
- ``constant``: a weight matrix of one nonzero constant while something else is random: its units
  start identical and only the other tensors' randomness separates them (no known init does this).
- ``logits``: an output layer (a head, or a matrix tied to the token embedding) whose std makes
  logits of std std * sqrt(d) > 3 for unit-scale inputs (a final norm's output): an embedding's
  N(0, 1) default tied to the head gives sqrt(d).
- ``norm``: a normalization gain that is not all ones, or its bias not all zeros (at init a norm
  must pass its input through; GPT-2 and BERT set LayerNorm to 1 and 0), except a zero gain of a
  block whose other norm gains are not zero (zero_init_residual).
- ``sibling``: a tensor that differs from the tensors with the same role in the other blocks
  (``h.3.mlp.c_fc.weight`` against ``h.#.mlp.c_fc.weight``; same role: same name, shape, kind of
  module, and for a bias the same weight shape), or from the tensor it is usually tied to (an
  output head and the token embedding): another rule, or a std more than 6 standard errors from
  the others' median. When more than half of a role's tensors differ, the role varies by design
  (a depth-scaled init) and nothing is flagged. With two blocks both are flagged: they differ,
  and which one is off cannot be told.
- ``block``: two or more of a block's tensors are ``sibling``: the block stands apart (was it
  re-initialised?).
- ``spectrum``: singular values beyond the Marchenko–Pastur edge. An m x n matrix of independent
  entries of std sigma has its singular values below sigma (sqrt(m) + sqrt(n)) up to a Tracy–Widom
  fluctuation of 0.5 (1/sqrt(m) + 1/sqrt(n))^(1/3) sigma; a spike beyond 6 of those is structure
  that no random init has (a trained or broken matrix, a shared mean).

Tensors that are one tensor (tied: the same storage in a module, or the same random values in a
file, saved twice) are audited once, under the first name, with the others in ``tied``.

A tensor's fans follow PyTorch (``weight`` is (out, in, *kernel): fan_in = in * prod(kernel)), or
Keras/JAX with ``layout="keras"`` ((*kernel, in, out)).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InitdiagError
from .audit_names import (  # noqa: F401  (names the renderers and tests import from here)
    _BUFFERS,
    _EMBED,
    _HEAD,
    _NORM_MODULE,
    _RNN,
    _WEIGHT_NAME,
    _as_matrix,
    _block_of,
    _key,
    _role_key,
    _same_values,
    _squeeze,
    count_blocks,
    fans_of,
    infer_role,
    owner_weight,
    plural,
    rnn_hidden_sizes,
)
from .audit_siblings import SIBLING_SE, _differs, _natural, flag_siblings  # noqa: F401
from .init_rules import MATCH, Rule, best_rule, bias_rules, top_singular_values, weight_rules

AUDIT_FLAGS = ("nonfinite", "symmetric", "constant", "logits", "norm", "sibling", "block", "spectrum")
FAILING_FLAGS = ("nonfinite", "symmetric")
LAYOUTS = ("torch", "keras")
ROLES = ("weight", "embedding", "bias", "norm_weight", "norm_bias", "other")
TW_MARGIN = 6.0  # Tracy–Widom scales above the Marchenko–Pastur edge before a value is an outlier
LOGIT_STD_LIMIT = 3.0  # logits of a larger std (for unit-scale inputs) put the softmax far from uniform
ZERO_NOTES = {
    "readout": "a zero readout (μP's and mup's default): the output starts at 0 and the first step moves it "
    "(its gradient is the activations below times the output error)",
    "hidden": "zero weights: as the last layer of a residual branch (Fixup, SkipInit) the block starts as "
    "the identity, and the random layers after it tell its units apart through the gradient (behind a "
    "ReLU with a zero bias it gets none: relu'(0) = 0)",
    "gain": "zero_init_residual (ResNet): a block's last norm gain starts at 0, so the block starts as the "
    "identity",
    "other": "a learned token, position or gate that starts at 0 (ViT's cls_token, ReZero's α): it learns "
    "from its gradient as a bias does",
}


@dataclass
class TensorAudit:
    """One tensor: its statistics, the rule it matches (``fit`` is that rule's probability, see
    `init_rules`), its spectrum's top singular value over the Marchenko–Pastur edge, and flags.
    ``tied``: the other names of this very tensor (audited once); ``logit_std``: for an output
    layer, the std of its logits for unit-scale inputs, sqrt(mean^2 + std^2) * sqrt(d)."""

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
    tied: list[str] = field(default_factory=list)
    logit_std: float | None = None
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    fits: dict[str, float] = field(
        default_factory=dict, repr=False
    )  # every candidate rule's fit (not in JSON)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        del data["fits"]
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


def audit(
    tensors: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    layout: str = "torch",
    roles: Mapping[str, str] | None = None,
    source: str = "",
    kinds: Mapping[str, str] | None = None,
    tied: Mapping[str, str] | None = None,
    dropout: bool | None = None,
) -> AuditResult:
    """Audit named arrays (a state dict as numpy arrays; anything ``np.asarray`` takes).

    *roles* overrides the role inferred from a name (``weight``, ``embedding``, ``bias``,
    ``norm_weight``, ``norm_bias``, ``other``), and *kinds* names each tensor's module type, as a
    module gives them; *tied* maps a name to the first name of the same tensor (same storage); without
    it, tensors of exactly the same random values are taken as tied. *dropout*: whether the model has
    dropout (None: unknown), whose random masks can break the symmetry of constant weights.

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
    every_name = [name for name, _ in items]
    role_of = {
        name: (roles or {}).get(name) or infer_role(name, shapes[name], shapes, every_name) for name in arrays
    }
    for name, role in role_of.items():
        if role not in ROLES:
            raise InitdiagError(f"tensor '{name}': unknown role '{role}'; allowed: {', '.join(ROLES)}")
    same_tensor = tied is not None
    aliases = {a: c for a, c in (tied if same_tensor else _same_values(arrays)).items() if a in arrays}
    blocks = count_blocks(arrays)
    hidden = rnn_hidden_sizes(shapes)
    results = []
    for name, array in arrays.items():
        if name in aliases:
            continue
        results.append(_audit_tensor(name, array, role_of[name], layout, blocks, shapes, hidden.get(name)))
    by_name = {t.name: t for t in results}
    for alias, canonical in aliases.items():
        by_name[canonical].tied.append(alias)
    _constants(results, layout, dropout)
    flag_siblings(results, kinds or {}, shapes)
    _flag_untied(results, arrays)
    _flag_logits(results, role_of, layout)
    notes = [
        f"{', '.join(t.tied)} {'is' if len(t.tied) == 1 else 'are'} {t.name} ("
        + ("the same tensor" if same_tensor else "the same values: tied, saved twice")
        + "), listed once"
        for t in results
        if t.tied
    ]
    return AuditResult(source, layout, results, _summary(results, skipped, notes), skipped)


def rnn_rule(hidden: int) -> Rule:
    """PyTorch's nn.RNN/GRU/LSTM default: every weight and bias from U(-1/sqrt(hidden), 1/sqrt(hidden))."""
    bound = 1 / math.sqrt(hidden)
    return Rule("torch_rnn_default", "uniform", bound / math.sqrt(3),
                f"PyTorch's RNN/GRU/LSTM default, U(±1/√hidden_size) with hidden_size {hidden} "
                f"(--init uniform:{bound:.4g} draws it)")  # fmt: skip


def _audit_tensor(name: str, array: np.ndarray, role: str, layout: str, blocks: int | None,
                  shapes: Mapping[str, tuple[int, ...]], hidden: int | None = None,
                  ) -> TensorAudit:  # fmt: skip
    shape = tuple(int(d) for d in array.shape)
    t = TensorAudit(name, shape, role)
    fans = (
        fans_of(shape if role == "weight" else _squeeze(shape), layout)
        if role in ("weight", "embedding")
        else None
    )
    if role == "bias":
        weight = shapes.get(owner_weight(name))
        fans = fans_of(weight, layout) if weight else None
        t.fan_in = fans[0] if fans else None
    elif fans:
        t.fan_in, t.fan_out = fans
    x = array.astype(np.float64, copy=False).ravel()
    finite = np.isfinite(x)
    if not finite.all():
        t.flags.append("nonfinite")
        bad = int((~finite).sum())
        t.reasons.append(f"{name}: {bad} of {x.size} values {'is' if bad == 1 else 'are'} nan or inf")
        x = x[finite]
    if x.size == 0:
        return t
    t.mean, t.std = float(x.mean()), float(x.std())
    if (x == x[0]).all():  # exactly constant (a computed std of 0.1s is 1e-17, not 0)
        t.mean, t.std = float(x[0]), 0.0
        value = t.mean
        t.rule = "zeros" if value == 0 else "ones" if value == 1 else f"constant:{value:.6g}"
        t.fit = 1.0
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
            rules = [Rule("normal:0.02", "normal", 0.02), Rule("normal:1", "normal", 1.0),
                     Rule("trunc_normal:0.02", "truncated", 0.02, "timm, ViT")]  # fmt: skip
        if hidden:
            rules = [rnn_rule(hidden), *rules]
        fit = best_rule(x, rules)
        t.shape_family = fit.family
        if fit.rule is not None:
            t.rule, t.rule_std, t.rule_note, t.fit, t.alike = (fit.rule.name, fit.rule.std, fit.rule.note,
                                                               fit.fit, fit.alike)  # fmt: skip
        t.fits = fit.fits
        if len(shape) >= 2 and role in ("weight", "embedding"):
            _spectrum(t, _as_matrix(array.astype(np.float64, copy=False), layout) if finite.all() else None)
    # a zero gain may be zero_init_residual: `_constants` decides, knowing the block's other gains
    if role == "norm_weight" and not (t.std == 0 and t.mean in (0, 1)):
        t.flags.append("norm")
        t.reasons.append(f"{name}: a normalization gain should start at 1; it has mean {t.mean:.4g}, "
                         f"std {t.std:.4g}" + (f" (like {t.rule})" if t.rule else ""))  # fmt: skip
    if role == "norm_bias" and not (t.std == 0 and t.mean == 0):
        t.flags.append("norm")
        t.reasons.append(
            f"{name}: a normalization bias should start at 0; it has mean {t.mean:.4g}, std {t.std:.4g}"
        )
    return t


def _constants(results: list[TensorAudit], layout: str, dropout: bool | None) -> None:
    """What each constant tensor is: a zero named by its purpose (``rule_note``), a constant weight
    matrix that nothing can tell apart (``symmetric``, see the module's doc) or that only other
    tensors' randomness can (``constant``), a zero norm gain outside zero_init_residual (``norm``)."""

    def units(t: TensorAudit) -> int:
        return t.shape[0] if layout == "torch" else t.shape[-1]

    def reads(v: TensorAudit, t: TensorAudit) -> bool:  # v takes t's output (its width, at least)
        return v is not t and (v.shape[1] if layout == "torch" else v.shape[-2]) == units(t)

    matrices = [t for t in results if t.role == "weight" and len(t.shape) >= 2]
    nothing_random = all(t.std == 0 for t in results)
    for t in results:
        if t.std != 0 or "nonfinite" in t.flags:
            continue
        zero, value = t.mean == 0, f"{t.mean:.6g}"
        if t in matrices and units(t) > 1:
            readout = not any(reads(v, t) for v in matrices)
            if not readout and nothing_random and dropout is not True:
                t.flags.append("symmetric")
                t.reasons.append(
                    f"{t.name}: every value is {value}, so its units start identical, and nothing in "
                    "the model is random to tell them apart (every tensor is a constant): each unit computes "
                    "the same function and gets the same gradient at every step, so the layer trains as one "
                    "unit"
                    + ("" if dropout is False else " (unless dropout's random masks separate them)")
                    + "; draw it at random (torch_default, he_normal)"
                )
            elif not zero and not readout:  # a readout's units are told apart by the loss
                t.flags.append("constant")
                t.reasons.append(
                    f"{t.name}: every value is {value}, so its units start identical and only the other "
                    "tensors' randomness (the next layer's weights, its own bias) can tell them apart; no "
                    "known init does this: draw it at random (torch_default, he_normal)"
                )
            if zero:
                t.rule_note = ZERO_NOTES["readout" if readout else "hidden"]
        elif zero and t.role in ("embedding", "other"):
            t.rule_note = ZERO_NOTES["other"]
        elif zero and t.role == "norm_weight":
            block = _block_of(t.name)
            others = [
                u for u in results if u.role == "norm_weight" and u is not t and _block_of(u.name) == block
            ]
            if block and any(not (u.std == 0 and u.mean == 0) for u in others):
                t.rule_note = ZERO_NOTES["gain"]
            else:
                t.flags.append("norm")
                t.reasons.append(
                    f"{t.name}: a normalization gain of 0 mutes its output (zero_init_residual zeroes only a "
                    "block's last gain and keeps its others at 1)"
                )


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


def _flag_untied(results: list[TensorAudit], arrays: Mapping[str, np.ndarray]) -> None:
    """An output head and a token embedding of the same shape are usually tied (the same tensor)."""
    heads = [t for t in results if _HEAD.search(t.name)]
    embeds = [t for t in results if _EMBED.search(t.name)]
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


def _flag_logits(results: list[TensorAudit], role_of: Mapping[str, str], layout: str) -> None:
    """Output layers (a head by its name, or a matrix tied to an embedding) whose logits, for inputs
    of unit scale (a final norm's output), have a std std * sqrt(d) far above 1."""
    for t in results:
        names = [t.name, *t.tied]
        head = next((n for n in names if _HEAD.search(n)), None)
        if head is None and t.tied and {role_of.get(n) for n in names} >= {"embedding", "weight"}:
            head = next(n for n in names if role_of.get(n) == "weight")
        if head is None or len(t.shape) != 2 or not math.isfinite(t.std):
            continue
        # an embedding table is (vocab, d) in every framework; a head's d is its fan_in
        d = t.shape[1] if role_of.get(t.name) == "embedding" or layout == "torch" else t.shape[0]
        t.logit_std = math.sqrt(t.mean**2 + t.std**2) * math.sqrt(d)
        if t.logit_std > LOGIT_STD_LIMIT:
            tied = f" (the output layer {head}, tied to it)" if head != t.name else ""
            t.flags.append("logits")
            t.reasons.append(
                f"{t.name}{tied}: an output layer of std {t.std:.4g} over d = {d} inputs gives logits of std "
                f"std·√d = {t.logit_std:.3g} for inputs of unit scale (a final norm's), far above 1: "
                "scale it by 1/√d, draw it from N(0, 0.02) as GPT-2 does"
                + (", or untie the head from the embedding" if t.tied else "")
            )


def _summary(results: list[TensorAudit], skipped: list[str], notes: list[str]) -> AuditSummary:
    flags = [f for f in AUDIT_FLAGS if any(f in t.flags for t in results)]
    verdict = "fail" if any(f in FAILING_FLAGS for f in flags) else "warn" if flags else "ok"
    # a block that stands apart is one reason (its tensors' own are in their rows and in JSON)
    reasons = list(
        dict.fromkeys(r for t in results for r in (t.reasons[:1] if "block" in t.flags else t.reasons))
    )
    notes = list(notes)
    if skipped:
        listed = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        one = len(skipped) == 1
        what = "that is a buffer or holds integers" if one else "that are buffers or hold integers"
        notes.append(f"not audited: {plural(len(skipped), 'tensor')} {what} ({listed})")
    zeros: dict[str, list[str]] = defaultdict(list)
    for t in results:
        if t.rule == "zeros" and t.rule_note:
            zeros[t.rule_note].append(t.name)
    for note, names in zeros.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        notes.append(f"zero init: {shown}: {note}")
    unmatched = [t.name for t in results if not matched(t) and t.std > 0]
    if unmatched:
        notes.append(f"{plural(len(unmatched), 'tensor')} match{'es' if len(unmatched) == 1 else ''} no init "
                     "rule well (trained weights, or a rule initdiag does not know)")  # fmt: skip
    rules = Counter(t.rule for t in results if matched(t))
    # rules whose name does not say all: GPT-2's depth-scaled std, the hidden size of an RNN's bound
    sources = {
        (t.rule, t.rule_note)
        for t in results
        if matched(t) and t.rule_note.startswith(("GPT-2's residual", "PyTorch's RNN"))
    }
    notes += [f"{rule} is {note}" for rule, note in sorted(sources, key=lambda pair: _natural(pair[1]))]
    return AuditSummary(verdict, flags, reasons, notes, dict(rules.most_common()))


def matched(t: TensorAudit) -> bool:
    """Whether the tensor's closest rule fits (a draw of it looks this far off 1 time in 1000 or
    more); if not, ``rule`` is only the nearest."""
    return t.rule is not None and (t.fit or 0) >= MATCH
