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
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InitdiagError
from .init_rules import MATCH, Rule, best_rule, bias_rules, families, top_singular_values, weight_rules

AUDIT_FLAGS = ("nonfinite", "symmetric", "constant", "logits", "norm", "sibling", "block", "spectrum")
FAILING_FLAGS = ("nonfinite", "symmetric")
LAYOUTS = ("torch", "keras")
ROLES = ("weight", "embedding", "bias", "norm_weight", "norm_bias", "other")
TW_MARGIN = 6.0  # Tracy–Widom scales above the Marchenko–Pastur edge before a value is an outlier
SIBLING_SE = 6.0  # standard errors of a std difference before siblings differ
LOGIT_STD_LIMIT = 3.0  # logits of a larger std (for unit-scale inputs) put the softmax far from uniform
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_HEAD = re.compile(r"(^|\.)(lm_head|head|output|classifier|decoder|embed_out)\.weight$")
_EMBED = re.compile(
    r"(^|\.)(wte|embed_tokens|word_embeddings|tok_embeddings|token_embedding|embed|embedding)\.weight$"
)
# a module whose name says it normalizes: norm1, LayerNorm, input_layernorm, ln_f, bn3, gn
_NORM_MODULE = re.compile(r"norm|^(ln|bn|gn|rms)(\d+|_\w*)?$", re.IGNORECASE)
# nn.RNN/GRU/LSTM (weight_ih_l0, bias_hh_l1_reverse, weight_hr_l0) and their cells (weight_ih)
_RNN = re.compile(r"^(weight|bias)_(ih|hh|hr)(_l\d+(?:_reverse)?)?$")
# weight, in_proj_weight, weight_ih_l0, kernel (Keras, Flax), w (Haiku's linear/w), w1, W
_WEIGHT_NAME = re.compile(r"weight|kernel|(^|[/~_])[wW]\d*(:\d+)?$")
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


def plural(n: int, word: str) -> str:
    """``1 tensor``, ``2 tensors``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


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


def _squeeze(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without its leading 1s (a ViT's pos_embed, 1 x 197 x 192, is a 197 x 192 table)."""
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _key(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def owner_weight(name: str) -> str:
    """The weight beside a bias: ``fc.weight`` for ``fc.bias``, ``weight_ih_l0`` for ``bias_ih_l0``."""
    prefix, _, last = name.rpartition(".")
    if _RNN.match(last) and last.startswith("bias"):
        return _key(prefix, "weight" + last[4:])
    return _key(prefix, last[: -len("bias")] + "weight" if last.endswith("_bias") else "weight")


def infer_role(
    name: str, shape: tuple[int, ...], shapes: Mapping[str, tuple[int, ...]], names: Iterable[str] = ()
) -> str:
    """A tensor's role from its name (a state dict carries no types). A matrix named like a weight
    (``weight``, ``kernel``, ``in_proj_weight``, ``w1``) is a weight, one named like an embedding
    (``wte``, ``tok``, ``emb``) an embedding, any other (a cls token) ``other``. A 1-D gain or bias
    is a normalization's only when its module's name says so (``ln_1``, ``norm1``, ``bn3``,
    ``LayerNorm``) or batch-norm buffers sit beside it (*names*: every name of the state dict): a
    LayerScale's ``ls1.gamma`` is not a norm."""
    prefix, _, last = name.rpartition(".")
    names = set(names) | set(shapes)
    norm = bool(_NORM_MODULE.search(prefix.rpartition(".")[2])) or any(
        _key(prefix, buffer) in names for buffer in _BUFFERS[:2]
    )
    if len(shape) >= 2:
        if re.search(r"emb|wte|wpe|tok", name, re.IGNORECASE):
            return "embedding"
        return "weight" if _WEIGHT_NAME.search(last) else "other"
    if len(shape) == 1:
        if last in ("beta", "b") or last.startswith("bias") or last.endswith("bias"):
            return "norm_bias" if norm and not _RNN.match(last) else "bias"
        if last in ("weight", "gamma", "g", "scale"):
            return "norm_weight" if norm else "other"
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


def rnn_hidden_sizes(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """hidden_size of every parameter of an nn.RNN/GRU/LSTM (or cell), from its names: weight_hh is
    (gates * hidden, hidden), or (gates * hidden, proj) beside an LSTM's weight_hr (proj, hidden)."""
    out = {}
    for name in shapes:
        prefix, _, last = name.rpartition(".")
        match = _RNN.match(last)
        if not match:
            continue
        suffix = match.group(3) or ""
        hr, hh = (
            shapes.get(_key(prefix, "weight_hr" + suffix)),
            shapes.get(_key(prefix, "weight_hh" + suffix)),
        )
        hidden = hr[1] if hr and len(hr) == 2 else hh[1] if hh and len(hh) == 2 else None
        if hidden:
            out[name] = int(hidden)
    return out


def _same_values(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """{alias: first name} for tensors whose values are exactly another's (a tied tensor saved twice).
    Constant tensors (zero biases) are alike without being tied, and are left alone. Candidates share
    their shape, dtype and first values; only those are compared whole."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for name, array in arrays.items():
        flat = array.ravel()
        if flat.size > 1 and not (flat == flat[0]).all():
            groups[(array.shape, array.dtype.str, flat[:16].tobytes())].append(name)
    aliases: dict[str, str] = {}
    for names in groups.values():
        for i, alias in enumerate(names[1:], 1):
            first = next(
                (n for n in names[:i] if n not in aliases and np.array_equal(arrays[n], arrays[alias])), None
            )
            if first is not None:
                aliases[alias] = first
    return aliases


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
    _flag_siblings(results, kinds or {}, shapes)
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


def _flag_siblings(results: list[TensorAudit], kinds: Mapping[str, str], shapes: Mapping[str, tuple]) -> None:
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
