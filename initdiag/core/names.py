"""Initializer vocabulary shared by the samplers (`initdiag.initializers`, which imports numpy) and
the reference card (`initdiag.reference`, which must not): one copy of each.

`resolve` is the one place a name is read: initdiag's own names and aliases, and the names users
paste from PyTorch (``torch.nn.init.kaiming_normal_``), Keras (``tf.keras.initializers.HeNormal()``)
and JAX/Flax (``jax.nn.initializers.lecun_normal``). A framework's name means what it means in that
framework: Keras's ``HeNormal`` and JAX's ``he_normal`` are truncated normals, so they resolve to
``he_normal:distribution=truncated_normal``, while initdiag's bare ``he_normal`` (like PyTorch's
``kaiming_normal_``) is untruncated. Where a framework reads its arguments differently (PyTorch's
``uniform_(w, a, b)`` bounds, ``trunc_normal_``'s absolute cut, JAX's ``uniform(scale)`` on
[0, scale)), the `Spelling` says so and `initdiag.initializers` translates them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from ..errors import InitdiagError, unknown_name
from .callspec import fmt_number

# std of N(0, 1) truncated to (-2, 2): the correction Keras's and JAX's variance-scaling
# initializers apply to a truncated normal so its variance is the one asked for
TRUNCATED_NORMAL_STD = 0.87962566103423978

# alias -> canonical initializer name
ALIASES: dict[str, str] = {
    "he": "he_normal",
    "kaiming": "he_normal",
    "kaiming_normal": "he_normal",
    "kaiming_uniform": "he_uniform",
    "xavier": "xavier_uniform",
    "glorot": "xavier_uniform",
    "glorot_uniform": "xavier_uniform",
    "glorot_normal": "xavier_normal",
    "lecun": "lecun_normal",
    "zero": "zeros",
    "truncated_normal": "trunc_normal",
    "eye": "identity",
}

# a cut this many std from the mean or further changes a normal's variance by less than 1e-7
# (2*6*phi(6) = 7.3e-8, below float32 precision): such a "truncated" normal is a normal
NO_CUT = 6.0

PYTORCH, KERAS, JAX = "PyTorch", "Keras", "JAX"


class Spelling(NamedTuple):
    """What one framework name means in initdiag's terms."""

    name: str  # the canonical initdiag name (a key of the reference card)
    note: str  # what the framework's initializer draws and where it differs from initdiag's name
    implied: str = ""  # arguments the framework's name fixes, in --init grammar (used unless given)
    defaults: str = (
        ""  # the framework's call at its own defaults as an --init string, when not name[:implied]
    )
    renames: tuple[tuple[str, str], ...] = ()  # (the framework's argument, initdiag's) with one meaning
    positional: str = ""  # when set, a positional value is refused: what the framework would read it as
    needs: tuple[str, str] = ("", "")  # (what --init requires, example args) where the default is arbitrary
    convert: str = ""  # an argument translation `initdiag.initializers` applies (trunc cuts, gains, ...)

    @property
    def resolves_to(self) -> str:
        return self.defaults or self.name + (f":{self.implied}" if self.implied else "")


_C = "0.87962566103423978"
_TRUNC = "distribution=truncated_normal"
_NEEDS_STD = ("a std", "stddev=0.05")


def _truncated_note(spelled: str, variance: str, ours: str, torch: str) -> str:
    return (
        f"{spelled} is a TRUNCATED normal: std sqrt({variance})/{_C} cut at +-2 of that std, so the "
        f"variance is {variance} and no weight exceeds 2.2737*sqrt({variance}). That is "
        f"{ours}:{_TRUNC}; initdiag's bare {ours}, like PyTorch's {torch}, is untruncated (the same "
        "variance, with tails)."
    )


def _same(spelled: str, ours: str, detail: str = "") -> str:
    return f"{spelled} is initdiag's {ours}" + (f": {detail}" if detail else ".")


_TORCH: dict[str, Spelling] = {
    "zeros": Spelling("zeros", _same("torch.nn.init.zeros_(w)", "zeros", "every entry 0.")),
    "ones": Spelling("ones", _same("torch.nn.init.ones_(w)", "ones", "every entry 1.")),
    "constant": Spelling(
        "constant",
        _same(
            "torch.nn.init.constant_(w, val)", "constant:V", "every entry val (constant_:val=V is accepted)."
        ),
        renames=(("val", "value"),),
    ),
    "eye": Spelling(
        "identity",
        _same(
            "torch.nn.init.eye_(w)",
            "identity",
            "the 2-D rectangular identity. eye_ has no gain; identity:gain=G scales it.",
        ),
    ),
    "normal": Spelling(
        "normal",
        "torch.nn.init.normal_(w, mean=0.0, std=1.0) draws N(mean, std^2), untruncated: initdiag's "
        "normal:std=S,mean=M, and normal:1 at PyTorch's defaults. --init needs the std (normal_:std=0.02); "
        "a positional value would be PyTorch's mean, so it is refused.",
        defaults="normal:1",
        positional="PyTorch's normal_(w, x) reads x as the mean: name it, e.g. std=0.02",
        needs=("a std", "std=0.02"),
    ),
    "uniform": Spelling(
        "uniform",
        "torch.nn.init.uniform_(w, a=0.0, b=1.0) draws U(a, b): a and b are the low and high bounds, NOT "
        "initdiag's half-width A (uniform:a=A is U(-A, A)). uniform_:a=L,b=H is uniform:low=L,high=H; "
        "--init needs both bounds, and uniform_() at its defaults is U(0, 1): every weight positive, "
        "mean 1/2.",
        defaults="uniform:low=0,high=1",
        renames=(("a", "low"), ("b", "high")),
        positional="PyTorch's uniform_(w, x) reads x as the low bound a: name both, e.g. a=-0.05,b=0.05",
        needs=("both bounds", "a=-0.05,b=0.05"),
    ),
    "trunc_normal": Spelling(
        "trunc_normal",
        "torch.nn.init.trunc_normal_(w, mean=0.0, std=1.0, a=-2.0, b=2.0) draws N(mean, std^2) cut at the "
        "ABSOLUTE values a and b, and does not correct the std. initdiag reads trunc_normal_:std=S,a=A,b=B "
        f"as PyTorch does: cut at 2 std (a = mean-2*std, b = mean+2*std) it is trunc_normal:S*{_C} "
        f"exactly; with a and b {NO_CUT:g} or more std away it is normal:S (trunc_normal_(w, std=0.02) "
        "cuts at 100 std, i.e. not at all); any other cut has no initdiag equivalent and is refused. At "
        f"its defaults (std 1, cut at 2 std) it is trunc_normal:{fmt_number(TRUNCATED_NORMAL_STD)}: "
        "std 0.88, not 1.",
        defaults=f"trunc_normal:{fmt_number(TRUNCATED_NORMAL_STD)}",
        positional="PyTorch's trunc_normal_(w, x) reads x as the mean: name it, e.g. std=0.02",
        needs=("a std", "std=0.02"),
        convert="torch_trunc",
    ),
    "xavier_uniform": Spelling(
        "xavier_uniform",
        _same(
            "torch.nn.init.xavier_uniform_(w, gain=1.0)",
            "xavier_uniform",
            "the same U(-a, a), a = gain*sqrt(6/(fan_in+fan_out)).",
        ),
    ),
    "xavier_normal": Spelling(
        "xavier_normal",
        _same(
            "torch.nn.init.xavier_normal_(w, gain=1.0)",
            "xavier_normal",
            "the same untruncated normal, std = gain*sqrt(2/(fan_in+fan_out)).",
        ),
    ),
    "kaiming_normal": Spelling(
        "he_normal",
        'torch.nn.init.kaiming_normal_(w, a=0, mode="fan_in", nonlinearity="leaky_relu") is initdiag\'s '
        "he_normal: the same untruncated N(0, 2/fan_in) at the defaults (leaky_relu with a=0 has relu's "
        "gain sqrt(2)). kaiming_normal_:a=A,nonlinearity=NAME sets the gain as PyTorch's "
        "calculate_gain(nonlinearity, a).",
        positional="PyTorch's kaiming_normal_(w, x) reads x as the leaky_relu slope a: name it, e.g. a=0.2",
        convert="torch_kaiming",
    ),
    "kaiming_uniform": Spelling(
        "he_uniform",
        'torch.nn.init.kaiming_uniform_(w, a=0, mode="fan_in", nonlinearity="leaky_relu") is initdiag\'s '
        "he_uniform: U(-sqrt(6/fan_in), sqrt(6/fan_in)) at the defaults; a= and nonlinearity= set the gain "
        "as PyTorch's calculate_gain(nonlinearity, a). It is NOT nn.Linear's default, which calls it with "
        "a=sqrt(5): that is torch_default (kaiming_uniform_:a=2.23606797749979 gives its weights).",
        positional="PyTorch's kaiming_uniform_(w, x) reads x as the leaky_relu slope a: name it, e.g. a=0.2",
        convert="torch_kaiming",
    ),
    "orthogonal": Spelling(
        "orthogonal",
        _same(
            "torch.nn.init.orthogonal_(w, gain=1)",
            "orthogonal",
            "the same QR with the sign fix; conv weights are flattened to (out_ch, in_ch*kh*kw) in both.",
        ),
    ),
}

_KERAS_GLOROT_UNIFORM = Spelling(
    "xavier_uniform",
    _same(
        'keras.initializers.GlorotUniform() ("glorot_uniform", Keras\'s default kernel initializer)',
        "xavier_uniform",
        "the same U(-a, a), a = sqrt(6/(fan_in+fan_out)).",
    ),
)
_KERAS_NORMAL = Spelling(
    "normal",
    'keras.initializers.RandomNormal(mean=0.0, stddev=0.05) (also the string "normal") draws '
    "N(mean, stddev^2), untruncated: initdiag's normal:std=S,mean=M, and normal:0.05 at Keras's "
    "defaults. --init needs the std (RandomNormal:stddev=0.05); a positional value would be Keras's "
    "mean, so it is refused.",
    defaults="normal:0.05",
    renames=(("stddev", "std"),),
    positional="Keras's RandomNormal(x) reads x as the mean: name it, e.g. stddev=0.05",
    needs=_NEEDS_STD,
)
_KERAS_UNIFORM = Spelling(
    "uniform",
    'keras.initializers.RandomUniform(minval=-0.05, maxval=0.05) (also the string "uniform") draws '
    "U(minval, maxval): initdiag's uniform:low=L,high=H, and uniform:0.05 at Keras's defaults. --init "
    "needs both bounds (RandomUniform:minval=-0.05,maxval=0.05); a positional value would be Keras's "
    "minval, so it is refused.",
    defaults="uniform:0.05",
    renames=(("minval", "low"), ("maxval", "high")),
    positional="Keras's RandomUniform(x) reads x as minval: name both, e.g. minval=-0.05,maxval=0.05",
    needs=("both bounds", "minval=-0.05,maxval=0.05"),
)
_KERAS_IDENTITY = Spelling(
    "identity",
    _same("keras.initializers.Identity(gain=1.0)", "identity:gain=G", "gain times the 2-D identity."),
)
_KERAS_ORTHOGONAL = Spelling(
    "orthogonal",
    _same(
        "keras.initializers.Orthogonal(gain=1.0)",
        "orthogonal",
        "the same gain and QR sign fix; Keras flattens conv kernels to (kh*kw*in_ch, out_ch), initdiag "
        "like PyTorch to (out_ch, in_ch*kh*kw).",
    ),
)

_KERAS: dict[str, Spelling] = {
    "zeros": Spelling("zeros", _same('keras.initializers.Zeros() (the string "zeros" or "zero")', "zeros")),
    "ones": Spelling("ones", _same('keras.initializers.Ones() (the string "ones" or "one")', "ones")),
    "constant": Spelling(
        "constant",
        "keras.initializers.Constant(value=0.0) sets every entry to value: initdiag's constant:V. Keras's "
        "default value is 0.0 (zeros); here the value is required.",
        defaults="constant:0",
        needs=("a value", "value=0.5"),
    ),
    "identity": _KERAS_IDENTITY,
    "identity_initializer": _KERAS_IDENTITY,
    "random_normal": _KERAS_NORMAL,
    "normal": _KERAS_NORMAL,
    "random_uniform": _KERAS_UNIFORM,
    "uniform": _KERAS_UNIFORM,
    "truncated_normal": Spelling(
        "trunc_normal",
        "keras.initializers.TruncatedNormal(mean=0.0, stddev=0.05) draws N(mean, stddev^2) cut at 2 stddev "
        f"and does NOT correct the std, so its draws have std {_C}*stddev. initdiag's trunc_normal:S keeps "
        f"the std S, so TruncatedNormal:stddev=S is trunc_normal:S*{_C}, and "
        f"trunc_normal:{fmt_number(0.05 * TRUNCATED_NORMAL_STD)} at Keras's defaults. --init needs the "
        "stddev; a positional value would be Keras's mean, so it is refused.",
        defaults=f"trunc_normal:{fmt_number(0.05 * TRUNCATED_NORMAL_STD)}",
        renames=(("stddev", "std"),),
        positional="Keras's TruncatedNormal(x) reads x as the mean: name it, e.g. stddev=0.05",
        needs=_NEEDS_STD,
        convert="keras_trunc",
    ),
    "variance_scaling": Spelling(
        "variance_scaling",
        'keras.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="truncated_normal") is '
        'initdiag\'s variance_scaling, with the same defaults. Keras reads distribution="normal" as '
        'truncated_normal and calls the plain normal "untruncated_normal"; this name reads them as Keras '
        "does (initdiag's own variance_scaling:distribution=normal is the plain normal).",
        convert="keras_variance_scaling",
    ),
    "glorot_uniform": _KERAS_GLOROT_UNIFORM,
    "glorot_normal": Spelling(
        "xavier_normal",
        _truncated_note(
            "keras.initializers.GlorotNormal()", "2/(fan_in+fan_out)", "xavier_normal", "xavier_normal_"
        ),
        implied=_TRUNC,
    ),
    "he_normal": Spelling(
        "he_normal",
        _truncated_note("keras.initializers.HeNormal()", "2/fan_in", "he_normal", "kaiming_normal_"),
        implied=_TRUNC,
    ),
    "he_uniform": Spelling(
        "he_uniform",
        _same("keras.initializers.HeUniform()", "he_uniform", "the same U(-sqrt(6/fan_in), sqrt(6/fan_in))."),
    ),
    "lecun_normal": Spelling(
        "lecun_normal",
        _truncated_note(
            "keras.initializers.LecunNormal()",
            "1/fan_in",
            "lecun_normal",
            'kaiming_normal_(w, nonlinearity="linear")',
        ),
        implied=_TRUNC,
    ),
    "lecun_uniform": Spelling(
        "lecun_uniform",
        _same(
            "keras.initializers.LecunUniform()",
            "lecun_uniform",
            "the same U(-sqrt(3/fan_in), sqrt(3/fan_in)).",
        ),
    ),
    "orthogonal": _KERAS_ORTHOGONAL,
    "orthogonal_initializer": _KERAS_ORTHOGONAL,
}
_KERAS["zero"], _KERAS["one"] = _KERAS["zeros"], _KERAS["ones"]

# Keras's classes, which a bare CamelCase name is read as (RandomNormal, HeNormal, ...)
KERAS_CLASSES: tuple[str, ...] = (
    "Zeros",
    "Ones",
    "Constant",
    "Identity",
    "IdentityInitializer",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "HeNormal",
    "HeUniform",
    "LecunNormal",
    "LecunUniform",
    "Orthogonal",
    "OrthogonalInitializer",
)

_JAX_UNIFORM_DEFAULT = "uniform:low=0,high=0.01"
_JAX_TRUNC_DEFAULT = f"trunc_normal:{fmt_number(0.01 * TRUNCATED_NORMAL_STD)}"


def _jax_truncated(alias: str, ours: str, variance: str, torch: str) -> Spelling:
    return Spelling(
        ours, _truncated_note(f"jax.nn.initializers.{alias}()", variance, ours, torch), implied=_TRUNC
    )


_JAX: dict[str, Spelling] = {
    "zeros": Spelling("zeros", _same("jax.nn.initializers.zeros (Flax: zeros_init())", "zeros")),
    "ones": Spelling("ones", _same("jax.nn.initializers.ones (Flax: ones_init())", "ones")),
    "constant": Spelling("constant", _same("jax.nn.initializers.constant(value)", "constant:V")),
    "normal": Spelling(
        "normal",
        "jax.nn.initializers.normal(stddev=0.01) draws N(0, stddev^2), untruncated: initdiag's normal:S, "
        "and normal:0.01 at JAX's default. --init needs the stddev.",
        defaults="normal:0.01",
        renames=(("stddev", "std"),),
        needs=("a std", "0.01"),
    ),
    "uniform": Spelling(
        "uniform",
        "jax.nn.initializers.uniform(scale=0.01) draws U(0, scale): NOT symmetric, every weight positive "
        "with mean scale/2. It resolves to uniform:low=0,high=S (uniform:low=0,high=0.01 at JAX's default), "
        "not initdiag's uniform:S, which is U(-S, S). --init needs the scale.",
        defaults=_JAX_UNIFORM_DEFAULT,
        needs=("the scale", "0.01"),
        convert="jax_uniform",
    ),
    "truncated_normal": Spelling(
        "trunc_normal",
        "jax.nn.initializers.truncated_normal(stddev=0.01, lower=-2.0, upper=2.0) draws N(0, stddev^2) cut "
        f"at lower and upper IN UNITS OF stddev, without correcting the std (std {_C}*stddev at the default "
        "cut). initdiag reads truncated_normal:stddev=S,lower=L,upper=U as JAX does: at the default cut it "
        f"is trunc_normal:S*{_C} ({_JAX_TRUNC_DEFAULT} at JAX's default stddev); with the cut {NO_CUT:g} or "
        "more std away it is normal:S; any other cut has no initdiag equivalent and is refused. --init "
        "needs the stddev.",
        defaults=_JAX_TRUNC_DEFAULT,
        renames=(("stddev", "std"),),
        needs=("a std", "0.01"),
        convert="jax_trunc",
    ),
    "variance_scaling": Spelling(
        "variance_scaling",
        "jax.nn.initializers.variance_scaling(scale, mode, distribution) is initdiag's variance_scaling, "
        'with the same three distributions (its "normal" is the plain normal, as here). JAX has no '
        "defaults; initdiag's are Keras's: scale 1, fan_in, truncated_normal.",
    ),
    "glorot_uniform": Spelling(
        "xavier_uniform",
        _same("jax.nn.initializers.glorot_uniform() (alias xavier_uniform)", "xavier_uniform"),
    ),
    "glorot_normal": _jax_truncated("glorot_normal", "xavier_normal", "2/(fan_in+fan_out)", "xavier_normal_"),
    "he_normal": _jax_truncated("he_normal", "he_normal", "2/fan_in", "kaiming_normal_"),
    "he_uniform": Spelling(
        "he_uniform", _same("jax.nn.initializers.he_uniform() (alias kaiming_uniform)", "he_uniform")
    ),
    "lecun_normal": Spelling(
        "lecun_normal",
        _truncated_note(
            "jax.nn.initializers.lecun_normal() (Flax's default kernel init)",
            "1/fan_in",
            "lecun_normal",
            'kaiming_normal_(w, nonlinearity="linear")',
        ),
        implied=_TRUNC,
    ),
    "lecun_uniform": Spelling("lecun_uniform", _same("jax.nn.initializers.lecun_uniform()", "lecun_uniform")),
    "orthogonal": Spelling(
        "orthogonal",
        _same(
            "jax.nn.initializers.orthogonal(scale=1.0)",
            "orthogonal",
            "JAX's scale is the gain (orthogonal:scale=G is orthogonal:gain=G).",
        ),
        renames=(("scale", "gain"),),
    ),
}
_JAX["xavier_uniform"] = _JAX["glorot_uniform"]
_JAX["xavier_normal"] = _jax_truncated(
    "xavier_normal", "xavier_normal", "2/(fan_in+fan_out)", "xavier_normal_"
)
_JAX["kaiming_normal"] = _jax_truncated("kaiming_normal", "he_normal", "2/fan_in", "kaiming_normal_")
_JAX["kaiming_uniform"] = _JAX["he_uniform"]
_JAX["zeros_init"], _JAX["ones_init"] = _JAX["zeros"], _JAX["ones"]  # Flax's factories

SPELLINGS: dict[str, dict[str, Spelling]] = {PYTORCH: _TORCH, KERAS: _KERAS, JAX: _JAX}

# framework names initdiag has no equivalent for: (framework, name) -> what it is
UNSUPPORTED: dict[tuple[str, str], str] = {
    (PYTORCH, "dirac"): (
        "PyTorch's dirac_ puts a delta at the centre of each conv kernel (the identity for convolutions); "
        "identity covers 2-D weights"
    ),
    (PYTORCH, "sparse"): "PyTorch's sparse_ (Martens 2010) zeroes a share of each column and draws the rest",
    (JAX, "delta_orthogonal"): (
        "JAX's delta_orthogonal puts an orthogonal matrix at the centre tap of a conv kernel; orthogonal "
        "flattens conv kernels instead"
    ),
    (KERAS, "stft_initializer"): "Keras's STFTInitializer makes fixed Fourier kernels",
}


# --- resolution ------------------------------------------------------------------------------------


class Resolution(NamedTuple):
    """A name as typed, read: initdiag's canonical name, and the framework whose name it is."""

    text: str  # the name as typed (arguments after ':' cut off)
    display: str  # the bare name for messages: 'HeNormal', 'kaiming_normal_', 'he'
    name: str  # the canonical initdiag name
    framework: str | None = None  # PyTorch, Keras, JAX; None for initdiag's own names and aliases
    spelling: Spelling | None = None

    @property
    def resolves_to(self) -> str:
        """The framework's call at its own defaults (or initdiag's name) as an --init string."""
        return self.spelling.resolves_to if self.spelling else self.name

    @property
    def note(self) -> str | None:
        return self.spelling.note if self.spelling else None


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_MODULES = (
    "PyTorch's torch.nn.init (nn.init, init), Keras's keras.initializers (tf.keras.initializers) and "
    "JAX's jax.nn.initializers (flax.linen.initializers, nn.initializers)"
)


def snake_case(name: str) -> str:
    """``HeNormal`` -> ``he_normal``, ``STFTInitializer`` -> ``stft_initializer``; ``HE`` -> ``he``."""
    return _CAMEL.sub("_", name).lower()


def _framework_of(module: str, bare: str) -> str | None:
    """The framework a module path names (``torch.nn.init``, ``tf.keras.initializers``, ...)."""
    parts = module.lower().split(".")
    if parts[-1] == "init" or "torch" in parts:
        return PYTORCH
    if parts[-1] != "initializers":
        return None
    others = set(parts[:-1])
    if "keras" in others or others & {"tf", "tensorflow"}:
        return KERAS
    if others & {"jax", "flax", "linen", "nnx"}:
        return JAX
    if others <= {"nn"}:  # a bare initializers. or Flax's nn.initializers: a class name is Keras's
        return KERAS if bare[:1].isupper() and not others else JAX
    return None


def _split(text: str) -> tuple[str, str]:
    """``tf.keras.initializers.HeNormal()`` -> (``tf.keras.initializers``, ``HeNormal``)."""
    name = re.sub(r"\(\s*\)$", "", text.strip()).strip()
    if "(" in name or ")" in name:
        raise InitdiagError(
            f"'{text}': arguments go after ':' (NAME:key=value, e.g. kaiming_normal_:mode=fan_out), "
            "not in parentheses"
        )
    module, _, bare = name.rpartition(".")
    return module, bare


def _suggest(key: str, choices: Iterable[str]) -> str | None:
    import difflib  # only on the error path

    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown(
    text: str, framework: str, key: str, module: str, bare: str, names: Iterable[str]
) -> InitdiagError:
    spelled = text.strip()
    if (framework, key) in UNSUPPORTED:
        return InitdiagError(
            f"initializer '{spelled}' has no initdiag equivalent: {UNSUPPORTED[framework, key]}"
        )
    table = SPELLINGS[framework]
    prefix = f"{module}." if module else ""
    hint = ""
    match = _suggest(key, table)
    if key in names or key in ALIASES:
        hint = f"; initdiag's own is '{key}'"
    elif match is not None:
        if framework == PYTORCH:
            spelling = match + "_"
        elif bare[:1].isupper():
            spelling = next((c for c in KERAS_CLASSES if snake_case(c) == match), match)
        else:
            spelling = match
        hint = f"; did you mean '{prefix}{spelling}'?"
    return InitdiagError(f"unknown initializer '{spelled}': {framework} has no '{bare}'{hint}")


def resolve(text: str, names: Iterable[str]) -> Resolution:
    """Read an initializer name as typed (no ``:ARGS``): initdiag's own names and aliases,
    case-insensitively, and the frameworks' names, with their module path, a trailing ``_`` or ``()``
    and CamelCase: ``torch.nn.init.kaiming_normal_``, ``nn.init.orthogonal_``,
    ``tf.keras.initializers.HeNormal``, ``HeNormal()``, ``jax.nn.initializers.lecun_normal``,
    ``initializers.he_uniform``. *names* are the canonical names.

    Rules: a module path names the framework (``...init`` PyTorch; ``...initializers`` with keras/tf
    Keras, with jax/flax JAX; a bare ``initializers.`` is Keras for a class name, else JAX/Flax); a
    trailing ``_`` marks PyTorch's name and a Keras class name (``HeNormal``) Keras's. A name without
    any of these is initdiag's own, so ``he_normal`` stays untruncated while ``HeNormal`` is Keras's
    truncated one. An unknown name raises `InitdiagError` with a did-you-mean."""
    names = tuple(names)
    module, bare = _split(text)
    if not bare:
        raise InitdiagError(f"empty initializer name in '{text.strip()}'")
    framework = None
    if module:
        framework = _framework_of(module, bare)
        if framework is None:
            raise InitdiagError(
                f"unknown initializer '{text.strip()}': initdiag reads the names of {_MODULES}"
            )
    torch_style = bare.endswith("_")
    key = snake_case(bare.rstrip("_")) if bare[:1].isupper() else bare.rstrip("_").lower()
    if framework is None and torch_style and key in _TORCH:
        framework = PYTORCH
    if framework is None and bare in KERAS_CLASSES:
        framework = KERAS
    if framework is not None:
        if key in SPELLINGS[framework]:
            return Resolution(
                text.strip(), bare, SPELLINGS[framework][key].name, framework, SPELLINGS[framework][key]
            )
        raise _unknown(text, framework, key, module, bare, names)
    canonical = ALIASES.get(key, key)
    if canonical in names:
        return Resolution(text.strip(), key, canonical)
    for framework, table in ((KERAS, _KERAS), (JAX, _JAX)):  # random_normal, zeros_init, ...
        if key in table:
            return Resolution(text.strip(), bare, table[key].name, framework, table[key])
    for (_, name), what in UNSUPPORTED.items():
        if key == name:
            raise InitdiagError(f"initializer '{text.strip()}' has no initdiag equivalent: {what}")
    error = unknown_name("initializer", key, names + tuple(ALIASES))  # suggested for the snake_case key
    raise InitdiagError(str(error).replace(f"'{key}'", f"'{text.strip()}'", 1))
