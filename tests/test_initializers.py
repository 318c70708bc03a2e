"""Initializers against closed forms written out here from the PyTorch / Keras / JAX docs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from initdiag.activations import calculate_gain, get_activation
from initdiag.errors import InitdiagError
from initdiag.initializers import (
    TRUNCATED_NORMAL_STD,
    LayerContext,
    compute_fans,
    get_bias_initializer,
    get_initializer,
)

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
def test_names_and_canonical_form(text, canonical):
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
