"""How a network's init and learning rates scale with width: SP, μP, NTK and mean field, as
``initdiag coordcheck`` trains them and ``initdiag explain mup`` prints them.

Every rule is written for one parameter tensor by the *role* its dimensions give it when the
hidden width n grows (Tensor Programs V, Yang et al. 2022, sec. 3 and Table 3):

- ``input``: fan_in fixed, fan_out scales (the first layer's weights);
- ``hidden``: both scale;
- ``output``: fan_in scales, fan_out fixed (the readout);
- ``bias``: a bias whose length scales (fan_in 1, fan_out n: Table 3 puts "all biases" with the
  input weights);
- ``fixed``: nothing scales (the readout's bias, a layer between two fixed widths): unchanged by
  every parametrization.

A rule is four exponents of the width ratio m = n / n0 (n0 the base width, where every
parametrization equals SP, as the ``mup`` package's ``set_base_shapes``): the effective weights'
variance is the stack initializer's variance at base width times m^var, plain SGD's learning rate
is lr * m^sgd, Adam's lr * m^adam with its epsilon eps * m^eps. "Effective" is the weight the
forward pass multiplies by: a parametrization written with a multiplier, W = A w (TP4's
abc-parametrization: A = n^-a, w ~ N(0, n^-2b), lr n^-c), is the same network trained on W with
Var(W) = A^2 Var(w), SGD lr A^2 lr_w, Adam lr A lr_w and epsilon eps / A (Adam divides by its
second moment, so a multiplier on the gradient cancels except against eps): TP5's symmetry
(A, B, C) -> (A theta, B / theta, C / theta^2 for SGD, C / theta for Adam), eq. (5).

Numpy-free: the data and the arithmetic are plain floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import InitdiagError, unknown_name
from .callspec import parse_call, to_choice

ROLES = ("input", "hidden", "output", "bias", "fixed")
OPTIMIZER_FAMILY = {"sgd": "sgd", "momentum": "sgd", "adam": "adam"}  # momentum scales as SGD (TP5 B.3)


class Rule(NamedTuple):
    """Exponents of m = n / n0 for one role (see the module doc)."""

    var: float = 0.0
    sgd: float = 0.0
    adam: float = 0.0
    eps: float = 0.0


@dataclass(frozen=True)
class Parametrization:
    """One parametrization, resolved: its canonical name, its rules by role, whether the weights
    use the stack initializer at their own fans (SP) and whether the readout starts at zero."""

    name: str
    rules: dict[str, Rule] = field(default_factory=dict)
    own_init: bool = False  # SP: the initializer at the layer's real fans, one learning rate
    zero_readout: bool = False  # mup (default): output weights and their bias start at 0
    text: str = ""

    def rule(self, role: str) -> Rule:
        return self.rules.get(role, Rule())

    def variance_factor(self, role: str, m: float) -> float:
        """Var(W) at ratio *m* over the initializer's variance at base width (0 for a zero readout)."""
        if self.zero_readout and role == "output":
            return 0.0
        return m ** self.rule(role).var

    def lr_factor(self, role: str, m: float, optimizer: str) -> float:
        """The learning rate at ratio *m* over ``--lr``."""
        family = OPTIMIZER_FAMILY[optimizer]
        rule = self.rule(role)
        return m ** (rule.sgd if family == "sgd" else rule.adam)

    def eps_factor(self, role: str, m: float) -> float:
        """Adam's epsilon at ratio *m* over its own (1 except where a multiplier is folded in)."""
        return m ** self.rule(role).eps

    def __str__(self) -> str:
        return self.text or self.name


# Tensor Programs V, Table 3 ("muP and SP for general neural networks"), exponents of fan_in / fan_out:
#                 input weights & all biases   output weights          hidden weights
#   Init. Var.    1/fan_in                     1/fan_in^2 (SP 1/fan_in)  1/fan_in
#   SGD LR        fan_out (SP 1)               1/fan_in (SP 1)           1
#   Adam LR       1                            1/fan_in (SP 1)           1/fan_in (SP 1)
_MUP = {
    "input": Rule(var=0, sgd=1, adam=0),
    "hidden": Rule(var=-1, sgd=0, adam=-1),
    "output": Rule(var=-2, sgd=-1, adam=-1),
    "bias": Rule(var=0, sgd=1, adam=0),
}
# TP4 (Yang & Hu 2021, sec. 3) NTK parametrization: a_1 = 0, a_l = 1/2 after, b = 0, c = 0 (one
# learning rate on w, with SGD or Adam), as effective weights: W = w / sqrt(fan_in)
_NTK = {
    "hidden": Rule(var=-1, sgd=-1, adam=-0.5, eps=0.5),
    "output": Rule(var=-1, sgd=-1, adam=-0.5, eps=0.5),
}
# TP4's mean-field parametrization (a_1 = 0, a_2 = 1, b = 0, c = -1 for SGD; c = 0 for Adam, whose
# update does not grow with the gradient) carried to every layer after the first: W = w / fan_in.
# With one hidden layer it is muP (TP4 sec. 3); deeper, its hidden layers start at n^-1/2, n^-1, ...
_MEAN_FIELD = {
    "input": Rule(var=0, sgd=1, adam=0),
    "hidden": Rule(var=-2, sgd=-1, adam=-1, eps=1),
    "output": Rule(var=-2, sgd=-1, adam=-1, eps=1),
    "bias": Rule(var=0, sgd=1, adam=0),
}

NAMES = ("sp", "mup", "ntk", "mean_field")
ALIASES = {
    "standard": "sp",
    "μp": "mup",
    "µp": "mup",  # the micro sign, as keyboards type it
    "mu_p": "mup",
    "maximal_update": "mup",
    "ntp": "ntk",
    "mf": "mean_field",
    "mfp": "mean_field",
    "meanfield": "mean_field",
}
READOUTS = ("zero", "normal")


def get_parametrization(text: str) -> Parametrization:
    """``sp``, ``mup`` (``mup:readout=normal`` for Table 3's 1/fan_in^2 readout instead of zero),
    ``ntk``, ``mean_field`` (aliases in `ALIASES`); one `InitdiagError` line for anything else."""
    call = parse_call(str(text), "parametrization")
    name = ALIASES.get(call.name.replace("-", "_"), call.name.replace("-", "_"))
    if name not in NAMES:
        raise unknown_name("parametrization", call.name, NAMES)
    if name == "mup":
        values = call.bind(("readout",), "readout")
        readout = to_choice(call, "readout", values.get("readout", "zero"), READOUTS)
        text = "mup" if readout == "zero" else "mup:readout=normal"
        return Parametrization("mup", _MUP, zero_readout=readout == "zero", text=text)
    call.bind((), None)
    if name == "sp":
        return Parametrization("sp", {}, own_init=True, text="sp")
    return Parametrization(name, _NTK if name == "ntk" else _MEAN_FIELD, text=name)


def role_of(fan_in_scales: bool, fan_out_scales: bool) -> str:
    """The role of a weight whose fan_in / fan_out scale with width."""
    if fan_in_scales:
        return "hidden" if fan_out_scales else "output"
    return "input" if fan_out_scales else "fixed"


def bias_role(fan_out_scales: bool) -> str:
    return "bias" if fan_out_scales else "fixed"


def init_scale(init, real, at_base, factor: float, option: str, param) -> float:
    """The std multiplier that turns *init*'s draw at the real fans into the parametrization's:
    Var = Var(at base) * factor. A constant (zeros) stays as it is."""
    if factor == 0:
        return 0.0
    var_real, var_base = init.variance(real), init.variance(at_base)
    if var_real is None or var_base is None or init.mean(real) not in (0, 0.0):
        raise InitdiagError(
            f"{option} '{init}' has no fixed variance with mean 0, so {param} cannot rescale it with width; "
            "use a variance-scaling or plain random initializer (he, xavier, normal:0.02, torch_default)"
        )
    if var_real == 0:
        return 1.0
    return math.sqrt(var_base * factor / var_real)


def resolve_name(text: str) -> str | None:
    """The canonical parametrization *text* names (its arguments ignored), or None."""
    head = str(text).strip().partition(":")[0].strip().lower().replace("-", "_")
    name = ALIASES.get(head, head)
    return name if name in NAMES else None


# --- the reference card (initdiag explain sp|mup|ntk|mean_field) ------------------------------------

_TP5 = (
    'Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao 2022, "Tensor Programs V: '
    'Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer", Table 3'
)
_TP4 = 'Yang & Hu 2021, "Feature Learning in Infinite-Width Neural Networks" (Tensor Programs IV), sec. 3'
CARD_COLUMNS = ("input weights & all biases", "hidden weights", "output weights")


class Card(NamedTuple):
    name: str
    aliases: tuple[str, ...]
    summary: str
    table: tuple[tuple[str, str, str, str], ...]  # (row, input & biases, hidden, output)
    paper: str
    mup_package: str
    when: str
    traps: tuple[str, ...]


CARDS: dict[str, Card] = {
    "sp": Card(
        "sp",
        ("standard",),
        "standard parametrization: the stack's own initializer at every width, one learning rate",
        (
            (
                "init var",
                "the initializer's (He: 2/fan_in)",
                "the initializer's (He: 2/fan_in)",
                "the initializer's (He: 2/fan_in)",
            ),
            ("SGD LR", "lr", "lr", "lr"),
            ("Adam LR", "lr", "lr", "lr"),
        ),
        _TP5 + " (the grey SP entries)",
        "what torch.optim does on a model without set_base_shapes (mup's SP runs)",
        "The baseline: what PyTorch, Keras and JAX models are. Its init is width-stable (step 0 is "
        "flat), its updates are not: after one step of Adam a hidden layer moves by about lr * width.",
        (
            "Step 0 of a coord check is flat in SP too: judge the steps after it.",
            "The output's update grows like width (SGD and Adam), the hidden layers' like width with Adam "
            "and sqrt(width) with SGD: the learning rate that trains width 256 diverges at width 8192.",
        ),
    ),
    "mup": Card(
        "mup",
        ("μp", "maximal_update", "mu_p"),
        "Maximal Update Parametrization: every layer's features move by Θ(1) per step at every width",
        (
            ("init var", "1/fan_in (x base: constant)", "1/fan_in", "1/fan_in^2, or 0 (readout=zero)"),
            ("SGD LR", "lr * fan_out/base", "lr", "lr * base/fan_in"),
            ("Adam LR", "lr", "lr * base/fan_in", "lr * base/fan_in"),
        ),
        _TP5 + "; per layer as mup's MuSGD / MuAdam and MuReadout apply it",
        "set_base_shapes(model, base) + MuReadout (multiplier 1/width_mult, constant-variance init) + "
        "MuSGD / MuAdam: the same network and updates (TP5's symmetry), up to where Adam's eps sits",
        "Tune the learning rate and init on a narrow model (the base width) and reuse them at any "
        "width (muTransfer). initdiag's mup defaults to a zero readout, as mup's coord check does.",
        (
            "Written relative to a base width n0 (--base-width, default the narrowest): at n0 it is SP "
            "exactly, at n the factors are powers of n/n0.",
            "With a random readout (mup:readout=normal) the output starts at width^-1/2 (slope -0.5 at "
            "step 0): expected and transient; a zero readout removes it (mup README).",
            "Transformers also need attention logits scaled by 1/d_head, not 1/sqrt(d_head).",
        ),
    ),
    "ntk": Card(
        "ntk",
        ("ntp",),
        "NTK parametrization: W = w / sqrt(fan_in) with one learning rate on w (the lazy, kernel regime)",
        (
            ("init var", "the initializer's at base (constant)", "1/fan_in", "1/fan_in"),
            ("multiplier", "1", "1/sqrt(fan_in)", "1/sqrt(fan_in)"),
            ("SGD LR (on W)", "lr", "lr * base/fan_in", "lr * base/fan_in"),
            (
                "Adam LR (on W)",
                "lr",
                "lr * sqrt(base/fan_in), eps * sqrt(fan_in/base)",
                "lr * sqrt(base/fan_in), eps * sqrt(fan_in/base)",
            ),
        ),
        _TP4 + " (a_1 = 0, a_l = 1/2, b = 0, c = 0); Jacot, Gabriel & Hongler 2018",
        "none (mup implements SP and muP)",
        "To see the kernel regime: stable activations whose change since init shrinks with width "
        "(no feature learning) under SGD.",
        (
            "With Adam one learning rate on w moves hidden weights by lr/sqrt(fan_in) per entry, and the "
            "features by about sqrt(width): NTK is stable with SGD only.",
        ),
    ),
    "mean_field": Card(
        "mean_field",
        ("mf", "mfp"),
        "mean-field parametrization: W = w / fan_in after the first layer, SGD lr scaled by width",
        (
            ("init var", "the initializer's at base (constant)", "1/fan_in^2", "1/fan_in^2"),
            ("multiplier", "1", "1/fan_in", "1/fan_in"),
            ("SGD LR (on W)", "lr * fan_out/base", "lr * base/fan_in", "lr * base/fan_in"),
            (
                "Adam LR (on W)",
                "lr",
                "lr * base/fan_in, eps * fan_in/base",
                "lr * base/fan_in, eps * fan_in/base",
            ),
        ),
        _TP4 + " (MFP: a_1 = 0, a_2 = 1, b = 0, c = -1; carried to every layer after the first)",
        "none",
        "With one hidden layer it is muP (TP4). Deeper it shows why muP exists: the hidden layers "
        "start at width^-1/2, width^-1, ... and vanish.",
        ("Only the one-hidden-layer form is the paper's; deeper stacks get the naive extension.",),
    ),
}


def card(name: str) -> Card:
    found = resolve_name(name)
    if found is None:
        raise InitdiagError(f"unknown parametrization '{name}'")
    return CARDS[found]


def card_data(name: str) -> dict:
    """A parametrization's card as a dict (JSON): the `Card` fields, the table as rows of
    {row, input weights & all biases, hidden weights, output weights}, and ``kind``."""
    found = card(name)
    data = {"kind": "parametrization", **found._asdict(), "input": str(name).strip()}
    data["table"] = [dict(zip(("row", *CARD_COLUMNS), row, strict=True)) for row in found.table]
    data["aliases"], data["traps"] = list(found.aliases), list(found.traps)
    return data


def card_csv_row(name: str) -> dict:
    """The card as one CSV row: the table's cells as ``row: input | hidden | output`` joined by "; "."""
    data = card_data(name)
    data["table"] = "; ".join(f"{r['row']}: " + " | ".join(r[c] for c in CARD_COLUMNS) for r in data["table"])
    data["aliases"], data["traps"] = "; ".join(data["aliases"]), " | ".join(data["traps"])
    return data


def card_text(name: str, width: int = 100) -> str:
    """The plain-text page of ``initdiag explain mup``: title, summary, the table, paper, mup, traps."""
    import textwrap

    found = card(name)
    lines = [f"{found.name} (parametrization; aliases: {', '.join(found.aliases)})"]
    lines += textwrap.wrap(found.summary, width, initial_indent="  ", subsequent_indent="  ")
    lines.append("")
    headers = ("", *CARD_COLUMNS)
    cells = [headers, *found.table]
    sizes = [max(len(row[k]) for row in cells) for k in range(4)]
    for row in cells:
        lines.append(
            "  " + "  ".join(cell.ljust(size) for cell, size in zip(row, sizes, strict=True)).rstrip()
        )
    lines.append("")
    for label, text in (
        ("paper", found.paper),
        ("mup package", found.mup_package),
        ("when to use it", found.when),
    ):
        lines += textwrap.wrap(text, width, initial_indent=f"{label + ':':<16}", subsequent_indent=" " * 16)
    lines.append("traps:")
    for trap in found.traps:
        lines += textwrap.wrap(trap, width, initial_indent="  - ", subsequent_indent="    ")
    return "\n".join(lines) + "\n"


def card_markdown(name: str) -> str:
    found = card(name)
    lines = [
        f"### `{found.name}` (parametrization)",
        "",
        "Aliases: " + ", ".join(f"`{a}`" for a in found.aliases),
    ]
    lines += ["", found.summary, "", "| | " + " | ".join(CARD_COLUMNS) + " |", "|:--|:--|:--|:--|"]
    lines += ["| " + " | ".join(row) + " |" for row in found.table]
    lines += [
        "",
        f"- **paper**: {found.paper}",
        f"- **mup package**: {found.mup_package}",
        f"- **when to use it**: {found.when}",
        "",
        "**Traps**",
        "",
    ]
    lines += [f"- {trap}" for trap in found.traps]
    return "\n".join(lines) + "\n"
