"""The initializer reference card against initdiag's own registry, samplers and gain table."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from initdiag.core import reference
from initdiag.core.activations import calculate_gain, get_activation
from initdiag.core.init_parser import INITIALIZER_NAMES, get_initializer
from initdiag.core.initializers import VARIANCE_SCALING_PRESETS, LayerContext, compute_fans
from initdiag.core.names import ALIASES, TRUNCATED_NORMAL_STD
from initdiag.core.reference import (
    CARD_HEADERS,
    ENTRIES,
    GAIN_TABLE,
    Entry,
    card_rows,
    explain_markdown,
    explain_text,
    gain_rows,
    lookup,
    variance_text,
)
from initdiag.errors import InitdiagError

FIELDS = ("syntax", "formula", "distribution", "fan_mode", "gain", "paper", "torch", "keras", "jax", "when")


def ctx(shape, act="relu"):
    return LayerContext("dense1", shape, compute_fans(shape), get_activation(act), np.dtype(np.float64))


# --- registry -------------------------------------------------------------------------------------


def test_every_registered_initializer_has_an_entry_in_registry_order():
    assert tuple(ENTRIES) == INITIALIZER_NAMES
    for name, entry in ENTRIES.items():
        assert isinstance(entry, Entry)
        assert entry.name == name


def test_aliases_mirror_the_registry_and_resolve_to_their_entry():
    assert list(reference.ALIASES.items()) == list(ALIASES.items())
    for alias, name in ALIASES.items():
        assert lookup(alias) is ENTRIES[name]
        assert alias in ENTRIES[name].aliases
    for name, entry in ENTRIES.items():
        assert set(entry.aliases) == {a for a, n in ALIASES.items() if n == name}


def test_truncated_normal_constant_is_the_samplers():
    assert reference.TRUNCATED_NORMAL_STD == TRUNCATED_NORMAL_STD
    assert repr(TRUNCATED_NORMAL_STD) == "0.8796256610342398"
    assert "0.87962566103423978" in ENTRIES["trunc_normal"].formula
    # 2 / 0.8796... is the cut in units of the corrected std
    assert f"{2 / TRUNCATED_NORMAL_STD:.4f}" == "2.2737"
    assert "2.2737*S" in ENTRIES["trunc_normal"].formula


# --- lookup ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["he_normal", "HE", "Kaiming", " he ", "he:mode=fan_out", "HE_NORMAL:gain=auto"]
)
def test_lookup_is_case_insensitive_and_ignores_args(text):
    assert lookup(text) is ENTRIES["he_normal"]


def test_lookup_with_args_of_every_kind():
    assert lookup("normal:0.01") is ENTRIES["normal"]
    assert lookup("uniform:low=-1,high=1") is ENTRIES["uniform"]
    assert lookup("file:weights/w.npz") is ENTRIES["file"]
    assert lookup("file") is ENTRIES["file"]
    assert lookup("EYE:gain=2") is ENTRIES["identity"]
    assert lookup("truncated_normal:0.02") is ENTRIES["trunc_normal"]


@pytest.mark.parametrize(
    "typo, suggestion", [("hee", "he"), ("xavir", "xavier"), ("orthogonl", "orthogonal")]
)
def test_unknown_name_suggests_like_get_initializer(typo, suggestion):
    with pytest.raises(
        InitdiagError, match=f"unknown initializer '{typo}'; did you mean '{suggestion}'\\?"
    ) as got:
        lookup(typo)
    with pytest.raises(InitdiagError) as expected:
        get_initializer(typo)
    assert str(got.value) == str(expected.value)


def test_unknown_name_without_a_close_match_lists_the_names_like_get_initializer():
    with pytest.raises(InitdiagError, match="allowed: zeros, ones") as got:
        lookup("qqqqqq:1")
    with pytest.raises(InitdiagError) as expected:
        get_initializer("qqqqqq:1")
    assert str(got.value) == str(expected.value)


def test_empty_name_is_an_error():
    with pytest.raises(InitdiagError, match="empty initializer name"):
        lookup("  ")


def test_explain_accepts_a_name():
    assert explain_text("kaiming") == explain_text(ENTRIES["he_normal"])
    assert explain_markdown("glorot") == explain_markdown(ENTRIES["xavier_uniform"])
    with pytest.raises(InitdiagError, match="did you mean"):
        explain_text("lecnu")


# --- the numbers agree with initdiag's samplers -------------------------------------------------------


def test_fan_based_inits_all_state_a_variance_factor():
    fan_based = {*VARIANCE_SCALING_PRESETS, "torch_default", "keras_default", "flax_default"}
    assert {name for name, e in ENTRIES.items() if e.variance_factor is not None} == fan_based


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if e.variance_factor is not None])
@pytest.mark.parametrize("shape", [(300, 100), (100, 300), (16, 8, 3, 3)])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_variance_factor_is_the_samplers_variance(name, shape, act):
    factor, mode = ENTRIES[name].variance_factor
    assert mode in ("fan_in", "fan_out", "fan_avg")
    layer = ctx(shape, act)
    assert get_initializer(name).variance(layer) == pytest.approx(factor / layer.fans.of(mode), rel=1e-12)


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if e.variance_factor is not None])
def test_formula_states_the_variance_factor(name):
    entry = ENTRIES[name]
    assert f"Var(W) = {variance_text(*entry.variance_factor)}" in entry.formula


def test_variance_text():
    assert variance_text(2.0, "fan_in") == "2/fan_in"
    assert variance_text(1.0, "fan_in") == "1/fan_in"
    assert variance_text(1.0, "fan_avg") == "2/(fan_in+fan_out)"
    assert variance_text(1 / 3, "fan_in") == "1/(3*fan_in)"
    assert variance_text(2.0, "fan_out") == "2/fan_out"


def test_stated_bounds_and_stds_give_the_stated_variance():
    # the formulas' bound and std forms, written out: all give the variance the samplers use
    fi, fo = 300, 100
    dense = ctx((fi, fo))
    bounds = {
        "xavier_uniform": math.sqrt(6 / (fi + fo)),
        "he_uniform": math.sqrt(2) * math.sqrt(3 / fi),  # a = gain*sqrt(3/fan_mode)
        "lecun_uniform": math.sqrt(3 / fi),
        "torch_default": 1 / math.sqrt(fi),
        "keras_default": math.sqrt(6 / (fi + fo)),
    }
    for name, a in bounds.items():
        assert get_initializer(name).variance(dense) == pytest.approx(a * a / 3, rel=1e-12), name
    stds = {
        "he_normal": math.sqrt(2) / math.sqrt(fi),  # std = gain/sqrt(fan_mode)
        "xavier_normal": math.sqrt(2 / (fi + fo)),
        "lecun_normal": 1 / math.sqrt(fi),
    }
    for name, std in stds.items():
        assert get_initializer(name).variance(dense) == pytest.approx(std * std, rel=1e-12), name
    # torch_default's bias has the weight's bound
    assert get_initializer("torch_default").default_bias().variance(dense) == pytest.approx(1 / (3 * fi))
    # orthogonal: gain^2/max(fan_in, fan_out) dense; gain^2/max(out_ch, in_ch*kh*kw) conv
    assert get_initializer("orthogonal:gain=2").variance(dense) == pytest.approx(4 / max(fi, fo))
    assert get_initializer("orthogonal").variance(ctx((16, 8, 3, 3))) == pytest.approx(1 / max(16, 8 * 9))
    assert "gain^2/max(out_ch, in_ch*kh*kw)" in ENTRIES["orthogonal"].formula


def test_uniform_and_normal_formulas():
    dense = ctx((300, 100))
    assert get_initializer("uniform:0.3").variance(dense) == pytest.approx(0.3**2 / 3)
    assert "Var(W) = A^2/3" in ENTRIES["uniform"].formula
    assert get_initializer("uniform:low=-1,high=3").variance(dense) == pytest.approx(4**2 / 12)
    assert "Var(W) = (H-L)^2/12" in ENTRIES["uniform"].formula
    assert get_initializer("trunc_normal:0.02").variance(dense) == pytest.approx(0.02**2)
    assert "Var(W) = S^2" in ENTRIES["trunc_normal"].formula
    assert "Var(W) = S^2" in ENTRIES["normal"].formula


# --- gain table ---------------------------------------------------------------------------------------


def test_gain_table_is_calculate_gains():
    names = [n for row in GAIN_TABLE for n in row.nonlinearity.split(", ")]
    assert names == ["linear", "conv1d", "conv2d", "conv3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
    for row in GAIN_TABLE:
        for name in row.nonlinearity.split(", "):
            assert row.value == calculate_gain(name), name
    assert next(r.formula for r in GAIN_TABLE if r.nonlinearity == "tanh") == "5/3"
    assert next(r[1] for r in GAIN_TABLE if r[0] == "selu").startswith("3/4")
    assert gain_rows()[3] == ["tanh", "5/3", "1.66667"]
    assert all(len(row) == len(reference.GAIN_HEADERS) for row in gain_rows())


# --- traps, each where it belongs -----------------------------------------------------------------------


def text_of(name: str) -> str:
    entry = ENTRIES[name]
    return " ".join([*(getattr(entry, f) for f in FIELDS), *entry.traps])


def traps_of(name: str) -> str:
    return " ".join(ENTRIES[name].traps)


def test_torch_default_is_kaiming_uniform_with_a_sqrt5_and_a_uniform_bias():
    e = ENTRIES["torch_default"]
    assert "kaiming_uniform_(a=sqrt(5))" in traps_of("torch_default")
    assert "a=math.sqrt(5)" in e.torch
    assert "pytorch#15314" in traps_of("torch_default")
    assert "U(-1/sqrt(fan_in), 1/sqrt(fan_in))" in e.formula
    assert "W, b ~" in e.formula
    assert "bias is not zero" in traps_of("torch_default")
    # the other kaiming_uniform_ user points there
    assert "a=sqrt(5)" in traps_of("he_uniform")


def test_layout_trap():
    for name in ("torch_default", "file", "he_normal", "he_uniform", "lecun_normal", "variance_scaling"):
        assert "(out, in)" in traps_of(name), name
        assert "(in, out)" in traps_of(name), name
    assert "(fan_in, fan_out)" in traps_of("torch_default")
    assert "(out, in, kh, kw)" in traps_of("torch_default")
    assert "W.T" in traps_of("file")


def test_keras_and_jax_normals_are_truncated():
    for name, keras, jax in [
        ("he_normal", "HeNormal", "he_normal()"),
        ("xavier_normal", "GlorotNormal", "glorot_normal()"),
        ("lecun_normal", "LecunNormal", "lecun_normal()"),
    ]:
        e = ENTRIES[name]
        assert keras in e.keras and "truncated" in e.keras.lower()
        assert jax in e.jax and "truncated" in e.jax.lower()
        assert "untruncated" in e.distribution
        assert "0.87962566103423978" in traps_of(name)
        assert "distribution=truncated_normal" in traps_of(name)
    assert 'VarianceScaling(distribution="normal") is TRUNCATED' in traps_of("variance_scaling")
    assert "untruncated_normal" in traps_of("variance_scaling")


def test_trunc_normal_bounds_are_absolute_in_pytorch():
    traps = traps_of("trunc_normal")
    assert "absolute values" in traps and "NOT multiples of std" in traps
    assert "a=-2, b=2" in traps
    assert "absolute values" in ENTRIES["trunc_normal"].torch
    # Keras and JAX cut at 2 std but do not correct the std
    assert "do not correct the std" in traps
    assert "does not correct the std" in ENTRIES["trunc_normal"].keras


def test_jax_uniform_is_not_symmetric():
    assert "[0, scale)" in ENTRIES["uniform"].jax
    assert "[0, scale)" in traps_of("uniform")
    assert "U(0, 1)" in traps_of("uniform")  # torch.nn.init.uniform_'s default


def test_gain_traps():
    for name in ("xavier_uniform", "xavier_normal", "he_normal", "he_uniform"):
        assert "tanh 5/3 and selu 3/4" in traps_of(name), name
    assert "lecun_normal with gain 1" in traps_of("he_normal")
    assert "3/4" in traps_of("lecun_normal") and "self-normalization" in traps_of("lecun_normal")
    assert 'nonlinearity="linear"' in ENTRIES["lecun_normal"].torch


def test_conv_fan_trap():
    for name in (
        "he_normal",
        "he_uniform",
        "xavier_uniform",
        "xavier_normal",
        "lecun_normal",
        "torch_default",
    ):
        assert "in_ch*kh*kw" in traps_of(name), name


def test_library_spellings():
    assert ENTRIES["he_normal"].torch.startswith('torch.nn.init.kaiming_normal_(w, nonlinearity="relu")')
    assert ENTRIES["he_normal"].keras.startswith("keras.initializers.HeNormal()")
    assert ENTRIES["he_normal"].jax.startswith("jax.nn.initializers.he_normal()")
    assert ENTRIES["xavier_uniform"].torch.startswith("torch.nn.init.xavier_uniform_(w)")
    assert ENTRIES["orthogonal"].jax.startswith("jax.nn.initializers.orthogonal(scale=G)")
    assert "eye_" in ENTRIES["identity"].torch and "no built-in" in ENTRIES["identity"].jax
    assert "lecun_normal()" in ENTRIES["flax_default"].jax
    assert 'kernel_initializer="glorot_uniform"' in ENTRIES["keras_default"].keras
    assert "Mishkin & Matas 2015" in ENTRIES["lsuv"].paper
    assert "tol=0.1,max_iter=10" in ENTRIES["lsuv"].syntax


# --- rendering --------------------------------------------------------------------------------------


def test_fields_are_filled_single_line_and_plain():
    for entry in ENTRIES.values():
        for field in (*FIELDS, "summary"):
            value = getattr(entry, field)
            assert value and value == value.strip(), (entry.name, field)
            assert "\n" not in value and "`" not in value, (entry.name, field)
        assert entry.traps, entry.name
        assert all(t and "\n" not in t and "`" not in t for t in entry.traps)


def test_card_rows_are_short_and_in_order():
    rows = card_rows()
    assert len(CARD_HEADERS) == 6
    assert [row[0] for row in rows] == list(INITIALIZER_NAMES)
    for row in rows:
        assert len(row) == len(CARD_HEADERS)
        assert all(cell and len(cell) <= 45 for cell in row), row
    assert rows[INITIALIZER_NAMES.index("he_normal")][1] == "he, kaiming, kaiming_normal"
    assert rows[INITIALIZER_NAMES.index("ones")][1] == "-"


@pytest.mark.parametrize("name", INITIALIZER_NAMES)
def test_explain_text_layout(name):
    entry = ENTRIES[name]
    text = explain_text(entry)
    lines = text.splitlines()
    assert text.endswith("\n") and not text.endswith("\n\n")
    for line in lines:
        assert len(line) <= 100, line
        assert line == line.rstrip(), line
    assert lines[0].startswith(name)
    for alias in entry.aliases:
        assert alias in lines[0]
    for label in (
        "formula:",
        "syntax:",
        "distribution:",
        "fan mode:",
        "gain:",
        "paper:",
        "PyTorch:",
        "Keras:",
    ):
        assert any(line.startswith(label) for line in lines), label
    assert any(line.startswith("JAX:") for line in lines)
    assert any(line.startswith("when to use it:") for line in lines)
    assert lines.count("traps:") == 1
    assert sum(line.startswith("  - ") for line in lines) == len(entry.traps)
    # wrapping only moves whitespace: every field and trap is there, in full
    squashed = "".join(text.split())
    for value in (*(getattr(entry, f) for f in FIELDS), entry.summary, *entry.traps):
        assert "".join(value.split()) in squashed


@pytest.mark.parametrize("width", [80, 60])
def test_explain_text_wraps_to_a_narrower_width(width):
    for entry in ENTRIES.values():
        text = explain_text(entry, width=width)
        assert all(len(line) <= width for line in text.splitlines()), entry.name
        assert "".join(entry.torch.split()) in "".join(text.split())


def test_explain_text_breaks_long_syntax_after_a_comma():
    lines = explain_text("variance_scaling").splitlines()
    syntax = next(i for i, line in enumerate(lines) if line.startswith("syntax:"))
    assert lines[syntax].endswith(",")
    assert lines[syntax + 1].strip().startswith("distribution=truncated_normal|normal|uniform")


@pytest.mark.parametrize("name", INITIALIZER_NAMES)
def test_explain_markdown(name):
    entry = ENTRIES[name]
    md = explain_markdown(entry)
    assert md.startswith(f"### `{name}`\n")
    assert f"- **formula**: `{entry.formula}`" in md
    assert f"- **syntax**: `{entry.syntax}`" in md
    assert md.count("\n- ") == 10 + len(entry.traps)
    # prose is escaped, so code in it keeps its underscores and stars
    assert "kaiming_normal_" not in explain_markdown("he").split("**PyTorch**")[1]
    assert r"kaiming\_normal\_" in explain_markdown("he")


def test_import_is_numpy_free():
    code = "import sys, initdiag.core.reference; assert 'numpy' not in sys.modules, 'numpy imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- the commands -----------------------------------------------------------------------------------


def test_inits_and_explain_commands():
    import json

    from typer.testing import CliRunner

    from initdiag.cli import app
    from initdiag.core.init_parser import INITIALIZER_NAMES

    runner = CliRunner()
    table = runner.invoke(app, ["inits"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    for name in INITIALIZER_NAMES:
        assert any(line.split()[:1] == [name] for line in table.stdout.splitlines()), name
    data = json.loads(runner.invoke(app, ["inits", "--format", "json"]).stdout)
    assert [e["name"] for e in data["initializers"]] == list(INITIALIZER_NAMES)
    assert runner.invoke(app, ["inits", "-f", "markdown"]).stdout.startswith("**initdiag inits**")
    page = runner.invoke(app, ["explain", "kaiming"])
    assert page.exit_code == 0 and page.stdout.startswith("he_normal")
    assert "truncated" in page.stdout  # Keras's HeNormal is truncated; PyTorch's is not
    bad = runner.invoke(app, ["explain", "hee"])
    assert (
        bad.exit_code == 2
        and bad.stderr == "initdiag: error: unknown initializer 'hee'; did you mean 'he'?\n"
    )


def test_gain_auto_column_is_the_second_moment_gain():
    import numpy as np

    from initdiag.render.reference import gain_comparison_rows

    rows = {row[0]: row for row in gain_comparison_rows()}
    z = np.linspace(-12, 12, 400_001)
    density = np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    for name, phi in (("tanh", np.tanh), ("sigmoid", lambda x: 1 / (1 + np.exp(-x)))):
        brute = 1 / np.sqrt(np.trapezoid(phi(z) ** 2 * density, z))
        assert float(rows[name][2]) == pytest.approx(brute, rel=1e-3), name
    assert rows["relu"][1] == rows["relu"][2] == "1.414"  # sqrt 2 both ways
    assert rows["selu"][1:3] == ["0.75", "1"]  # PyTorch's empirical 3/4; selu keeps E[z^2] = 1 at gain 1
    assert rows["gelu"][1] == "–"


# --- framework names: PyTorch's, Keras's and JAX's spellings resolve to the card's entries ----------

# (name as pasted, the card's entry, framework, what it resolves to in --init grammar)
FRAMEWORK_NAMES = [
    ("kaiming_normal_", "he_normal", "PyTorch", "he_normal"),
    ("torch.nn.init.kaiming_normal_", "he_normal", "PyTorch", "he_normal"),
    ("torch.nn.init.xavier_uniform_", "xavier_uniform", "PyTorch", "xavier_uniform"),
    ("nn.init.orthogonal_", "orthogonal", "PyTorch", "orthogonal"),
    ("init.kaiming_uniform_", "he_uniform", "PyTorch", "he_uniform"),
    ("xavier_normal_", "xavier_normal", "PyTorch", "xavier_normal"),
    ("torch.nn.init.eye_", "identity", "PyTorch", "identity"),
    ("zeros_", "zeros", "PyTorch", "zeros"),
    ("ones_", "ones", "PyTorch", "ones"),
    ("constant_", "constant", "PyTorch", "constant"),
    ("normal_", "normal", "PyTorch", "normal:1"),
    ("uniform_", "uniform", "PyTorch", "uniform:low=0,high=1"),
    ("trunc_normal_", "trunc_normal", "PyTorch", "trunc_normal:0.8796256610342398"),
    ("tf.keras.initializers.HeNormal", "he_normal", "Keras", "he_normal:distribution=truncated_normal"),
    ("keras.initializers.he_normal", "he_normal", "Keras", "he_normal:distribution=truncated_normal"),
    ("HeNormal()", "he_normal", "Keras", "he_normal:distribution=truncated_normal"),
    ("keras.initializers.GlorotUniform", "xavier_uniform", "Keras", "xavier_uniform"),
    ("GlorotNormal", "xavier_normal", "Keras", "xavier_normal:distribution=truncated_normal"),
    ("LecunNormal", "lecun_normal", "Keras", "lecun_normal:distribution=truncated_normal"),
    ("HeUniform", "he_uniform", "Keras", "he_uniform"),
    ("LecunUniform", "lecun_uniform", "Keras", "lecun_uniform"),
    ("VarianceScaling", "variance_scaling", "Keras", "variance_scaling"),
    ("TruncatedNormal", "trunc_normal", "Keras", "trunc_normal:0.04398128305171199"),
    ("RandomNormal", "normal", "Keras", "normal:0.05"),
    ("tf.keras.initializers.RandomUniform()", "uniform", "Keras", "uniform:0.05"),
    ("random_normal", "normal", "Keras", "normal:0.05"),
    ("Orthogonal", "orthogonal", "Keras", "orthogonal"),
    ("Identity", "identity", "Keras", "identity"),
    ("Zeros", "zeros", "Keras", "zeros"),
    ("Ones", "ones", "Keras", "ones"),
    ("Constant", "constant", "Keras", "constant:0"),
    ("jax.nn.initializers.lecun_normal", "lecun_normal", "JAX", "lecun_normal:distribution=truncated_normal"),
    ("jax.nn.initializers.kaiming_normal", "he_normal", "JAX", "he_normal:distribution=truncated_normal"),
    ("flax.linen.initializers.he_normal()", "he_normal", "JAX", "he_normal:distribution=truncated_normal"),
    ("initializers.he_uniform", "he_uniform", "JAX", "he_uniform"),
    ("nn.initializers.glorot_uniform", "xavier_uniform", "JAX", "xavier_uniform"),
    ("jax.nn.initializers.uniform", "uniform", "JAX", "uniform:low=0,high=0.01"),
    ("jax.nn.initializers.normal", "normal", "JAX", "normal:0.01"),
    ("jax.nn.initializers.truncated_normal", "trunc_normal", "JAX", "trunc_normal:0.008796256610342399"),
    ("flax.linen.initializers.zeros_init()", "zeros", "JAX", "zeros"),
]


@pytest.mark.parametrize("text, entry, framework, resolves_to", FRAMEWORK_NAMES)
def test_framework_names_resolve_to_the_cards_entries(text, entry, framework, resolves_to):
    found = reference.find(text)
    assert (found.name, found.framework, found.resolves_to) == (entry, framework, resolves_to)
    assert lookup(text) is ENTRIES[entry]
    assert lookup(text + ":mode=fan_out") is ENTRIES[entry]  # args are ignored, as for initdiag's names
    # what a name resolves to is canonical --init text: it parses to itself (constant has no default value)
    if resolves_to != "constant":
        assert str(get_initializer(resolves_to)) == resolves_to


def test_every_framework_spelling_is_an_entry_with_a_note_and_canonical_defaults():
    from initdiag.core.names import SPELLINGS

    for framework, table in SPELLINGS.items():
        for key, spelling in table.items():
            assert spelling.name in ENTRIES, (framework, key)
            assert spelling.note and "\n" not in spelling.note and "`" not in spelling.note, (framework, key)
            if spelling.resolves_to != "constant":  # PyTorch's constant_ and JAX's constant need the value
                assert str(get_initializer(spelling.resolves_to)) == spelling.resolves_to, (framework, key)
            if not spelling.needs[0]:  # --init takes the bare name and gives the framework's draw
                assert spelling.resolves_to.partition(":")[0] == spelling.name


@pytest.mark.parametrize(
    "text, canonical",
    [("he", "he_normal"), ("he_normal", "he_normal"), ("Kaiming", "he_normal"), ("HE_NORMAL", "he_normal")],
)
def test_initdiags_own_names_stay_initdiags(text, canonical):
    # a name without a module path, trailing _ or Keras class spelling is initdiag's: untruncated he_normal
    found = reference.find(text)
    assert (found.name, found.framework, found.resolves_to, found.note) == (canonical, None, canonical, None)


def test_snake_case():
    from initdiag.core.names import snake_case

    cases = {
        "HeNormal": "he_normal",
        "GlorotUniform": "glorot_uniform",
        "LecunNormal": "lecun_normal",
        "VarianceScaling": "variance_scaling",
        "TruncatedNormal": "truncated_normal",
        "STFTInitializer": "stft_initializer",
        "Orthogonal": "orthogonal",
        "HE_NORMAL": "he_normal",
        "he": "he",
    }
    assert {name: snake_case(name) for name in cases} == cases


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "tf.keras.initializers.HeNormall",
            "unknown initializer 'tf.keras.initializers.HeNormall': Keras has no 'HeNormall'; "
            "did you mean 'tf.keras.initializers.HeNormal'?",
        ),
        (
            "torch.nn.init.kaiming_normall_",
            "unknown initializer 'torch.nn.init.kaiming_normall_': PyTorch has no 'kaiming_normall_'; "
            "did you mean 'torch.nn.init.kaiming_normal_'?",
        ),
        (
            "torch.nn.init.lecun_normal_",
            "unknown initializer 'torch.nn.init.lecun_normal_': PyTorch has no 'lecun_normal_'; "
            "initdiag's own is 'lecun_normal'",
        ),
        ("HeNormall", "unknown initializer 'HeNormall'; did you mean 'he_normal'?"),
        (
            "hk.initializers.TruncatedNormal",
            "unknown initializer 'hk.initializers.TruncatedNormal': initdiag reads the names of PyTorch's "
            "torch.nn.init (nn.init, init), Keras's keras.initializers (tf.keras.initializers) and JAX's "
            "jax.nn.initializers (flax.linen.initializers, nn.initializers)",
        ),
        (
            "torch.nn.init.dirac_",
            "initializer 'torch.nn.init.dirac_' has no initdiag equivalent: PyTorch's dirac_ puts a delta "
            "at the centre of each conv kernel (the identity for convolutions); identity covers 2-D weights",
        ),
        (
            "HeNormal(seed=1)",
            "'HeNormal(seed=1)': arguments go after ':' (NAME:key=value, e.g. kaiming_normal_:mode=fan_out), "
            "not in parentheses",
        ),
    ],
)
def test_unknown_framework_names_are_one_line_like_get_initializer(text, message):
    with pytest.raises(InitdiagError) as got:
        lookup(text)
    assert str(got.value) == message
    with pytest.raises(InitdiagError) as expected:
        get_initializer(text)
    assert str(expected.value) == message


def test_explain_text_by_a_framework_name_starts_with_what_it_resolves_to():
    text = explain_text("tf.keras.initializers.HeNormal")
    assert text.splitlines()[:7] == [
        "tf.keras.initializers.HeNormal (Keras) -> he_normal:distribution=truncated_normal",
        "  keras.initializers.HeNormal() is a TRUNCATED normal: std sqrt(2/fan_in)/0.87962566103423978 cut at",
        "  +-2 of that std, so the variance is 2/fan_in and no weight exceeds 2.2737*sqrt(2/fan_in). That is",
        "  he_normal:distribution=truncated_normal; initdiag's bare he_normal, like PyTorch's",
        "  kaiming_normal_, is untruncated (the same variance, with tails).",
        "",
        "he_normal (aliases: he, kaiming, kaiming_normal)",
    ]
    assert text.endswith(explain_text(ENTRIES["he_normal"]))
    # PyTorch's kaiming_normal_ is he_normal itself: the note says so, with no truncation
    torch = explain_text("torch.nn.init.kaiming_normal_")
    assert torch.startswith("torch.nn.init.kaiming_normal_ (PyTorch) -> he_normal\n")
    assert "the same untruncated N(0, 2/fan_in)" in torch


def test_explain_explains_the_framework_defaults():
    keras = explain_text("RandomNormal")
    assert keras.startswith("RandomNormal (Keras) -> normal:0.05 at Keras's defaults\n")
    assert "RandomNormal(mean=0.0, stddev=0.05)" in keras and "--init needs the std" in keras
    uniform = explain_text("keras.initializers.RandomUniform")
    assert uniform.startswith(
        "keras.initializers.RandomUniform (Keras) -> uniform:0.05 at Keras's defaults\n"
    )
    jax = explain_text("jax.nn.initializers.uniform")
    assert jax.startswith("jax.nn.initializers.uniform (JAX) -> uniform:low=0,high=0.01 at JAX's defaults\n")
    assert "U(0, scale): NOT symmetric" in jax
    torch = explain_text("trunc_normal_")
    assert torch.startswith(
        "trunc_normal_ (PyTorch) -> trunc_normal:0.8796256610342398 at PyTorch's defaults\n"
    )
    assert "ABSOLUTE" in torch and "trunc_normal_(w, std=0.02)" in torch
    assert "TruncatedNormal:stddev=S is trunc_normal:S*0.87962566103423978" in explain_text("TruncatedNormal")
    for name in ("RandomNormal", "trunc_normal_", "jax.nn.initializers.truncated_normal", "HeNormal"):
        assert all(len(line) <= 100 for line in explain_text(name).splitlines()), name


def test_explain_markdown_by_a_framework_name():
    md = explain_markdown("tf.keras.initializers.HeNormal")
    first, blank, heading = md.splitlines()[:3]
    assert first.startswith(
        "`tf.keras.initializers.HeNormal` (Keras) resolves to `he_normal:distribution=truncated_normal`. "
        "keras.initializers.HeNormal() is a TRUNCATED normal"
    )
    assert (blank, heading) == ("", "### `he_normal`")
    assert md.endswith(explain_markdown(ENTRIES["he_normal"]))
    assert explain_markdown("RandomNormal").startswith(
        "`RandomNormal` (Keras) resolves to `normal:0.05` at Keras's defaults. "
    )


def test_explain_data_says_how_the_name_was_read():
    data = reference.explain_data("HeNormal()")
    assert {k: data[k] for k in ("name", "input", "framework", "resolves_to")} == {
        "name": "he_normal",
        "input": "HeNormal()",
        "framework": "Keras",
        "resolves_to": "he_normal:distribution=truncated_normal",
    }
    assert data["note"].startswith("keras.initializers.HeNormal() is a TRUNCATED normal")
    own = reference.explain_data("kaiming:mode=fan_out")
    assert {k: own[k] for k in ("name", "input", "framework", "resolves_to", "note")} == {
        "name": "he_normal",
        "input": "kaiming",
        "framework": None,
        "resolves_to": "he_normal",
        "note": None,
    }


# --- explain/inits in every format: cells and values are text, never Python reprs --------------------


def _invoke(*args):
    from typer.testing import CliRunner

    from initdiag.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_explain_csv_cells_are_readable():
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(_invoke("explain", "he", "-f", "csv"))))
    assert len(rows) == 1
    row = rows[0]
    entry = ENTRIES["he_normal"]
    assert row["aliases"] == "he; kaiming; kaiming_normal"
    assert row["traps"].split(" | ") == list(entry.traps)
    assert row["variance_factor"] == "2/fan_in"
    assert (row["input"], row["framework"], row["resolves_to"], row["note"]) == ("he", "", "he_normal", "")
    for key, cell in row.items():
        assert not cell.startswith(("(", "[")) and "', '" not in cell, (key, cell)
    # an entry without aliases or a variance factor: empty cells, not "()" or "None"
    ones = next(csv.DictReader(io.StringIO(_invoke("explain", "ones", "-f", "csv"))))
    assert (ones["aliases"], ones["variance_factor"]) == ("", "")
    keras = next(csv.DictReader(io.StringIO(_invoke("explain", "HeNormal", "-f", "csv"))))
    assert (keras["framework"], keras["resolves_to"]) == ("Keras", "he_normal:distribution=truncated_normal")


def test_inits_csv_joins_aliases_like_explain():
    import csv
    import io

    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(_invoke("inits", "-f", "csv")))}
    assert list(rows) == list(INITIALIZER_NAMES)
    assert rows["he_normal"]["aliases"] == "he; kaiming; kaiming_normal"
    assert rows["ones"]["aliases"] == ""
    for row in rows.values():
        assert not any(cell.startswith(("(", "[")) for cell in row.values()), row


def test_explain_json_by_a_framework_name():
    import json

    data = json.loads(_invoke("explain", "torch.nn.init.trunc_normal_", "-f", "json"))
    assert data["name"] == "trunc_normal"
    assert (data["framework"], data["resolves_to"]) == ("PyTorch", "trunc_normal:0.8796256610342398")
    assert data["aliases"] == ["truncated_normal"] and isinstance(data["traps"], list)


@pytest.mark.parametrize(
    "args, start",
    [
        (["explain", "kaiming_normal_"], "kaiming_normal_ (PyTorch) -> he_normal\n"),
        (
            ["explain", "torch.nn.init.xavier_uniform_"],
            "torch.nn.init.xavier_uniform_ (PyTorch) -> xavier_uniform\n",
        ),
        (["explain", "nn.init.orthogonal_"], "nn.init.orthogonal_ (PyTorch) -> orthogonal\n"),
        (
            ["explain", "tf.keras.initializers.HeNormal"],
            "tf.keras.initializers.HeNormal (Keras) -> he_normal:distribution=truncated_normal\n",
        ),
        (
            ["explain", "keras.initializers.GlorotUniform"],
            "keras.initializers.GlorotUniform (Keras) -> xavier_uniform\n",
        ),
        (["explain", "HeNormal()"], "HeNormal() (Keras) -> he_normal:distribution=truncated_normal\n"),
        (
            ["explain", "jax.nn.initializers.lecun_normal"],
            "jax.nn.initializers.lecun_normal (JAX) -> lecun_normal:distribution=truncated_normal\n",
        ),
        (["explain", "initializers.he_uniform"], "initializers.he_uniform (JAX) -> he_uniform\n"),
    ],
)
def test_explain_command_takes_framework_names(args, start):
    assert _invoke(*args).startswith(start)


def test_explain_command_unknown_framework_name_is_one_line():
    from typer.testing import CliRunner

    from initdiag.cli import app

    bad = CliRunner().invoke(app, ["explain", "nn.init.kaiming_normall_"])
    assert bad.exit_code == 2
    assert bad.stderr == (
        "initdiag: error: unknown initializer 'nn.init.kaiming_normall_': PyTorch has no "
        "'kaiming_normall_'; did you mean 'nn.init.kaiming_normal_'?\n"
    )
