"""Initializers against closed forms written out here from the PyTorch / Keras / JAX docs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from initdiag.core.activations import calculate_gain, get_activation
from initdiag.core.init_parser import get_bias_initializer, get_initializer
from initdiag.core.initializers import LayerContext, compute_fans
from initdiag.core.names import TRUNCATED_NORMAL_STD
from initdiag.errors import InitdiagError

FAN_IN, FAN_OUT = 600, 400  # 240,000 draws: the sample std is within ~0.15% of the truth (1 sd)


def draw(init: str, shape=(FAN_IN, FAN_OUT), act: str = "relu", seed: int = 0, dtype=np.float64):
    ctx = LayerContext("dense1", shape, compute_fans(shape), get_activation(act), np.dtype(dtype))
    return get_initializer(init).sample(np.random.default_rng(seed), ctx)


def fan(mode: str, fan_in: int = FAN_IN, fan_out: int = FAN_OUT) -> float:
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def assert_moments(w: np.ndarray, std: float, mean: float = 0.0, rel: float = 0.01):
    n = w.size
    assert abs(w.mean() - mean) < 5 * std / math.sqrt(n) + 1e-12
    assert w.std() == pytest.approx(std, rel=rel)


def kurtosis(w: np.ndarray) -> float:
    d = w - w.mean()
    return float(np.mean(d**4) / np.mean(d**2) ** 2)


# --- PyTorch's formulas, written out independently of initdiag ------------------------------------
# xavier_uniform_: a = gain * sqrt(6 / (fan_in + fan_out)), U(-a, a)
# xavier_normal_: std = gain * sqrt(2 / (fan_in + fan_out))
# kaiming_normal_: std = gain / sqrt(fan_mode), gain = sqrt(2) for the default nonlinearity
# kaiming_uniform_: bound = gain * sqrt(3 / fan_mode)
# lecun_normal (Keras/JAX): variance 1 / fan_in


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize(
    "name, gain2, dist",
    [
        ("he_normal", 2.0, "normal"),
        ("he_uniform", 2.0, "uniform"),
        ("xavier_normal", 1.0, "normal"),
        ("xavier_uniform", 1.0, "uniform"),
        ("lecun_normal", 1.0, "normal"),
        ("lecun_uniform", 1.0, "uniform"),
    ],
)
def test_variance_scaling_presets_match_closed_form(name, gain2, dist, mode):
    w = draw(f"{name}:mode={mode}")
    std = math.sqrt(gain2 / fan(mode))
    assert_moments(w, std)
    if dist == "uniform":
        bound = math.sqrt(3.0) * std
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.999 * bound
        assert kurtosis(w) == pytest.approx(1.8, abs=0.02)
    else:
        assert kurtosis(w) == pytest.approx(3.0, abs=0.05)
    # initdiag's own names keep their meaning: truncated_normal:S has std S, TruncatedNormal:stddev=S not
    assert str(get_initializer("truncated_normal:0.02")) == "trunc_normal:0.02"
    assert str(get_initializer("TruncatedNormal:stddev=0.02")) == "trunc_normal:0.017592513220684797"


def test_default_fan_modes_are_pytorchs():
    assert_moments(draw("xavier_uniform"), math.sqrt(2.0 / (FAN_IN + FAN_OUT)))
    a = math.sqrt(6.0 / (FAN_IN + FAN_OUT))  # the bound in torch's docstring
    assert np.abs(draw("xavier_uniform")).max() <= a
    assert_moments(draw("he"), math.sqrt(2.0 / FAN_IN))
    assert_moments(draw("kaiming_uniform"), math.sqrt(2.0 / FAN_IN))
    assert np.abs(draw("he_uniform")).max() <= math.sqrt(2.0) * math.sqrt(3.0 / FAN_IN)
    assert_moments(draw("lecun"), math.sqrt(1.0 / FAN_IN))
    assert_moments(draw("glorot_normal"), math.sqrt(2.0 / (FAN_IN + FAN_OUT)))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("dist", ["normal", "uniform", "truncated_normal"])
def test_variance_scaling_all_distributions(mode, dist):
    w = draw(f"variance_scaling:scale=2.5,mode={mode},distribution={dist}")
    std = math.sqrt(2.5 / fan(mode))
    assert_moments(w, std)
    if dist == "truncated_normal":
        # cut at 2 std of the underlying normal, whose std is std / 0.8796...
        assert np.abs(w).max() < 2 * std / 0.87962566103423978
        assert kurtosis(w) == pytest.approx(2.3656, abs=0.02)


def test_truncated_normal_constant_is_the_std_of_a_normal_cut_at_two():
    a = 2.0
    pdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(a / math.sqrt(2))
    assert math.sqrt(1 - 2 * a * pdf / mass) == pytest.approx(TRUNCATED_NORMAL_STD, rel=1e-15)


@pytest.mark.parametrize("act, expected", [("tanh", 5 / 3), ("relu", math.sqrt(2)), ("selu", 0.75)])
def test_gain_auto_is_the_layer_activations_torch_gain(act, expected):
    # kaiming_normal_(w, nonlinearity=act): std = gain / sqrt(fan_in)
    assert_moments(draw("he_normal:gain=auto", act=act), expected / math.sqrt(FAN_IN))
    # xavier_uniform_(w, gain=calculate_gain(act))
    assert_moments(draw("xavier_uniform:gain=auto", act=act), expected * math.sqrt(2 / (FAN_IN + FAN_OUT)))


def test_explicit_gain_replaces_the_preset_gain():
    assert_moments(draw("he_normal:gain=1"), 1 / math.sqrt(FAN_IN))
    assert_moments(draw("xavier_normal:gain=3"), 3 * math.sqrt(2 / (FAN_IN + FAN_OUT)))
    assert_moments(draw("variance_scaling:scale=2,gain=2"), math.sqrt(8 / FAN_IN) / 1.0, rel=0.015)


def test_calculate_gain_is_pytorchs_table():
    assert calculate_gain("linear") == 1
    assert calculate_gain("conv2d") == 1
    assert calculate_gain("sigmoid") == 1
    assert calculate_gain("tanh") == 5 / 3
    assert calculate_gain("relu") == math.sqrt(2)
    assert calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / (1 + 0.2**2))
    assert calculate_gain("selu") == 3 / 4
    with pytest.raises(InitdiagError, match="no entry for 'gelu'"):
        calculate_gain("gelu")


def test_fans_dense_and_conv():
    assert compute_fans((784, 256)) == (784, 256)
    fans = compute_fans((64, 3, 5, 5))  # PyTorch conv weight (out, in, kh, kw)
    assert (fans.fan_in, fans.fan_out) == (3 * 25, 64 * 25)
    with pytest.raises(InitdiagError):
        compute_fans((10,))


@pytest.mark.parametrize("shape", [(300, 120), (120, 300), (200, 200)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal(shape, gain):
    w = draw(f"orthogonal:gain={gain}", shape=shape)
    if shape[0] >= shape[1]:
        np.testing.assert_allclose(w.T @ w, gain**2 * np.eye(shape[1]), atol=1e-12)
    if shape[0] <= shape[1]:
        np.testing.assert_allclose(w @ w.T, gain**2 * np.eye(shape[0]), atol=1e-12)


def test_orthogonal_sign_fix_makes_it_haar():
    # without the sign fix, diag(R) > 0 biases the first column; with it, the entries are centred
    firsts = np.array([draw("orthogonal", shape=(8, 8), seed=s)[0, 0] for s in range(2000)])
    assert abs(firsts.mean()) < 4 * firsts.std() / math.sqrt(firsts.size)


def test_orthogonal_gain_auto_and_conv_layout():
    w = draw("orthogonal:gain=auto", shape=(200, 100), act="tanh")
    np.testing.assert_allclose(w.T @ w, (5 / 3) ** 2 * np.eye(100), atol=1e-12)
    conv = draw("orthogonal", shape=(16, 3, 3, 3))  # rows = out_ch, cols = in*kh*kw = 27
    flat = conv.reshape(16, 27)
    np.testing.assert_allclose(flat @ flat.T, np.eye(16), atol=1e-12)


def test_identity_is_the_rectangular_eye():
    np.testing.assert_array_equal(draw("identity", shape=(3, 5)), np.eye(3, 5))
    np.testing.assert_array_equal(draw("identity:gain=2", shape=(5, 3)), 2 * np.eye(5, 3))


def test_torch_default_weights_and_bias():
    # nn.Linear: kaiming_uniform_(a=sqrt 5) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias the same
    fan_in, fan_out = 100, 100_000
    w = draw("torch_default", shape=(fan_in, 2000))
    bound = 1 / math.sqrt(fan_in)
    assert w.var() == pytest.approx(1 / (3 * fan_in), rel=0.01)
    assert np.abs(w).max() <= bound
    gain = math.sqrt(2 / (1 + 5))  # leaky_relu gain with a = sqrt 5
    assert gain * math.sqrt(3 / fan_in) == pytest.approx(bound)
    init = get_initializer("torch_default")
    bias_init = init.default_bias()
    ctx = LayerContext("d", (fan_out,), compute_fans((fan_in, fan_out)), get_activation("relu"))
    b = bias_init.sample(np.random.default_rng(1), ctx).astype(np.float64)
    assert b.var() == pytest.approx(1 / (3 * fan_in), rel=0.02)
    assert np.abs(b).max() <= bound


def test_framework_defaults():
    assert_moments(draw("keras_default"), math.sqrt(2 / (FAN_IN + FAN_OUT)))
    assert kurtosis(draw("keras_default")) == pytest.approx(1.8, abs=0.02)
    flax = draw("flax_default")
    assert_moments(flax, math.sqrt(1 / FAN_IN))
    assert np.abs(flax).max() < 2 / math.sqrt(FAN_IN) / TRUNCATED_NORMAL_STD
    assert str(get_initializer("keras_default").default_bias()) == "zeros"


def test_plain_distributions():
    assert_moments(draw("normal:0.02"), 0.02)
    assert_moments(draw("normal:std=0.5,mean=1"), 0.5, mean=1.0)
    w = draw("uniform:0.05")
    assert_moments(w, 0.05 / math.sqrt(3))
    assert w.min() >= -0.05 and w.max() < 0.05
    w = draw("uniform:low=0,high=2")
    assert_moments(w, 2 / math.sqrt(12), mean=1.0)
    t = draw("trunc_normal:0.1")
    assert_moments(t, 0.1)  # variance-corrected: the requested std is the std
    assert np.abs(t).max() < 0.2 / TRUNCATED_NORMAL_STD
    np.testing.assert_array_equal(draw("zeros"), 0)
    np.testing.assert_array_equal(draw("ones"), 1)
    np.testing.assert_array_equal(draw("constant:0.5"), 0.5)


def test_float32_sampling_keeps_dtype_and_statistics():
    w = draw("he_normal", dtype=np.float32)
    assert w.dtype == np.float32
    assert_moments(w.astype(np.float64), math.sqrt(2 / FAN_IN))


def test_each_draw_depends_only_on_its_generator():
    np.testing.assert_array_equal(draw("he", seed=3), draw("he", seed=3))
    assert not np.array_equal(draw("he", seed=3), draw("he", seed=4))


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("he", "he_normal"),
        ("kaiming_normal", "he_normal"),
        ("xavier", "xavier_uniform"),
        ("glorot", "xavier_uniform"),
        ("glorot_uniform", "xavier_uniform"),
        ("lecun", "lecun_normal"),
        ("he_uniform:mode=fan_out", "he_uniform:mode=fan_out"),
        ("HE_NORMAL:GAIN=AUTO", "he_normal:gain=auto"),
        ("normal:0.01", "normal:0.01"),
        ("uniform:a=0.05", "uniform:0.05"),
        ("constant:0.5", "constant:0.5"),
        (
            "variance_scaling:scale=2,mode=fan_avg,distribution=truncated_normal",
            "variance_scaling:scale=2,mode=fan_avg",
        ),
        ("variance_scaling:2", "variance_scaling:scale=2"),
        ("orthogonal:gain=2", "orthogonal:gain=2"),
        ("lsuv:tol=0.05", "lsuv:tol=0.05"),
        ("file:w.npz", "file:w.npz"),
    ],
)
def test_names_and_canonical_form(text, canonical, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez("w.npz", dense1=np.zeros((2, 2)))  # file: reads its file when it is named
    assert str(get_initializer(text)) == canonical
    assert str(get_initializer(canonical)) == canonical


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "lecun_normal"]),
    mode=st.sampled_from(["", "fan_in", "fan_out", "fan_avg"]),
    dist=st.sampled_from(["", "normal", "uniform", "truncated_normal"]),
    gain=st.one_of(st.just(""), st.just("auto"), st.floats(0.01, 10).map(lambda g: f"{g:.4g}")),
)
def test_canonical_form_round_trips(name, mode, dist, gain):
    args = [f"{k}={v}" for k, v in (("mode", mode), ("distribution", dist), ("gain", gain)) if v]
    text = name + (":" + ",".join(args) if args else "")
    init = get_initializer(text)
    again = get_initializer(str(init))
    assert again == init
    ctx = LayerContext("d", (50, 30), compute_fans((50, 30)), get_activation("tanh"))
    assert again.variance(ctx) == init.variance(ctx)


@pytest.mark.parametrize(
    "text, message",
    [
        ("hee", "unknown initializer 'hee'; did you mean 'he'?"),
        ("normal:-1", "std must be >= 0, got -1"),
        ("normal:abc", "std must be a number, got 'abc'"),
        ("normal", "normal needs a std"),
        ("uniform:low=1,high=0", "low must be below high, got low=1, high=0"),
        ("uniform:low=1", "uniform needs A"),
        ("he:mode=fan_middle", "mode must be one of fan_in, fan_out, fan_avg"),
        ("he:distribution=cauchy", "distribution must be one of normal, truncated_normal, uniform"),
        ("he:gain=-1", "gain must be > 0 or auto"),
        ("he:scale=2", "unknown key 'scale' for he; allowed: gain, mode, distribution"),
        ("he:0.5", "he takes no positional value"),
        ("zeros:1", "zeros takes no positional value"),
        ("normal:0.1,0.2", "only the first argument may be positional"),
        ("normal:std=nan", "std must be finite"),
        ("constant", "constant needs a value"),
        ("lsuv:tol=2", "tol must be in (0, 1)"),
        ("file:", "file: needs a path"),
        ("normal:", "nothing after ':'"),
    ],
)
def test_bad_initializers_are_one_clear_line(text, message):
    with pytest.raises(InitdiagError) as info:
        get_initializer(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_weight_only_initializers_are_refused_for_bias():
    for text in ("orthogonal", "identity", "lsuv", "file:w.npz"):
        with pytest.raises(InitdiagError, match="weight-only"):
            get_bias_initializer(text)
    assert str(get_bias_initializer("normal:0.1")) == "normal:0.1"


# --- framework names in --init: what PyTorch / Keras / JAX draw, in initdiag's terms ---------------------


@pytest.mark.parametrize(
    "text, canonical",
    [
        # PyTorch: kaiming_* are initdiag's (untruncated) he_*; a= and nonlinearity= give calculate_gain's gain
        ("kaiming_normal_", "he_normal"),
        ("torch.nn.init.kaiming_normal_:mode=fan_out,nonlinearity=relu", "he_normal:mode=fan_out"),
        ("kaiming_normal_:nonlinearity=tanh", "he_normal:gain=1.6666666666666667"),
        ("kaiming_normal_:a=0.2", f"he_normal:gain={math.sqrt(2 / 1.04)!r}"),
        ("nn.init.kaiming_uniform_:a=2.23606797749979", f"he_uniform:gain={math.sqrt(2 / 6)!r}"),
        ("torch.nn.init.xavier_uniform_:gain=2", "xavier_uniform:gain=2"),
        ("nn.init.orthogonal_", "orthogonal"),
        ("eye_", "identity"),
        ("zeros_", "zeros"),
        ("ones_", "ones"),
        ("constant_:val=0.1", "constant:0.1"),
        ("normal_:std=0.02", "normal:0.02"),
        ("normal_:std=0.02,mean=1", "normal:std=0.02,mean=1"),
        # uniform_(w, a, b) is U(a, b): a and b are bounds, not initdiag's half-width
        ("uniform_:a=-0.1,b=0.3", "uniform:low=-0.1,high=0.3"),
        # trunc_normal_'s a, b are absolute: at the default +-2 a std of 0.02 is never cut ...
        ("trunc_normal_:std=0.02", "normal:0.02"),
        # ... std 1 is cut at 2 std without correction (std 0.88) ...
        ("trunc_normal_:std=1", "trunc_normal:0.8796256610342398"),
        # ... and a cut at 2 std is initdiag's trunc_normal with the uncorrected std
        ("trunc_normal_:std=0.02,a=-0.04,b=0.04", "trunc_normal:0.017592513220684797"),
        ("trunc_normal_:std=0.02,mean=5,a=4.96,b=5.04", "trunc_normal:std=0.017592513220684797,mean=5"),
        # Keras: *Normal variance-scaling classes are truncated; HeUniform etc. are initdiag's
        ("tf.keras.initializers.HeNormal", "he_normal:distribution=truncated_normal"),
        ("HeNormal()", "he_normal:distribution=truncated_normal"),
        ("HeNormal:mode=fan_out", "he_normal:mode=fan_out,distribution=truncated_normal"),
        ("HeNormal:distribution=normal", "he_normal"),  # asked for in initdiag's terms: the plain normal
        ("keras.initializers.GlorotUniform", "xavier_uniform"),
        ("GlorotNormal", "xavier_normal:distribution=truncated_normal"),
        ("keras.initializers.lecun_normal", "lecun_normal:distribution=truncated_normal"),
        ("HeUniform", "he_uniform"),
        ("RandomNormal:stddev=0.02", "normal:0.02"),
        ("RandomUniform:minval=-0.1,maxval=0.1", "uniform:0.1"),
        ("TruncatedNormal:stddev=0.02", "trunc_normal:0.017592513220684797"),  # not std-corrected
        ("TruncatedNormal:stddev=0.02,mean=1", "trunc_normal:std=0.017592513220684797,mean=1"),
        ("VarianceScaling", "variance_scaling"),
        ("VarianceScaling:distribution=normal", "variance_scaling"),  # Keras: "normal" is truncated
        (
            "VarianceScaling:scale=2,distribution=untruncated_normal",
            "variance_scaling:scale=2,distribution=normal",
        ),
        ("Orthogonal:gain=2", "orthogonal:gain=2"),
        ("Identity", "identity"),
        ("Constant:0.3", "constant:0.3"),
        ("random_normal:stddev=0.1", "normal:0.1"),
        # JAX / Flax: *_normal are truncated; uniform(scale) is U(0, scale); orthogonal's scale is the gain
        ("jax.nn.initializers.lecun_normal", "lecun_normal:distribution=truncated_normal"),
        ("jax.nn.initializers.kaiming_normal", "he_normal:distribution=truncated_normal"),
        ("flax.linen.initializers.glorot_normal()", "xavier_normal:distribution=truncated_normal"),
        ("initializers.he_uniform", "he_uniform"),
        ("jax.nn.initializers.uniform:0.05", "uniform:low=0,high=0.05"),
        ("jax.nn.initializers.normal:0.01", "normal:0.01"),
        ("jax.nn.initializers.truncated_normal:0.02", "trunc_normal:0.017592513220684797"),
        ("jax.nn.initializers.truncated_normal:stddev=0.02,lower=-8,upper=8", "normal:0.02"),
        ("jax.nn.initializers.variance_scaling:distribution=normal", "variance_scaling:distribution=normal"),
        ("jax.nn.initializers.orthogonal:scale=2", "orthogonal:gain=2"),
        ("flax.linen.initializers.zeros_init()", "zeros"),
    ],
)
def test_framework_names(text, canonical):
    assert str(get_initializer(text)) == canonical


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "normal_:0.02",
            "'normal_:0.02': PyTorch's normal_(w, x) reads x as the mean: name it, e.g. std=0.02",
        ),
        (
            "normal_",
            "'normal_': normal_ needs a std here, e.g. normal_:std=0.02 (initdiag takes no default; "
            "PyTorch's is normal:1)",
        ),
        (
            "uniform_:b=0.1",
            "'uniform_:b=0.1': uniform_ needs both bounds here, e.g. uniform_:a=-0.05,b=0.05 "
            "(initdiag takes no default; PyTorch's is uniform:low=0,high=1)",
        ),
        (
            "trunc_normal_:std=0.5",
            "'trunc_normal_:std=0.5': a normal cut at -4 and 4 std has no initdiag equivalent: trunc_normal "
            "cuts at exactly 2 std, and a cut 6 or more std away is no cut (normal)",
        ),
        (
            "kaiming_normal_:0.2",
            "'kaiming_normal_:0.2': PyTorch's kaiming_normal_(w, x) reads x as the leaky_relu slope a: "
            "name it, e.g. a=0.2",
        ),
        ("kaiming_normal_:a=0.2,gain=2", "give gain or PyTorch's a/nonlinearity, not both"),
        ("kaiming_normal_:nonlinearity=gelu", "nonlinearity must be one of PyTorch's calculate_gain names"),
        (
            "RandomNormal",
            "'RandomNormal': RandomNormal needs a std here, e.g. RandomNormal:stddev=0.05 (initdiag takes no "
            "default; Keras's is normal:0.05)",
        ),
        ("RandomNormal:0.05", "Keras's RandomNormal(x) reads x as the mean: name it, e.g. stddev=0.05"),
        ("RandomNormal:std=0.1,stddev=0.2", "stddev and std are the same argument; give one"),
        (
            "jax.nn.initializers.uniform",
            "'jax.nn.initializers.uniform': uniform needs the scale here, e.g. jax.nn.initializers.uniform:0.01 "
            "(initdiag takes no default; JAX's is uniform:low=0,high=0.01)",
        ),
        ("HeNormal:0.5", "HeNormal takes no positional value; keys: gain, mode, distribution"),
        ("HeNormal:seed=1", "unknown key 'seed' for HeNormal; allowed: gain, mode, distribution"),
        ("tf.keras.initializers.HeNormall", "did you mean 'tf.keras.initializers.HeNormal'?"),
        ("keras.initializers.STFTInitializer", "has no initdiag equivalent: Keras's STFTInitializer"),
        ("delta_orthogonal", "has no initdiag equivalent: JAX's delta_orthogonal"),
    ],
)
def test_framework_name_mistakes_are_one_clear_line(text, message):
    with pytest.raises(InitdiagError) as info:
        get_initializer(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_keras_and_jax_normals_are_truncated_and_initdiags_he_normal_is_not():
    bound = 2 / TRUNCATED_NORMAL_STD * math.sqrt(2 / FAN_IN)  # 2.2737 * sqrt(2/fan_in)
    for text in ("tf.keras.initializers.HeNormal", "HeNormal()", "jax.nn.initializers.he_normal"):
        w = draw(text)
        assert np.abs(w).max() < bound, text
        assert_moments(w, math.sqrt(2 / FAN_IN))
    for text in ("he_normal", "torch.nn.init.kaiming_normal_", "kaiming_normal_"):
        w = draw(text)
        assert np.abs(w).max() > bound, text  # untruncated: ~4.6% beyond 2.27 std
        assert_moments(w, math.sqrt(2 / FAN_IN))
        assert kurtosis(w) == pytest.approx(3.0, abs=0.05)
    # initdiag's own names keep their meaning: truncated_normal:S has std S, TruncatedNormal:stddev=S not
    assert str(get_initializer("truncated_normal:0.02")) == "trunc_normal:0.02"
    assert str(get_initializer("TruncatedNormal:stddev=0.02")) == "trunc_normal:0.017592513220684797"


def test_framework_plain_distributions_draw_what_the_framework_draws():
    # PyTorch trunc_normal_(std=1): N(0, 1) cut at +-2 absolute, not corrected: std 0.8796
    w = draw("trunc_normal_:std=1")
    assert np.abs(w).max() < 2.0
    assert_moments(w, TRUNCATED_NORMAL_STD)
    # Keras TruncatedNormal(stddev=0.05): cut at 2 stddev, std 0.8796 * 0.05
    w = draw("TruncatedNormal:stddev=0.05")
    assert np.abs(w).max() < 0.1
    assert_moments(w, 0.05 * TRUNCATED_NORMAL_STD)
    # JAX uniform(0.05): U(0, 0.05), all positive, mean 0.025
    w = draw("jax.nn.initializers.uniform:0.05")
    assert w.min() >= 0 and w.max() < 0.05
    assert_moments(w, 0.05 / math.sqrt(12), mean=0.025)
    # PyTorch uniform_(a=-0.1, b=0.3): U(-0.1, 0.3)
    w = draw("uniform_:a=-0.1,b=0.3")
    assert w.min() >= -0.1 and w.max() < 0.3
    assert_moments(w, 0.4 / math.sqrt(12), mean=0.1)
    # nn.Linear's default weight is kaiming_uniform_(a=sqrt(5)): torch_default's variance
    ctx = LayerContext("dense1", (FAN_IN, FAN_OUT), compute_fans((FAN_IN, FAN_OUT)), get_activation("relu"))
    linear = get_initializer(f"kaiming_uniform_:a={math.sqrt(5)!r}")
    assert linear.variance(ctx) == pytest.approx(get_initializer("torch_default").variance(ctx), rel=1e-12)
