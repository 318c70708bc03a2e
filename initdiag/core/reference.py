"""A reference card for every initializer: what it draws, how PyTorch, Keras and JAX spell it, and the
traps people hit with it (for ``initdiag inits`` and ``initdiag explain NAME``).

Numpy-free and fast to import: the data are plain strings, and `ALIASES` comes from
`initdiag.names`, as the samplers' does. A test keeps `ENTRIES` and ``INITIALIZER_NAMES`` equal and
checks each entry's ``variance_factor`` against the sampler's own ``variance()``. Facts were
checked against the libraries' sources: ``torch.nn.init`` and ``nn.Linear``/
``nn.Conv2d.reset_parameters`` (PyTorch 2.13), ``keras/src/initializers`` (Keras 3) and
``jax/_src/nn/initializers.py``.

Formulas are ASCII in PyTorch's and NumPy's spellings (``sqrt``, ``^``, ``*``), so they paste
into code; only authors' names leave ASCII.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from ..errors import InitdiagError
from .names import ALIASES, TRUNCATED_NORMAL_STD, Resolution, resolve  # noqa: F401  (re-exported)


class Entry(NamedTuple):
    """One initializer's card. Every field is plain text (``"-"`` where it does not apply)."""

    name: str  # canonical initdiag name
    aliases: tuple[str, ...]  # initdiag aliases that map to it
    syntax: str  # the --init grammar
    formula: str  # variance or range, with the gain form
    distribution: str  # short: table cell
    fan_mode: str  # short: table cell
    gain: str  # short: table cell
    paper: str  # author year and title, or "-"
    torch: str  # the PyTorch spelling
    keras: str  # the Keras 3 spelling
    jax: str  # the jax.nn.initializers spelling
    when: str  # when to use it: one or two sentences
    traps: tuple[str, ...]  # the traps users hit with it
    summary: str  # one line for the table
    # (factor, mode): Var(W) = factor / fan(mode) at the default arguments, or None where the variance
    # is not a fixed multiple of one fan (constants, fixed-std draws, orthogonal, identity, data, files)
    variance_factor: tuple[float, str] | None = None


class GainRow(NamedTuple):
    """One row of ``torch.nn.init.calculate_gain``'s table."""

    nonlinearity: str  # calculate_gain's names, ", "-separated
    formula: str
    value: float


GAIN_TABLE: tuple[GainRow, ...] = (
    GainRow("linear", "1", 1.0),
    GainRow("conv1d, conv2d, conv3d", "1", 1.0),
    GainRow("sigmoid", "1", 1.0),
    GainRow("tanh", "5/3", 5.0 / 3),
    GainRow("relu", "sqrt(2)", math.sqrt(2.0)),
    GainRow(
        "leaky_relu", "sqrt(2/(1 + negative_slope^2)); slope 0.01 by default", math.sqrt(2.0 / (1 + 0.01**2))
    ),
    GainRow("selu", "3/4 (empirical, pytorch#50664)", 3.0 / 4),
)
GAIN_HEADERS = ["nonlinearity", "gain", "value"]

CARD_HEADERS = ["name", "aliases", "distribution", "fan", "gain", "when"]

# --- traps shared by several entries ------------------------------------------------------------

_C = "0.87962566103423978"

_CONV_FAN = (
    "The fan of a conv weight includes the receptive field: fan_in = in_ch*kh*kw and fan_out = "
    "out_ch*kh*kw (PyTorch, Keras and JAX agree), so a 3x3 conv from 64 channels has fan_in 576, not 64."
)
_LAYOUT = (
    "Layouts differ: PyTorch stores nn.Linear weights (out, in) and computes x @ W.T, Keras and JAX store "
    "(in, out) and compute x @ W; initdiag uses (fan_in, fan_out) for dense and PyTorch's "
    "(out, in, kh, kw) for conv. torch.nn.init reads fan_in from dim 1, so calling it on an (in, out) "
    "array swaps fan_in and fan_out: pass w.T."
)
_GAIN_AUTO = (
    "gain=auto follows PyTorch's calculate_gain: tanh 5/3 and selu 3/4 are empirical values, not "
    "variance-preserving derivations; SELU's self-normalizing init is lecun_normal with gain 1 "
    '(nonlinearity="linear" in PyTorch).'
)
_KAIMING_A = (
    "In kaiming_normal_/kaiming_uniform_, a is the leaky_relu negative slope and defaults to 0, so the "
    'default (nonlinearity="leaky_relu", a=0) gain is sqrt(2), relu\'s, not '
    'calculate_gain("leaky_relu") = sqrt(2/(1 + 0.01^2)); a is ignored for every other nonlinearity. '
    "Here the preset gain is sqrt(2) and gain=auto uses the layer's own slope."
)
_NO_FAN_AVG = (
    "PyTorch's kaiming_*_ accept only mode fan_in or fan_out; mode=fan_avg here is xavier's fan with "
    "this gain (xavier_normal_/xavier_uniform_(w, gain=...))."
)
_RELU_HALVES = (
    "Gain 1 is for linear, tanh-like and selu layers: on relu layers of equal width it halves the second "
    "moment of the pre-activations every layer (use he_* or gain=auto, which gives sqrt(2))."
)


_GLOROT = 'Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward neural networks"'
_HE = (
    'He, Zhang, Ren & Sun 2015, "Delving Deep into Rectifiers: Surpassing Human-Level Performance on '
    'ImageNet Classification"'
)


def _truncated(keras: str, jax: str, scale: str) -> str:
    return (
        f"Keras's {keras} and JAX's {jax} are TRUNCATED normals: std sqrt({scale})/{_C} cut at +-2 of "
        f"that std, so the variance is the same {scale} but no weight exceeds 2.2737*sqrt({scale}). "
        "PyTorch's and initdiag's draw is an untruncated normal; distribution=truncated_normal "
        f"reproduces Keras and JAX, and their names (--init {keras}, --init "
        f"jax.nn.initializers.{jax.removesuffix('()')}) resolve to it."
    )


def _preset_syntax(name: str) -> str:
    return f"{name}[:mode=fan_in|fan_out|fan_avg,gain=G|auto,distribution=normal|truncated_normal|uniform]"


# --- the cards ----------------------------------------------------------------------------------

_ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="zeros",
        aliases=(),
        syntax="zeros",
        formula="W = 0 (every entry); Var(W) = 0",
        distribution="constant 0",
        fan_mode="-",
        gain="-",
        paper="-",
        torch="torch.nn.init.zeros_(w)",
        keras='keras.initializers.Zeros() (or "zeros")',
        jax=(
            "jax.nn.initializers.zeros (an initializer itself, no call; "
            "Flax: flax.linen.initializers.zeros_init())"
        ),
        when=(
            "Biases (the default bias here, in Keras and in Flax), and on purpose for a layer whose output "
            "should start at zero, such as the last layer of a residual branch or an output head."
        ),
        traps=(
            "Zero weights in a layer block the gradient to every layer below it (it flows back through "
            "W^T = 0), and all units of the layer compute the same thing; when the layers above are constant "
            "too they also get the same gradient and stay copies. A stack of all-zero layers with relu or "
            "tanh (both map 0 to 0) never trains: only the output bias moves.",
            "PyTorch's nn.Linear and nn.Conv2d biases are NOT zero by default (see torch_default); Keras's "
            "and Flax's are.",
        ),
        summary="biases; never hidden weights",
    ),
    Entry(
        name="ones",
        aliases=(),
        syntax="ones",
        formula="W = 1 (every entry): each unit computes the sum of its inputs; Var(W) = 0",
        distribution="constant 1",
        fan_mode="-",
        gain="-",
        paper="-",
        torch="torch.nn.init.ones_(w)",
        keras='keras.initializers.Ones() (or "ones")',
        jax=(
            "jax.nn.initializers.ones (an initializer itself, no call; "
            "Flax: flax.linen.initializers.ones_init())"
        ),
        when=(
            "Scale parameters (the gamma of batchnorm and layernorm starts at 1) and tests; never the "
            "weights of a dense or conv layer."
        ),
        traps=(
            "Every unit of the layer computes the same function; when the layers above are constant too "
            "they also get the same gradient and stay copies forever (symmetry is never broken).",
            "z is the sum of fan_in inputs: its mean is fan_in times theirs, and for independent zero-mean "
            "inputs its std is sqrt(fan_in) times theirs.",
        ),
        summary="scale parameters; never weights",
    ),
    Entry(
        name="constant",
        aliases=(),
        syntax="constant:V (constant:value=V)",
        formula="W = V (every entry); mean V, Var(W) = 0",
        distribution="constant V",
        fan_mode="-",
        gain="-",
        paper="-",
        torch="torch.nn.init.constant_(w, V)",
        keras="keras.initializers.Constant(V)",
        jax="jax.nn.initializers.constant(V)",
        when=(
            "Biases with a chosen start: a small positive bias (0.01 to 0.1) to keep relu units alive at "
            "the start, a forget-gate bias of 1 in an LSTM, a known output offset. Not for weights."
        ),
        traps=(
            "As weights, every unit of the layer computes the same function (V times the sum of its "
            "inputs); when the layers above are constant too they stay copies forever.",
            "As a bias, V shifts every pre-activation by V: a large positive V on relu layers makes them "
            "nearly linear, a negative one kills units.",
        ),
        summary="biases with a chosen start (e.g. 0.01)",
    ),
    Entry(
        name="normal",
        aliases=(),
        syntax="normal:STD (normal:std=S,mean=M)",
        formula="W ~ N(M, S^2): Var(W) = S^2, mean M (default 0)",
        distribution="normal (untruncated)",
        fan_mode="- (fixed std)",
        gain="-",
        paper="-",
        torch="torch.nn.init.normal_(w, mean=M, std=S) (default std=1.0)",
        keras=(
            'keras.initializers.RandomNormal(mean=M, stddev=S) (default stddev=0.05; the string "normal" '
            "is RandomNormal, untruncated)"
        ),
        jax="jax.nn.initializers.normal(stddev=S) (default stddev=0.01; mean always 0)",
        when=(
            "Small fixed-std weights for embeddings, transformer projections and output heads (std 0.02 in "
            "GPT-2 and BERT), or to reproduce a paper; for hidden layers prefer a fan-based init."
        ),
        traps=(
            "A fixed std ignores the fan: Var(z) = fan_in * S^2 * E[x^2], so std 0.01 in 512-wide relu "
            "layers scales the second moment by 512 * 0.01^2 / 2 = 0.026 per layer and the signal "
            "vanishes within a few layers.",
            "The libraries' defaults differ 100-fold: PyTorch's normal_ std=1.0, Keras's RandomNormal "
            "0.05, JAX's normal 0.01. Always pass the std.",
            'Keras\'s string "normal" is the untruncated RandomNormal, but '
            'VarianceScaling(distribution="normal") is truncated (see variance_scaling).',
        ),
        summary="fixed std, ignores the fans",
    ),
    Entry(
        name="uniform",
        aliases=(),
        syntax="uniform:A (uniform:a=A) or uniform:low=L,high=H",
        formula="W ~ U(-A, A): Var(W) = A^2/3; U(L, H): Var(W) = (H-L)^2/12, mean (L+H)/2",
        distribution="uniform",
        fan_mode="- (fixed range)",
        gain="-",
        paper="-",
        torch="torch.nn.init.uniform_(w, -A, A) (the default a=0, b=1 is U(0, 1), not symmetric)",
        keras=(
            "keras.initializers.RandomUniform(minval=-A, maxval=A) (default -0.05, 0.05; the string "
            '"uniform" is RandomUniform)'
        ),
        jax=(
            "no symmetric built-in: jax.nn.initializers.uniform(scale) samples [0, scale); use "
            "lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -A, A)"
        ),
        when=(
            "Fixed-range weights for embeddings (Keras's Embedding uses U(-0.05, 0.05)) or small models, "
            "or to reproduce old code; for hidden layers prefer a fan-based init."
        ),
        traps=(
            "JAX's jax.nn.initializers.uniform(scale) samples [0, scale), not (-scale, scale): every weight "
            "is positive and the mean is scale/2.",
            "PyTorch's uniform_(w) without bounds is U(0, 1): mean 0.5, every weight positive.",
            "A is the bound, not the std: U(-A, A) has std A/sqrt(3) = 0.577*A, so normal:S corresponds to "
            "uniform:A with A = sqrt(3)*S.",
            "A fixed range ignores the fan: Var(z) = fan_in * A^2/3 * E[x^2] grows with the width.",
        ),
        summary="fixed range U(-A, A), ignores the fans",
    ),
    Entry(
        name="trunc_normal",
        aliases=(),
        syntax="trunc_normal:STD (trunc_normal:std=S,mean=M)",
        formula=(f"W = M + (S/{_C})*t, t ~ N(0, 1) cut to (-2, 2): Var(W) = S^2 exactly, |W - M| < 2.2737*S"),
        distribution="normal cut at +-2 std, variance-corrected",
        fan_mode="- (fixed std)",
        gain="-",
        paper="-",
        torch=(
            f"torch.nn.init.trunc_normal_(w, mean=M, std=s, a=M-2*s, b=M+2*s) with s = S/{_C} "
            "(a and b are absolute values)"
        ),
        keras=f"keras.initializers.TruncatedNormal(mean=M, stddev=S/{_C}) (it does not correct the std)",
        jax=f"jax.nn.initializers.truncated_normal(stddev=S/{_C}) (it does not correct the std; mean 0 only)",
        when=(
            "Fixed-std weights without outliers, as in ViT- and BERT-style transformers (std 0.02); here "
            "the std you give is the std you get."
        ),
        traps=(
            "PyTorch's trunc_normal_(w, mean=0, std=1, a=-2, b=2): the bounds a and b are absolute values "
            "(default -2 and 2), NOT multiples of std. trunc_normal_(w, std=0.02) cuts at +-2 = 100 std, "
            "i.e. not at all, and trunc_normal_(w, std=1) has std 0.88, not 1.",
            "Keras's TruncatedNormal(stddev=S) and JAX's truncated_normal(stddev=S) cut at 2 std (relative) "
            "but do not correct the std: their draws have std 0.8796*S. Only their variance-scaling "
            f"initializers (HeNormal, lecun_normal, ...) divide by {_C}.",
            "So initdiag's trunc_normal:S (std exactly S) equals none of the three libraries' plain "
            f"truncated normals called with S: pass S/{_C} as above.",
        ),
        summary="fixed std without outliers (std 0.02)",
    ),
    Entry(
        name="variance_scaling",
        aliases=(),
        syntax=(
            "variance_scaling[:scale=S,mode=fan_in|fan_out|fan_avg,"
            "distribution=truncated_normal|normal|uniform,gain=G|auto] (a positional value is the scale)"
        ),
        formula=(
            "Var(W) = 1/fan_in at the defaults; in general Var(W) = scale*gain^2/fan_mode, drawn as "
            "normal: N(0, var); uniform: U(-sqrt(3*var), sqrt(3*var)); truncated_normal: std "
            f"sqrt(var)/{_C} cut at +-2 of that std"
        ),
        distribution="truncated_normal (or normal, uniform)",
        fan_mode="fan_in (mode=fan_out|fan_avg)",
        gain="1 (gain=G|auto)",
        paper="- (the family of LeCun et al. 1998, Glorot & Bengio 2010, He et al. 2015)",
        torch=(
            "no single function; with var = scale*gain^2/fan: normal_(w, std=sqrt(var)); "
            "uniform_(w, -L, L) with L = sqrt(3*var); "
            f"trunc_normal_(w, std=s, a=-2*s, b=2*s) with s = sqrt(var)/{_C}"
        ),
        keras=(
            'keras.initializers.VarianceScaling(scale=S, mode="fan_in", distribution="truncated_normal") '
            '(those are its defaults; "untruncated_normal" is the plain normal)'
        ),
        jax=(
            'jax.nn.initializers.variance_scaling(S, "fan_in", "truncated_normal") (no defaults; its '
            '"normal" is the plain normal)'
        ),
        when=(
            "Any member of the family with every knob explicit: scale=2 for relu, mode=fan_out to preserve "
            "the backward pass, a distribution that matches another library; the defaults are Keras's "
            "VarianceScaling() and JAX's lecun_normal()."
        ),
        traps=(
            'The distribution names differ: Keras\'s VarianceScaling(distribution="normal") is TRUNCATED '
            '(Keras maps "normal" to "truncated_normal") and its plain normal is "untruncated_normal"; '
            "JAX's \"normal\" and initdiag's normal are the plain normal.",
            "Keras and JAX have no gain: variance_scaling:scale=S,gain=G is their scale = S*G^2 (He's relu "
            "init is scale=2, i.e. gain sqrt(2)).",
            _CONV_FAN,
            _LAYOUT,
        ),
        summary="the whole family, every knob explicit",
        variance_factor=(1.0, "fan_in"),
    ),
    Entry(
        name="xavier_uniform",
        aliases=(),
        syntax=_preset_syntax("xavier_uniform"),
        formula=(
            "W ~ U(-a, a), a = sqrt(6/(fan_in+fan_out)): Var(W) = 2/(fan_in+fan_out); with a gain "
            "a = gain*sqrt(6/(fan_in+fan_out))"
        ),
        distribution="uniform",
        fan_mode="fan_avg (mode=fan_in|fan_out)",
        gain="1 (gain=G|auto)",
        paper=_GLOROT,
        torch=(
            'torch.nn.init.xavier_uniform_(w) (gain=1; xavier_uniform_(w, gain=calculate_gain("tanh")) '
            "for tanh)"
        ),
        keras=(
            'keras.initializers.GlorotUniform() ("glorot_uniform", the default kernel_initializer of Dense '
            "and Conv layers)"
        ),
        jax="jax.nn.initializers.glorot_uniform() (alias xavier_uniform)",
        when=(
            "tanh, sigmoid and linear layers, especially when fan_in and fan_out differ a lot (the average "
            "balances the forward and backward passes); Keras's default."
        ),
        traps=(
            _RELU_HALVES,
            _GAIN_AUTO,
            _CONV_FAN,
            "PyTorch's (out, in) and Keras's (in, out) layouts give the same result here: fan_avg is "
            "symmetric in fan_in and fan_out.",
        ),
        summary="tanh/sigmoid/linear; Keras's default",
        variance_factor=(1.0, "fan_avg"),
    ),
    Entry(
        name="xavier_normal",
        aliases=(),
        syntax=_preset_syntax("xavier_normal"),
        formula=(
            "W ~ N(0, 2/(fan_in+fan_out)): Var(W) = 2/(fan_in+fan_out); std = gain*sqrt(2/(fan_in+fan_out))"
        ),
        distribution="normal (untruncated, as PyTorch)",
        fan_mode="fan_avg (mode=fan_in|fan_out)",
        gain="1 (gain=G|auto)",
        paper=_GLOROT,
        torch=(
            'torch.nn.init.xavier_normal_(w) (gain=1; xavier_normal_(w, gain=calculate_gain("tanh")) '
            "for tanh)"
        ),
        keras="keras.initializers.GlorotNormal() -- a TRUNCATED normal with the same variance",
        jax="jax.nn.initializers.glorot_normal() (alias xavier_normal) -- a TRUNCATED normal, same variance",
        when=(
            "tanh, sigmoid and linear layers, like xavier_uniform, when you want a normal draw (PyTorch's "
            "xavier_normal_)."
        ),
        traps=(
            _truncated("GlorotNormal", "glorot_normal()", "2/(fan_in+fan_out)"),
            _RELU_HALVES,
            _GAIN_AUTO,
            _CONV_FAN,
        ),
        summary="tanh/sigmoid/linear, normal draw",
        variance_factor=(1.0, "fan_avg"),
    ),
    Entry(
        name="he_normal",
        aliases=(),
        syntax=_preset_syntax("he_normal"),
        formula="W ~ N(0, 2/fan_in): Var(W) = 2/fan_in; std = gain/sqrt(fan_mode) with gain = sqrt(2)",
        distribution="normal (untruncated, as PyTorch)",
        fan_mode="fan_in (mode=fan_out|fan_avg)",
        gain="sqrt(2) (gain=G|auto)",
        paper=_HE,
        torch=(
            'torch.nn.init.kaiming_normal_(w, nonlinearity="relu") '
            "(the default, leaky_relu with a=0, is the same)"
        ),
        keras="keras.initializers.HeNormal() -- a TRUNCATED normal with the same variance",
        jax="jax.nn.initializers.he_normal() (alias kaiming_normal) -- a TRUNCATED normal, same variance",
        when=(
            "relu and leaky_relu layers, which He et al. derived it for; mode=fan_out preserves the "
            "backward pass instead (torchvision's ResNets use it for their convs)."
        ),
        traps=(
            _truncated("HeNormal", "he_normal()", "2/fan_in"),
            _KAIMING_A,
            _GAIN_AUTO,
            _NO_FAN_AVG,
            _CONV_FAN,
            _LAYOUT,
        ),
        summary="relu/leaky_relu (kaiming_normal_)",
        variance_factor=(2.0, "fan_in"),
    ),
    Entry(
        name="he_uniform",
        aliases=(),
        syntax=_preset_syntax("he_uniform"),
        formula=(
            "W ~ U(-a, a), a = sqrt(6/fan_in): Var(W) = 2/fan_in; a = gain*sqrt(3/fan_mode) with "
            "gain = sqrt(2)"
        ),
        distribution="uniform",
        fan_mode="fan_in (mode=fan_out|fan_avg)",
        gain="sqrt(2) (gain=G|auto)",
        paper=_HE,
        torch=(
            'torch.nn.init.kaiming_uniform_(w, nonlinearity="relu") '
            "(the default, leaky_relu with a=0, is the same)"
        ),
        keras="keras.initializers.HeUniform() (same distribution: a uniform needs no truncation)",
        jax="jax.nn.initializers.he_uniform() (alias kaiming_uniform)",
        when="relu and leaky_relu layers, like he_normal, with bounded weights.",
        traps=(
            "nn.Linear and nn.Conv2d call kaiming_uniform_ too, but with a=sqrt(5): gain sqrt(1/3), "
            "U(-1/sqrt(fan_in), 1/sqrt(fan_in)), a sixth of this variance (see torch_default).",
            _KAIMING_A,
            _GAIN_AUTO,
            _NO_FAN_AVG,
            _CONV_FAN,
            _LAYOUT,
        ),
        summary="relu/leaky_relu, uniform draw",
        variance_factor=(2.0, "fan_in"),
    ),
    Entry(
        name="lecun_normal",
        aliases=(),
        syntax=_preset_syntax("lecun_normal"),
        formula="W ~ N(0, 1/fan_in): Var(W) = 1/fan_in; std = gain/sqrt(fan_mode) with gain = 1",
        distribution="normal (untruncated, as PyTorch)",
        fan_mode="fan_in (mode=fan_out|fan_avg)",
        gain="1 (gain=G|auto)",
        paper=(
            'LeCun, Bottou, Orr & Müller 1998, "Efficient BackProp"; for SELU: Klambauer, Unterthiner, '
            'Mayr & Hochreiter 2017, "Self-Normalizing Neural Networks"'
        ),
        torch=(
            'torch.nn.init.kaiming_normal_(w, nonlinearity="linear") (there is no lecun_normal_; NOT '
            'nonlinearity="selu", which gives gain 3/4)'
        ),
        keras="keras.initializers.LecunNormal() -- a TRUNCATED normal with the same variance",
        jax="jax.nn.initializers.lecun_normal() -- a TRUNCATED normal, same variance (Flax's default)",
        when=(
            "SELU networks (the self-normalizing fixed point needs Var(W) = 1/fan_in), linear layers and "
            "tanh-like activations; Flax's default, truncated."
        ),
        traps=(
            'For SELU use lecun_normal with gain 1: PyTorch\'s calculate_gain("selu") = 3/4 is empirical '
            "(pytorch#50664) and gives up self-normalization, and so does gain=auto on a selu layer here.",
            _truncated("LecunNormal", "lecun_normal()", "1/fan_in"),
            _CONV_FAN,
            _LAYOUT,
        ),
        summary="selu (self-normalizing), linear, tanh",
        variance_factor=(1.0, "fan_in"),
    ),
    Entry(
        name="lecun_uniform",
        aliases=(),
        syntax=_preset_syntax("lecun_uniform"),
        formula=(
            "W ~ U(-a, a), a = sqrt(3/fan_in): Var(W) = 1/fan_in; a = gain*sqrt(3/fan_mode) with gain = 1"
        ),
        distribution="uniform",
        fan_mode="fan_in (mode=fan_out|fan_avg)",
        gain="1 (gain=G|auto)",
        paper='LeCun, Bottou, Orr & Müller 1998, "Efficient BackProp"',
        torch='torch.nn.init.kaiming_uniform_(w, nonlinearity="linear") (there is no lecun_uniform_)',
        keras="keras.initializers.LecunUniform()",
        jax="jax.nn.initializers.lecun_uniform()",
        when="selu, linear and tanh-like layers, like lecun_normal, with bounded weights.",
        traps=(
            "Not PyTorch's default: nn.Linear's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) has bound 1/sqrt(fan_in), "
            "not sqrt(3/fan_in), so a third of this variance (see torch_default).",
            _CONV_FAN,
            _LAYOUT,
        ),
        summary="selu/linear/tanh, uniform draw",
        variance_factor=(1.0, "fan_in"),
    ),
    Entry(
        name="orthogonal",
        aliases=(),
        syntax="orthogonal[:gain=G|auto] (a positional value is the gain; weights only)",
        formula=(
            "W = gain*Q, Q a Haar-random (semi-)orthogonal matrix: W^T W = gain^2*I if fan_in >= fan_out, "
            "W W^T = gain^2*I otherwise; Var(W) = gain^2/max(fan_in, fan_out) for dense, "
            "gain^2/max(out_ch, in_ch*kh*kw) for conv"
        ),
        distribution="Haar orthogonal, times the gain",
        fan_mode="- (the shape only)",
        gain="1 (gain=G|auto)",
        paper=(
            'Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear dynamics of learning in '
            'deep linear neural networks"'
        ),
        torch="torch.nn.init.orthogonal_(w, gain=G)",
        keras="keras.initializers.Orthogonal(gain=G)",
        jax="jax.nn.initializers.orthogonal(scale=G) (JAX calls the gain scale)",
        when=(
            "Deep linear or tanh nets and recurrent (hidden-to-hidden) weights: all singular values equal "
            "the gain, so a square layer preserves norms exactly, forward and backward. lsuv starts from it."
        ),
        traps=(
            "Orthogonality is a property of the matrix, not of each unit: a layer with fan_in >= fan_out "
            "keeps each unit's variance, but a wide one (fan_out > fan_in) preserves only the norm and "
            "divides each unit's variance by fan_out/fan_in.",
            "Gain 1 preserves the signal through linear layers only: after relu use gain sqrt(2) "
            '(orthogonal:gain=auto; orthogonal_(w, gain=calculate_gain("relu")) in PyTorch).',
            "Conv weights are flattened first: PyTorch (and initdiag) to (out_ch, in_ch*kh*kw), Keras and "
            "JAX to (kh*kw*in_ch, out_ch); either way the out_ch filters are orthogonal when "
            "out_ch <= in_ch*kh*kw. JAX's delta_orthogonal is a different init (an orthogonal center tap).",
            "QR alone is not uniform over orthogonal matrices: all three libraries and initdiag multiply Q "
            "by sign(diag(R)); a hand-written np.linalg.qr(a)[0] is not Haar-distributed.",
        ),
        summary="deep linear/tanh nets, RNN weights",
    ),
    Entry(
        name="identity",
        aliases=(),
        syntax="identity[:gain=G] (a positional value is the gain; 2-D dense weights only)",
        formula="W = gain*I, rectangular: W[i, i] = gain for i < min(fan_in, fan_out), 0 elsewhere",
        distribution="deterministic (rectangular identity)",
        fan_mode="- (2-D weights only)",
        gain="1 (gain=G)",
        paper=(
            'Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified Linear '
            'Units" (identity recurrent weights)'
        ),
        torch="torch.nn.init.eye_(w), then w.mul_(G) (eye_ takes no gain; dirac_ is the conv analogue)",
        keras="keras.initializers.Identity(gain=G) (2-D only)",
        jax="no built-in: lambda key, shape, dtype=jnp.float32: G * jnp.eye(*shape, dtype=dtype)",
        when=(
            "Layers that should start as a pass-through: relu RNNs (IRNN), deep linear nets, adapters "
            "inserted into a trained model; square layers."
        ),
        traps=(
            "Only min(fan_in, fan_out) inputs pass through: in a narrow layer the extra inputs are dropped, "
            "in a wide one the extra units start with all-zero weights, identical to each other.",
            "No randomness: every run starts from the same weights, and with zero biases each layer of a "
            "stack of identity layers just applies its activation to (part of) its input.",
            "The transpose of a rectangular identity is one too, so PyTorch's (out, in) layout gives the "
            "same map.",
        ),
        summary="pass-through start (IRNN, deep linear)",
    ),
    Entry(
        name="torch_default",
        aliases=(),
        syntax="torch_default (no arguments; the bias follows it unless --bias-init is given)",
        formula=(
            "W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): Var(W) = 1/(3*fan_in); it is "
            "kaiming_uniform_(w, a=sqrt(5)): gain sqrt(2/(1+5)) = sqrt(1/3), bound gain*sqrt(3/fan_in)"
        ),
        distribution="uniform, weight and bias",
        fan_mode="fan_in (the weight's, for the bias too)",
        gain="sqrt(1/3) (kaiming, a=sqrt(5))",
        paper=(
            "- (PyTorch's historical 1/sqrt(fan_in) rule, kept for backward compatibility; pytorch#15314, "
            "#57109)"
        ),
        torch=(
            "nn.Linear(...) and nn.Conv2d(...) as constructed: reset_parameters() calls "
            "init.kaiming_uniform_(self.weight, a=math.sqrt(5)) and init.uniform_(self.bias, -b, b) with "
            "b = 1/sqrt(fan_in)"
        ),
        keras=(
            'kernel: keras.initializers.VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform"); '
            "bias: keras.initializers.RandomUniform(-b, b) with b = 1/sqrt(fan_in) computed by hand"
        ),
        jax=(
            'kernel: jax.nn.initializers.variance_scaling(1/3, "fan_in", "uniform"); bias: '
            "lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -b, b), "
            "b = 1/sqrt(fan_in)"
        ),
        when=(
            "To see what an unmodified PyTorch model starts with: fine for shallow nets and when "
            "normalization layers follow, too small for deep relu stacks without them."
        ),
        traps=(
            "PyTorch's nn.Linear/nn.Conv2d default is kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), "
            "1/sqrt(fan_in)) (pytorch#15314): a is the leaky_relu slope, so the gain is sqrt(1/3) and "
            "Var(W) = 1/(3*fan_in), a third of LeCun's and a sixth of He's 2/fan_in; with relu the second "
            "moment falls about 6-fold per layer.",
            "The bias is not zero: b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the same bound as the "
            "weight (the weight's fan_in); initdiag keeps it unless --bias-init is given.",
            _LAYOUT,
            _CONV_FAN,
            "Other modules differ: nn.Embedding draws N(0, 1), and nn.RNN/LSTM/GRU draw every weight and "
            "bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).",
            "In a transformer initdiag gives each weight what its PyTorch module draws: an embedding N(0, 1) "
            "(nn.Embedding), q, k, v xavier_uniform_ on the fused (3d, d) in_proj_weight with a zero bias "
            "and the output projection nn.Linear's rule with a zero bias (nn.MultiheadAttention).",
        ),
        summary="what nn.Linear/nn.Conv2d give you",
        variance_factor=(1.0 / 3.0, "fan_in"),
    ),
    Entry(
        name="keras_default",
        aliases=(),
        syntax="keras_default (no arguments)",
        formula="W ~ U(-a, a), a = sqrt(6/(fan_in+fan_out)): Var(W) = 2/(fan_in+fan_out); b = 0",
        distribution="uniform (glorot_uniform), zero bias",
        fan_mode="fan_avg",
        gain="1",
        paper=_GLOROT,
        torch="torch.nn.init.xavier_uniform_(layer.weight); torch.nn.init.zeros_(layer.bias)",
        keras=(
            "keras.layers.Dense(units) and the Conv layers as constructed: "
            'kernel_initializer="glorot_uniform", bias_initializer="zeros"'
        ),
        jax=(
            "jax.nn.initializers.glorot_uniform() for the kernel, jax.nn.initializers.zeros for the bias "
            "(Flax's own default is flax_default)"
        ),
        when=(
            "To see what an unmodified Keras model starts with: right for tanh and sigmoid, half of He's "
            "variance for relu."
        ),
        traps=(
            "Keras's default ignores the activation: on square relu layers Var(W) = 1/fan, half of He's, so "
            "without normalization the second moment halves every layer.",
            "Keras kernels are (in, out), conv kernels (kh, kw, in_ch, out_ch): the fans are the same as "
            "PyTorch's (out, in) and (out_ch, in_ch, kh, kw), but arrays must be transposed to move "
            "between them.",
            _CONV_FAN,
            "In a transformer initdiag gives each weight what its Keras layer draws: an Embedding "
            "U(-0.05, 0.05), MultiHeadAttention's glorot_uniform on (d, heads, head_dim) kernels, whose "
            "fans count the first axis as a receptive field (Var = 2/(d*(heads + head_dim))).",
        ),
        summary="what Keras's Dense/Conv give you",
        variance_factor=(1.0, "fan_avg"),
    ),
    Entry(
        name="flax_default",
        aliases=(),
        syntax="flax_default (no arguments)",
        formula=(
            f"W = (sqrt(1/fan_in)/{_C})*t, t ~ N(0, 1) cut to (-2, 2): Var(W) = 1/fan_in, "
            "|W| < 2.2737*sqrt(1/fan_in); b = 0"
        ),
        distribution="truncated normal (lecun_normal), zero bias",
        fan_mode="fan_in",
        gain="1",
        paper='LeCun, Bottou, Orr & Müller 1998, "Efficient BackProp"',
        torch=(
            f"s = 1/({_C}*sqrt(fan_in)); torch.nn.init.trunc_normal_(layer.weight, std=s, a=-2*s, b=2*s); "
            "torch.nn.init.zeros_(layer.bias)"
        ),
        keras=(
            'keras.initializers.LecunNormal() for the kernel, "zeros" for the bias (Keras\'s LecunNormal is '
            "the same corrected truncated draw)"
        ),
        jax=(
            "flax.linen.Dense(features), flax.linen.Conv and flax.nnx.Linear as constructed: "
            "kernel_init=jax.nn.initializers.lecun_normal(), bias_init=zeros"
        ),
        when=(
            "To see what an unmodified Flax model starts with: right for selu, linear and tanh-like layers, "
            "half of He's variance for relu."
        ),
        traps=(
            "Truncated, unlike initdiag's lecun_normal (untruncated like PyTorch's): the same variance, but "
            "no weight beyond 2.2737*sqrt(1/fan_in).",
            "Gain 1 on relu layers: without normalization the second moment halves every layer.",
            "Flax kernels are (in, out), conv kernels (kh, kw, in_ch, out_ch): the fans are the same as "
            "PyTorch's layouts, but arrays must be transposed to move between them.",
            "nn.Embed draws variance_scaling(1, fan_in, normal): N(0, 1/d), untruncated; initdiag gives a "
            "transformer's embeddings that.",
        ),
        summary="what Flax's Dense/Conv give you",
        variance_factor=(1.0, "fan_in"),
    ),
    Entry(
        name="gpt2",
        aliases=(),
        syntax="gpt2[:std=S] (default std 0.02; L = the stack's transformer blocks)",
        formula=(
            "every weight and embedding W ~ N(0, std^2), std = 0.02; the two weights per block whose output "
            "adds to the residual stream (attention's output projection, the MLP's second weight) "
            "N(0, (std/sqrt(2L))^2); biases 0"
        ),
        distribution="normal, residual outputs smaller",
        fan_mode="- (fixed std)",
        gain="1/sqrt(2L) on out_proj, mlp_out",
        paper=(
            'Radford et al. 2019, "Language Models are Unsupervised Multitask Learners", sec. 2.3 ("we '
            "scale the weights of residual layers at initialization by a factor of 1/sqrt(N) where N is the "
            'number of residual layers")'
        ),
        torch=(
            "HF GPT2PreTrainedModel._init_weights: module.weight.data.normal_(0.0, 0.02) for nn.Linear, "
            "Conv1D and nn.Embedding, zero biases; then p.data.normal_(0.0, 0.02/math.sqrt(2*n_layer)) for "
            "every c_proj.weight"
        ),
        keras=(
            "keras.initializers.RandomNormal(stddev=0.02) for every kernel and embedding, "
            "RandomNormal(stddev=0.02/math.sqrt(2*L)) for the two residual output kernels (set by hand)"
        ),
        jax=(
            "jax.nn.initializers.normal(0.02), and normal(0.02/math.sqrt(2*L)) for the two residual output "
            "kernels (set by hand)"
        ),
        when=(
            "Pre-LN (GPT-2) decoder stacks: the stream's second moment grows about linearly with depth and "
            "each block adds a small share of it; on a dense or conv stack it is N(0, 0.02^2) for every "
            "weight."
        ),
        traps=(
            "The std is a constant, not a function of the width: at d = 768 it is 0.55x Xavier's "
            "sqrt(1/d); at d = 4096, 1.28x. Larger models often lower it (GPT-NeoX's small_init: "
            "sqrt(2/(5d))).",
            "L counts blocks (nanoGPT: config.n_layer), and N = 2L residual layers: the factor is "
            "1/sqrt(2L), not 1/sqrt(L).",
            "Only c_proj (attention's and the MLP's output) is scaled; q, k, v, the MLP's first weight and "
            "the embeddings keep std 0.02. Per-role overrides ([init] qkv, out_proj, ...) replace a role's "
            "rule.",
        ),
        summary="GPT-2: N(0, 0.02), residual out /sqrt(2L)",
    ),
    Entry(
        name="t_fixup",
        aliases=(),
        syntax="t_fixup (no arguments; N = the stack's blocks, decoder when its attention is causal)",
        formula=(
            "Xavier uniform for every weight; the token embedding N(0, d^-1/2) (std d^-1/2) times "
            "(9N)^(-1/4); "
            "then v, the attention output projection and the MLP's weights times (9N)^(-1/4) in a decoder "
            "(causal attention), 0.67 N^(-1/4) in an encoder; learned positions N(0, d^-1/2); biases 0"
        ),
        distribution="Xavier uniform, branch weights scaled",
        fan_mode="fan_avg",
        gain="decoder (9N)^-1/4, encoder 0.67 N^-1/4",
        paper=(
            'Huang, Perez, Ba & Volkovs 2020, "Improving Transformer Optimization Through Better '
            'Initialization", ICML, sec. 3.3 (Algorithm 1)'
        ),
        torch=(
            "the authors' T-Fixup code: xavier_uniform_ on every weight, nn.init.normal_(emb.weight, 0, "
            "d ** -0.5); then v_proj.weight, out_proj.weight and the fc weights multiplied by "
            "(9 * N) ** -0.25 (decoder) or 0.67 * N ** -0.25 (encoder), emb.weight by (9 * N) ** -0.25"
        ),
        keras="- (no built-in; glorot_uniform scaled by hand as in PyTorch)",
        jax="- (no built-in; glorot_uniform scaled by hand as in PyTorch)",
        when=(
            "Transformers without layer norms (norm = none), trained without warmup: the scaling keeps each "
            "update's effect on the output bounded (the paper's Theorem); with norms, the norms do that job."
        ),
        traps=(
            "Meant for stacks without LayerNorm; with norm = pre or post it is just a small Xavier.",
            "Encoder and decoder constants differ: initdiag reads a causal attention as a decoder.",
            "The token embedding is scaled too ((9N)^(-1/4) in both, as the authors' code does); positions "
            "are not.",
        ),
        summary="T-Fixup: no-norm transformers, N-scaled",
    ),
    Entry(
        name="deepnet",
        aliases=(),
        syntax='deepnet (no arguments; goes with norm = "deepnorm"; N = the stack\'s blocks)',
        formula=(
            "xavier_normal with gain beta = (8N)^(-1/4) for v, the attention output projection and the "
            "MLP's weights; gain 1 for q and k; embeddings, positions and the unembedding N(0, 1/d); "
            "biases 0. DeepNorm's shortcut scale alpha = (2N)^(1/4): x_{l+1} = LN(alpha*x + f(x))"
        ),
        distribution="Xavier normal, branch gain beta",
        fan_mode="fan_avg",
        gain="beta = (8N)^-1/4 (branch)",
        paper=(
            'Wang, Ma, Dong, Huang, Zhang & Wei 2022, "DeepNet: Scaling Transformers to 1,000 Layers", '
            "Table 1 and Figure 2 (encoder-only or decoder-only: alpha = (2N)^(1/4), beta = (8N)^(-1/4))"
        ),
        torch=(
            "torchscale's deepnorm init: nn.init.xavier_normal_(p, gain=beta) for fc1, fc2, v_proj and "
            "out_proj, xavier_normal_(p, gain=1) for q_proj and k_proj; the residual scaled by alpha "
            "before the post-LN"
        ),
        keras=(
            'keras.initializers.VarianceScaling(scale=beta**2, mode="fan_avg", '
            'distribution="untruncated_normal")'
        ),
        jax='jax.nn.initializers.variance_scaling(beta**2, "fan_avg", "normal")',
        when=(
            "Very deep Post-LN stacks (hundreds of blocks): with norm = deepnorm its beta shrinks each "
            "branch while alpha strengthens the shortcut, so the model update stays bounded."
        ),
        traps=(
            "The constants here are the encoder-only / decoder-only ones; an encoder-decoder uses others "
            "(Table 1: alpha = 0.81 (N^4 M)^(1/16), beta = 0.87 (N^4 M)^(-1/16) for the encoder).",
            "alpha belongs to the norm placement (norm = deepnorm, or alpha = ... in a spec), beta to the "
            "init: one without the other is not DeepNet.",
        ),
        summary="DeepNet: Xavier gain (8N)^-1/4, deepnorm",
    ),
    Entry(
        name="small_init_emb",
        aliases=(),
        syntax="small_init_emb[:a=A] (default a = 1e-4)",
        formula=(
            "the token embedding W ~ U(-a, a), a = 1e-4, followed by a LayerNorm; learned positions 0; "
            "every other weight N(0, 0.02^2); biases 0"
        ),
        distribution="uniform tiny embedding, normal 0.02",
        fan_mode="- (fixed)",
        gain="-",
        paper=(
            "Peng 2022, SmallInitEmb (github.com/BlinkDL/SmallInitEmb; RWKV): 'initialize the embedding "
            "with tiny values and add a LayerNorm after it'"
        ),
        torch=(
            "nn.init.uniform_(emb.weight, a=-1e-4, b=1e-4) and an nn.LayerNorm after the embedding; "
            "normal_(0, 0.02) elsewhere (minGPT)"
        ),
        keras="keras.initializers.RandomUniform(-1e-4, 1e-4) for the embedding, RandomNormal(stddev=0.02)",
        jax="jax.nn.initializers.uniform(2e-4) shifted by -1e-4 (it draws U(0, s)); normal(0.02)",
        when=(
            "Pre-LN language models: the embedding moves away from its tiny start quickly, which the author "
            "reports speeds up and stabilises early training."
        ),
        traps=(
            "Without a LayerNorm after the embedding (or a pre-norm first block) the first block sees a "
            "stream of std 6e-5: the LayerNorm is part of the method.",
            "The stream's gradient is then about 1/a times larger than its values; initdiag's backward "
            "gains on the stream are scale-free, so that alone is not called exploding.",
        ),
        summary="tiny U(+-1e-4) embedding, then LayerNorm",
    ),
    Entry(
        name="lsuv",
        aliases=(),
        syntax="lsuv[:tol=0.1,max_iter=10] (a positional value is tol; weights only)",
        formula=(
            "W = orthogonal (gain 1), then for each layer from the input: while |Var(z) - 1| >= tol and "
            "fewer than max_iter passes, W = W/sqrt(Var(z)), z the layer's affine output on the probe batch"
        ),
        distribution="orthogonal, rescaled on data",
        fan_mode="- (data-driven)",
        gain="- (fitted: 1/sqrt(Var(z)))",
        paper='Mishkin & Matas 2015, "All you need is a good init" (ICLR 2016)',
        torch=(
            "no built-in (third-party ports exist); by hand: orthogonal_(w), then layer by layer "
            "w.data /= z.std() on a batch until Var(z) is within tol of 1"
        ),
        keras="no built-in (third-party ports exist)",
        jax="no built-in",
        when=(
            "Deep nets whose activations or blocks no formula covers, when a representative batch is at "
            "hand: it sets each layer's output variance to 1 empirically."
        ),
        traps=(
            "Data-dependent: the scale is fitted to the probe's own input batch, so a small or "
            "unrepresentative batch, or different preprocessing in training, gives other weights; there is "
            "no closed-form Var(W).",
            "It normalizes the forward pass only: the backward gains are whatever the rescaled weights give, "
            "and biases stay as --bias-init sets them (zeros by default).",
            "A layer that has not converged after max_iter passes can still be more than tol away from "
            "unit variance.",
        ),
        summary="data-driven unit variance per layer",
    ),
    Entry(
        name="file",
        aliases=(),
        syntax="file:PATH.npz (arrays named after the layers: dense1 or dense1.weight, optional dense1.bias)",
        formula="W = the stored array (no randomness); its variance is its own",
        distribution="your arrays",
        fan_mode="-",
        gain="-",
        paper="-",
        torch=(
            'np.savez("w.npz", **{"dense1.weight": lin.weight.detach().numpy().T, '
            '"dense1.bias": lin.bias.detach().numpy()}); conv weights (out, in, kh, kw) as they are'
        ),
        keras=(
            "kernel, bias = layer.get_weights(): dense kernels (in, out) as they are, conv kernels "
            "(kh, kw, in, out) as kernel.transpose(3, 2, 0, 1)"
        ),
        jax=(
            'params["Dense_0"]["kernel"]: (in, out) as it is; Flax conv kernels (kh, kw, in, out) as '
            "kernel.transpose(3, 2, 0, 1)"
        ),
        when="Probing pretrained or hand-made weights, or another library's draw, weight for weight.",
        traps=(
            "PyTorch stores nn.Linear weights (out, in); initdiag's dense weights are (in, out) like Keras's "
            "and JAX's: save W.T. A transposed square matrix has the right shape and loads silently.",
            "Conv weights use PyTorch's (out_ch, in_ch, kh, kw); Keras's and Flax's (kh, kw, in_ch, out_ch) "
            "kernels need transpose(3, 2, 0, 1).",
            "A dense layer after flatten expects its rows in PyTorch's (C, H, W) order; Keras and Flax "
            "flatten (H, W, C), so their kernel's rows must be permuted too.",
            "The file is read with allow_pickle=False: save plain numeric arrays with np.savez, not object "
            "arrays or tensors.",
        ),
        summary="your own or pretrained arrays",
    ),
)

ENTRIES: dict[str, Entry] = {
    entry.name: entry._replace(aliases=tuple(a for a, name in ALIASES.items() if name == entry.name))
    for entry in _ENTRIES
}
NAMES: tuple[str, ...] = tuple(ENTRIES)


# --- lookup --------------------------------------------------------------------------------------


def find(name: str) -> Resolution:
    """*name* read as ``--init`` reads it (`initdiag.names.resolve`): a canonical name or alias,
    case-insensitive, or a framework's name (``torch.nn.init.kaiming_normal_``,
    ``tf.keras.initializers.HeNormal``, ``HeNormal()``, ``jax.nn.initializers.lecun_normal``);
    ``NAME:ARGS`` ignores the args.

    An unknown name raises `InitdiagError` worded as ``--init`` words it
    (``unknown initializer 'hee'; did you mean 'he'?``).
    """
    head = str(name).strip().partition(":")[0].strip()
    if not head:
        raise InitdiagError(f"empty initializer name in '{name}'")
    return resolve(head, NAMES)


def lookup(name: str) -> Entry:
    """The entry for a canonical name, an alias or a framework's name (see `find`)."""
    return ENTRIES[find(name).name]


# --- rendering -----------------------------------------------------------------------------------


def variance_text(factor: float, mode: str) -> str:
    """``Var(W) = factor/fan(mode)`` as the cards write it: ``2/fan_in``, ``2/(fan_in+fan_out)``,
    ``1/(3*fan_in)``."""
    if mode == "fan_avg":  # factor/((fan_in+fan_out)/2)
        factor, fan = 2 * factor, "(fan_in+fan_out)"
    else:
        fan = mode
    if factor > 0 and math.isclose(1 / factor, round(1 / factor), rel_tol=1e-12) and 1 / factor > 1:
        inner = fan.strip("()")
        return f"1/({round(1 / factor)}*{inner})"
    return f"{_num(factor)}/{fan}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def card_rows() -> list[list[str]]:
    """One row per initializer, in ``INITIALIZER_NAMES`` order, for `CARD_HEADERS`."""
    return [
        [e.name, ", ".join(e.aliases) or "-", e.distribution, e.fan_mode, e.gain, e.summary]
        for e in ENTRIES.values()
    ]


def gain_rows() -> list[list[str]]:
    """`GAIN_TABLE` as text rows for `GAIN_HEADERS`."""
    return [[row.nonlinearity, row.formula, f"{row.value:.6g}"] for row in GAIN_TABLE]


_SECTIONS = (
    ("formula", "formula"),
    ("syntax", "syntax"),
    ("distribution", "distribution"),
    ("fan mode", "fan_mode"),
    ("gain", "gain"),
    ("paper", "paper"),
    ("PyTorch", "torch"),
    ("Keras", "keras"),
    ("JAX", "jax"),
    ("when to use it", "when"),
)
_LABEL_WIDTH = max(len(label) for label, _ in _SECTIONS) + 3  # "when to use it:" and two spaces


_BREAKS = (r"(?<=,)", r"(?<=[,|])", r"(?<=[,|(/])", r"(?<=[,|(/.=])")


def _pieces(text: str, room: int) -> list[tuple[str, bool]]:
    """(piece, glued) pairs: the words of *text*, a word longer than *room* split after commas, then
    bars, then parentheses, slashes, dots and equal signs, and as a last resort every *room*
    characters (a glued piece joins the one before it without a space)."""
    out: list[tuple[str, bool]] = []
    for word in text.split():
        parts = [word]
        for pattern in _BREAKS:
            if all(len(p) <= room for p in parts):
                break
            parts = [p for p in re.split(pattern, word) if p]
        if any(len(p) > room for p in parts):
            parts = [p[i : i + room] for p in parts for i in range(0, len(p), room)]
        out.extend((part, i > 0) for i, part in enumerate(parts))
    return out


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """Greedy wrap of *text* after the prefix *first* (then *rest*), at most *width* columns."""
    lines: list[str] = []
    line = first
    empty = True  # nothing after the prefix yet
    for piece, glued in _pieces(text, width - len(rest)):
        sep = "" if glued or empty else " "
        if not empty and len(line) + len(sep) + len(piece) > width:
            lines.append(line.rstrip())
            line, sep = rest, ""
        line += sep + piece
        empty = False
    lines.append(line.rstrip())
    return lines


def _title(entry: Entry) -> str:
    return entry.name + (f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else "")


def _page(entry: Entry | str) -> tuple[Entry, Resolution | None]:
    """The entry to show, and the framework name it was asked by (None for initdiag's own names)."""
    if isinstance(entry, Entry):
        return entry, None
    found = find(entry)
    return ENTRIES[found.name], found if found.framework else None


def resolution_text(found: Resolution) -> str:
    """``tf.keras.initializers.HeNormal (Keras) -> he_normal:distribution=truncated_normal``; a name
    whose ``--init`` needs arguments shows the framework's defaults and says so."""
    at_defaults = f" at {found.framework}'s defaults" if found.spelling and found.spelling.needs[0] else ""
    return f"{found.text} ({found.framework}) -> {found.resolves_to}{at_defaults}"


def explain_data(name: str) -> dict:
    """One initializer's card as a dict (the `Entry` fields), then how *name* was read: ``input``,
    ``framework`` (PyTorch, Keras, JAX or None), ``resolves_to`` (the ``--init`` string of the
    framework's call at its defaults, or the canonical name) and ``note`` (what the framework's name
    means, or None)."""
    found = find(name)
    return {
        **ENTRIES[found.name]._asdict(),
        "input": found.text,
        "framework": found.framework,
        "resolves_to": found.resolves_to,
        "note": found.note,
    }


def explain_text(entry: Entry | str, width: int = 100) -> str:
    """A plain-text page for one initializer: title, summary, labelled sections, traps as bullets;
    every line at most *width* columns, no trailing spaces. Asked by a framework's name, the page
    starts with what that name resolves to and what it means there."""
    entry, found = _page(entry)
    lines = []
    if found is not None:
        lines += _wrap(resolution_text(found), width, "", "  ")
        lines += _wrap(found.note or "", width, "  ", "  ")
        lines.append("")
    lines += _wrap(_title(entry), width, "", "  ")
    lines += _wrap(entry.summary, width, "  ", "  ")
    lines.append("")
    indent = " " * _LABEL_WIDTH
    for label, field in _SECTIONS:
        lines += _wrap(getattr(entry, field), width, f"{label + ':':<{_LABEL_WIDTH}}", indent)
    lines.append("traps:")
    for trap in entry.traps:
        lines += _wrap(trap, width, "  - ", "    ")
    return "\n".join(lines) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~$|#])")


def _md(text: str) -> str:
    """Markdown-escape prose (code inside it then renders literally, underscores and all)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _code(text: str) -> str:
    return f"`{text}`"


def explain_markdown(entry: Entry | str) -> str:
    """The same page as `explain_text` in Markdown: a heading, a bullet per section, then the traps
    (after what a framework's name resolves to, when asked by one)."""
    entry, found = _page(entry)
    lines = []
    if found is not None:
        lines += [
            f"{_code(found.text)} ({found.framework}) resolves to {_code(found.resolves_to)}"
            + (f" at {found.framework}'s defaults" if found.spelling and found.spelling.needs[0] else "")
            + f". {_md(found.note or '')}",
            "",
        ]
    lines += [f"### {_code(entry.name)}", ""]
    if entry.aliases:
        lines += ["Aliases: " + ", ".join(_code(a) for a in entry.aliases) + ".", ""]
    lines += [_md(entry.summary), ""]
    for label, field in _SECTIONS:
        value = getattr(entry, field)
        text = _code(value) if field in ("formula", "syntax") else _md(value)
        lines.append(f"- **{label}**: {text}")
    lines += ["", "**Traps**", ""]
    lines += [f"- {_md(trap)}" for trap in entry.traps]
    return "\n".join(lines) + "\n"
