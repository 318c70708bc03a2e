"""Verdict semantics: places where initdiag said "ok" (or contradicted itself) on broken networks.
Each test compares against an independent truth (a closed form, a brute-force count, a hand
computation) and failed before the change it pins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rich.console import Console
from rich.style import Style
from typer.testing import CliRunner

import initdiag
from initdiag.cli import app
from initdiag.core import ops
from initdiag.errors import InitdiagError
from initdiag.network.kinds import LayerSpec
from initdiag.network.settings import ProbeSettings
from initdiag.network.stack import StackSpec
from initdiag.render.common import FLAG_STYLES, NOTE_STYLE, OFF_THEORY_STYLE, WARN_STYLE
from initdiag.render.probe import probe_table, title

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _spec(input_shape, *layers, init="he_normal"):
    return StackSpec(tuple(input_shape), tuple(layers), init=init).resolve()


# --- 1. the first layer's absolute scale --------------------------------------------------------------


def test_the_first_layers_scale_is_judged_against_the_data():
    """784 -> 10 with N(0, 100^2) weights: every gain is a ratio to dense1 (1), but dense1 multiplies
    the data's E[x^2] by fan_in * Var(W) = 784e4 (closed form; ten columns of 784 draws: within 10%)."""
    r = initdiag.probe("784,10", init="normal:100", loss="xent")
    dense = r.layers[0]
    assert dense.forward_gain == 1.0
    assert dense.data_gain == pytest.approx(784 * 100.0**2, rel=0.1)
    assert r.summary.verdict == "fail" and dense.flag_sources == {"exploding": ["fwd"]}
    # 1/sqrt(784) = 0.0357; 100 / 0.0357 = 2.8e3
    assert r.summary.reasons == [
        f"layer dense1 multiplies the data's E[x^2] by {initdiag.analysis.result.format_number(dense.data_gain)} "
        "(exploding: > 100): its weights' std 100 is 2.8e+3x the 1/sqrt(fan_in) = 0.0357 that keeps the scale"
    ]
    assert r.to_dict()["layers"][0]["data_gain"] == dense.data_gain


SPEC = """
name = "randn-first"
input_shape = [784]
[defaults]
act = "relu"
init = "he_normal"
[probe]
loss = "xent"
[[layers]]
units = 256
init = "normal:1"
[[layers]]
units = 256
[[layers]]
units = 10
act = "linear"
"""


def test_a_plain_randn_first_layer_fails_probe_and_check(tmp_path):
    """The review's spec: z std 28 (E[z^2] = 784 E[x^2], closed form) and logits std 24 were ok."""
    path = tmp_path / "randn.toml"
    path.write_text(SPEC)
    result = run("probe", "--config", path, "--format", "json")
    import json

    data = json.loads(result.stdout)
    dense1 = data["layers"][0]
    assert dense1["data_gain"] == pytest.approx(784, rel=0.05)
    assert math.sqrt(dense1["preact_var"]) == pytest.approx(28, rel=0.05)
    assert data["summary"]["verdict"] == "fail" and dense1["flag_sources"] == {"exploding": ["fwd"]}
    assert [x["data_gain"] for x in data["layers"][1:]] == [None, None]
    checked = run("check", path)
    assert checked.exit_code == 1, checked.output


@pytest.mark.parametrize(
    ("init", "act", "expected"),
    [("he", "relu", 2.0), ("xavier", "tanh", 2 * 784 / (784 + 256)), ("lecun", "selu", 1.0)],
)
def test_variance_preserving_first_layers_stay_ok(init, act, expected):
    """He: E[z^2] = 2 E[x^2]; Xavier: fan_in * 2/(fan_in + fan_out); LeCun: 1 (closed forms)."""
    r = initdiag.probe("784,256,256,10", init=init, act=act)
    assert r.layers[0].data_gain == pytest.approx(expected, rel=0.05)
    assert "exploding" not in r.layers[0].flags and "vanishing" not in r.layers[0].flags
    assert not any("data's" in reason for reason in r.summary.reasons)


def test_a_first_conv_and_a_dense_after_flatten_take_the_data():
    """conv 3x3 on 3 channels with N(0, 1) weights: fan_in 27 (closed form); after a flatten, the
    dense layer is the one that takes the data (its dL/dx is the data's gradient, not judged)."""
    conv = _spec((3, 16, 16), LayerSpec(kind="conv2d", channels=16, init="normal:3", padding="same"),
                 LayerSpec(kind="flatten"), LayerSpec(units=10))  # fmt: skip
    r = initdiag.run_probe(conv, ProbeSettings(batch=64))
    # the padding's zeros: of the 16x16 outputs, the border sees fewer inputs (14x14 see 9, 56 see 6, 4 see 4)
    seen = (14 * 14 * 9 + 56 * 6 + 4 * 4) / (16 * 16 * 9)
    assert r.layers[0].data_gain == pytest.approx(9 * 27 * seen, rel=0.1)
    assert "exploding" in r.layers[0].flags  # 216 > T^2 = 100
    flat = _spec((64,), LayerSpec(kind="flatten"), LayerSpec(units=64, init="normal:1"), LayerSpec(units=10))
    r = initdiag.run_probe(flat, ProbeSettings())
    assert r.layers[1].data_gain == pytest.approx(64, rel=0.1)
    assert r.layers[1].gain_judged == (True, False)  # its dL/dx is the data's gradient


def test_the_data_gain_band_is_t_squared():
    """A Glorot conv stem on 3 channels keeps 0.09 of E[x^2] (27 * 2 / (27 + 576)): an init choice, not
    a mistake; N(0, 1) on 64 inputs multiplies it by 64 (under 100): a warning at most."""
    stem = _spec((3, 16, 16), LayerSpec(kind="conv2d", channels=64, init="xavier_normal", padding="same"),
                 LayerSpec(kind="flatten"), LayerSpec(units=10))  # fmt: skip
    r = initdiag.run_probe(stem, ProbeSettings(batch=32))
    assert r.layers[0].data_gain == pytest.approx(2 * 27 / (27 + 576) * 0.89, rel=0.15)
    assert not {"vanishing", "exploding"} & set(r.layers[0].flags)
    r = initdiag.probe("64,64,10", init="normal:1")
    assert r.layers[0].data_gain == pytest.approx(64, rel=0.15) and "exploding" not in r.layers[0].flags


def test_a_scale_a_norm_erases_is_not_judged_from_the_data():
    r = initdiag.probe("64,64,10", init="normal:100", norm="batch")
    assert r.layers[0].data_gain == pytest.approx(64e4, rel=0.2)
    assert "exploding" not in r.layers[0].flags  # bn1 erases it


def test_the_torch_path_judges_the_first_layer_against_the_data():
    torch = pytest.importorskip("torch")
    from initdiag.torch import probe_module

    net = torch.nn.Sequential(torch.nn.Linear(256, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    r = probe_module(net, "256", init="normal:1", batch=64)
    assert r.layers[0].data_gain == pytest.approx(256, rel=0.1)  # fan_in * 1 > T^2 = 100
    assert "exploding" in r.layers[0].flags and r.summary.verdict == "fail"
    assert probe_module(net, "256", init="he", batch=64).summary.verdict == "ok"


# --- 2. units that differ only by their bias ----------------------------------------------------------


def test_constant_weights_with_a_random_bias_are_symmetric():
    """Every column of W is the same, so x @ W has one distinct column (brute force below); the bias
    shifts them apart, which the count used to take for broken symmetry."""
    r = initdiag.probe("64,64,64,10", act="tanh", init="constant:0.02", bias_init="normal:0.5")
    x = np.random.default_rng(0).standard_normal((256, 64))
    W = np.full((64, 64), 0.02)
    assert len(np.unique(x @ W, axis=1)[0]) == 1
    assert [layer.distinct_units for layer in r.layers] == [1, 1, 1]
    assert r.summary.verdict == "fail" and all("symmetric" in layer.flags for layer in r.layers)
    assert r.summary.reasons[0] == (
        "layer dense1: 1 distinct unit of 64 (symmetric): units whose incoming weights are equal differ "
        "only by their bias; 2 more layers too"
    )


def test_random_weights_with_a_random_bias_are_not_symmetric():
    r = initdiag.probe("64,64,64,10", act="tanh", init="xavier", bias_init="normal:0.5")
    assert [layer.distinct_units for layer in r.layers] == [64, 64, 10]


def test_equal_filters_with_a_random_bias_are_one_channel():
    spec = _spec((3, 8, 8), LayerSpec(kind="conv2d", channels=8, init="constant:0.1", bias_init="normal:1"),
                 LayerSpec(kind="flatten"), LayerSpec(units=4))  # fmt: skip
    r = initdiag.run_probe(spec, ProbeSettings(batch=16))
    assert r.layers[0].distinct_units == 1 and "symmetric" in r.layers[0].flags


def test_the_torch_path_counts_units_without_their_bias():
    torch = pytest.importorskip("torch")
    from initdiag.torch import probe_module

    net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    r = probe_module(net, "16", init="constant:0.02", bias_init="normal:0.5", batch=32)
    assert [x.distinct_units for x in r.layers if x.kind == "dense"] == [1, 1]
    assert "symmetric" in r.summary.flags
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 36, 4))
    r = probe_module(conv, "3x8x8", init="constant:0.1", bias_init="normal:1", batch=8)
    assert r.layers[0].distinct_units == 1


# --- 3. every trial is judged ---------------------------------------------------------------------


def test_a_failing_trial_is_not_averaged_away():
    """Trial 1 of a 3-trial probe is the single probe of the same seed (its streams are (seed, 0)):
    that probe fails, so the 3-trial one must, naming the trial, although the means would pass."""
    single = initdiag.probe("8,4,4,1", init="he", seed=10)
    assert single.summary.verdict == "fail"
    three = initdiag.probe("8,4,4,1", init="he", seed=10, trials=3)
    assert three.summary.trial_verdicts[0] == "fail" and three.summary.verdict == "fail"
    assert "in trial 1 of 3: layer dense3: forward gain 11.5 > 10 (exploding)" in three.summary.reasons
    assert "the means over the 3 trials, which the table shows, would give ok" in three.summary.notes[-1]
    dense3 = three.layers[2]
    assert dense3.forward_gain < 10 and "exploding" in dense3.flags and dense3.flag_trials["exploding"] == [1]
    assert three.to_dict()["summary"]["trial_verdicts"] == three.summary.trial_verdicts


def test_a_vanishing_trial_with_a_random_bias():
    single = initdiag.probe("16,8,8,8,1", init="he", bias_init="normal:0.5", seed=28)
    three = initdiag.probe("16,8,8,8,1", init="he", bias_init="normal:0.5", seed=28, trials=3)
    assert single.summary.verdict == "fail" and three.summary.verdict == "fail"
    assert any(reason.startswith("in ") and "0.0258 < 1/10" in reason for reason in three.summary.reasons)


def test_dead_in_most_trials_is_flagged_though_the_mean_is_not_over_the_limit():
    r = initdiag.probe("4,3,3,1", init="normal:0.1", bias_init="normal:1", trials=6)
    dense2 = r.layers[1]
    assert dense2.dead_fraction <= 0.5 and "dead" in dense2.flags  # the mean alone: no flag
    assert 1 <= len(dense2.flag_trials.get("dead", [1, 2, 3, 4, 5, 6])) <= 6
    assert any("of units dead" in reason and "trials" in reason for reason in r.summary.reasons)


def test_the_torch_path_judges_every_trial_as_the_spec_probe_does():
    """A module built from the spec and re-drawn from the same streams: the same trial verdicts."""
    pytest.importorskip("torch")
    from initdiag.adapters.torch_build import build_module
    from initdiag.network.shorthand import parse_layers
    from initdiag.torch import probe_module

    stack = parse_layers("8,4,4,1", init="he")
    spec = initdiag.probe(stack, seed=10, trials=3, batch=64)
    module, streams = build_module(stack, batch=64, seed=10, dtype="float32")
    ours = probe_module(module, "8", init="he_normal", seed=10, trials=3, batch=64, row_streams=streams)
    assert ours.summary.trial_verdicts == spec.summary.trial_verdicts
    assert ours.summary.verdict == spec.summary.verdict == max(spec.summary.trial_verdicts,
                                                               key=("ok", "warn", "fail").index)  # fmt: skip


# --- 4. the theory line describes this stack at this depth -----------------------------------------


def test_the_theory_line_predicts_this_stacks_backward_factor():
    """256x20 tanh with Xavier: critical at its fixed point q* = 0, which 20 layers do not reach; the
    line's factor is the ∂x th column's (by construction) and within the theory tests' 10% in std
    of the measured backward gain."""
    r = initdiag.probe("256,256x20,10", act="tanh", init="xavier")
    theory = r.summary.theory
    at = r.layers[1]
    assert theory["backward_factor_at"] == at.name == r.summary.backward_gain_at
    column = at.theory_grad_input_var / r.layers[-1].theory_grad_input_var
    assert theory["backward_factor"] == pytest.approx(column, rel=1e-12)
    assert 0.9 < math.sqrt(r.summary.backward_gain / theory["backward_factor"]) < 1.1
    assert theory["backward_factor"] < 0.1 and "vanishing" in at.flags  # and they agree on what it means
    assert theory["words"].startswith(
        "from dense21 back to dense2 (19 layers) the gradient's E[x^2] is predicted to shrink to "
    )
    assert (
        "deeper stacks of these layers: q collapses to 0, where chi tends to chi_1 = 1 (critical"
        in (theory["words"])
    )
    assert theory["phase"] == "critical" and theory["chi_1"] == pytest.approx(1.0)


def test_a_critical_relu_stack_keeps_its_gradient_in_the_line():
    r = initdiag.probe("256,256x6,10", act="relu", init="he")
    assert r.summary.theory["backward_factor"] == pytest.approx(1.0, rel=1e-12)  # chi = 2 * 1/2 per layer
    assert "is predicted to keep its size" in r.summary.theory["words"]


# --- 5. batch norm over a handful of values ----------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 8])
def test_batch_norm_passes_back_n_minus_2_over_n_of_the_gradient(n):
    """The closed form in the warning: the gradient through a batch norm over n values loses the two
    directions it normalizes away (mean and scale), so E|dx|^2 var = (n - 2)/n E|dy|^2 on average."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 20000))
    _, cache = ops.batchnorm_forward(x, np.ones(20000), np.zeros(20000), 0.0)
    dy = rng.standard_normal((n, 20000))
    dx, _, _ = ops.batchnorm_backward(dy, cache)
    passed = np.mean(dx**2 * x.var(axis=0)) / np.mean(dy**2)
    assert passed == pytest.approx((n - 2) / n, rel=0.03)


def test_batch_norm_at_a_tiny_batch_is_never_ok():
    two = initdiag.probe("64,64,10", norm="batch", batch=2)
    assert two.summary.verdict == "fail" and two.layers[0].gradient_stop == "bn1"
    assert two.layers[0].flag_sources == {"vanishing": ["no-grad"]}
    assert "batch norm bn1 normalizes each feature over 2 values" in two.summary.reasons[0]
    four = initdiag.probe("64,64,10", norm="batch", batch=4)
    assert four.summary.verdict == "warn"
    assert four.summary.reasons[0] == (
        "layer bn1: batch norm normalizes each channel over only 4 values (batch 4 x 1 position): its "
        "statistics are noisy and it passes back about (n-2)/n = 50% of the gradient; a batch of 16 or "
        "more gives it 16 values"
    )
    assert initdiag.probe("64,64,10", norm="batch", batch=16).summary.verdict == "ok"


def test_a_conv_batch_norm_counts_its_positions_and_a_layer_norm_over_two_blocks():
    spec = _spec((3, 2, 2), LayerSpec(kind="conv2d", channels=4, padding="same"), LayerSpec(kind="batchnorm"),
                 LayerSpec(kind="flatten"), LayerSpec(units=2))  # fmt: skip
    r = initdiag.run_probe(spec, ProbeSettings(batch=2))
    assert r.summary.verdict == "warn"  # 2 samples x 4 positions = 8 values
    assert (
        "(batch 2 x 4 positions)" in r.summary.reasons[0] and "a batch of 4 or more" in r.summary.reasons[0]
    )
    ln = initdiag.probe("4,2,2,1", norm="layer")
    assert ln.summary.verdict == "fail" and ln.layers[0].gradient_stop == "ln1"
    assert "layer norm ln1 normalizes over 2 values per sample" in ln.summary.reasons[0]


def test_the_torch_path_blocks_behind_a_batch_norm_over_two():
    torch = pytest.importorskip("torch")
    from initdiag.torch import probe_module

    net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 4))  # fmt: skip
    r = probe_module(net, "16", init="he", batch=2)
    assert r.summary.verdict == "fail" and r.layers[0].gradient_stop == "1"
    assert probe_module(net, "16", init="he", batch=4).summary.verdict == "warn"


# --- 6. a residual branch of fixed scale 0 ----------------------------------------------------------


def test_a_zero_residual_scale_is_named_as_the_cause():
    r = initdiag.probe("256,256x4,10", residual=True, residual_scale=0.0)
    stopped = [x for x in r.layers if x.gradient_stop is not None]
    assert {x.name: x.gradient_stop for x in stopped} == {f"res{k}.dense1": f"res{k}" for k in range(1, 5)}
    assert r.summary.reasons[0].startswith(
        "no gradient reaches layer res1.dense1 (dL/dW = 0 everywhere): the branch of res1 is multiplied by "
        "its fixed residual scale 0"
    )
    small = initdiag.probe("256,256x4,10", residual=True, residual_scale=0.1)
    assert not any(x.gradient_stop for x in small.layers)


# --- 7. nothing to diagnose ---------------------------------------------------------------------------


def test_a_stack_without_a_weighted_layer_is_refused(tmp_path):
    path = tmp_path / "flat.toml"
    path.write_text('input_shape = [784]\n\n[[layers]]\nkind = "flatten"\n')
    result = run("probe", "--config", path)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("initdiag: error: ")
    assert lines[0].endswith(
        "nothing to diagnose: the stack has no layer with weights (dense, conv2d, embedding, attention, mlp, "
        "transformer, unembedding)"
    )
    assert run("check", path).exit_code == 2
    with pytest.raises(InitdiagError, match="nothing to diagnose"):
        initdiag.run_probe(_spec((784,), LayerSpec(kind="flatten")), ProbeSettings())


def test_a_model_without_a_weighted_module_is_refused():
    torch = pytest.importorskip("torch")
    from initdiag.torch import probe_module

    with pytest.raises(InitdiagError, match="nothing to diagnose: the model has no dense or conv layer"):
        probe_module(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.ReLU()), "8", batch=4)


def _conv_only():
    return _spec((3, 8, 8), LayerSpec(kind="conv2d", channels=4, act="linear"))


@pytest.mark.parametrize(
    "probe",
    [
        lambda: initdiag.probe("784,10"),
        lambda: initdiag.probe("784,256x30,10"),
        lambda: initdiag.probe("64,64,10", norm="batch"),
        lambda: initdiag.run_probe(_conv_only(), ProbeSettings(batch=4)),
    ],
)
def test_one_header_form_with_no_empty_field(probe):
    import re

    text = title(probe())
    assert re.match(r"^[0-9×]+ → .*[0-9×]+ \(\d+ layers?\) · ", text), text
    assert "·  ·" not in text and " 1 layers" not in text


# --- 8. what the table shows --------------------------------------------------------------------------


def test_w_rms_is_a_size_not_a_spread():
    """A norm row's gamma is 1 (std 0), one weight has std 0, constant weights have std 0: W rms
    shows their size. dL/dW of constant weights into constant weights is uniform (std 0, not 0): the
    table shows its root-mean-square, ||dW|| / sqrt(N) = grad_weight_ratio * W rms (an identity)."""
    bn = initdiag.probe("64,64,10", norm="batch").layers[1]
    assert bn.weight_std == 0 and bn.weight_rms == 1.0
    one = initdiag.probe("1,1").layers[0]
    assert one.weight_std == 0 and one.weight_rms > 0
    r = initdiag.probe("64,64,64,10", act="tanh", init="constant:0.01")
    dense2 = r.layers[1]
    assert dense2.weight_rms == pytest.approx(0.01, rel=1e-6)
    assert dense2.grad_weight_var == pytest.approx(0, abs=1e-20) and dense2.grad_weight_rms > 0
    assert dense2.grad_weight_rms == pytest.approx(dense2.grad_weight_ratio * dense2.weight_rms, rel=1e-6)
    header = run("probe", "--layers", "64,64,10").stdout.splitlines()[2]
    assert "W rms" in header and "∂W rms" in header and "W std" not in header


def test_the_theory_line_says_when_its_columns_are_hidden():
    narrow = runner.invoke(app, ["probe", "--layers", "784,256,256,10"], env={"COLUMNS": "100"})
    assert "z th" not in narrow.stdout.splitlines()[2]
    assert "theory (mean field; its th columns are hidden to fit the terminal):" in narrow.stdout
    wide = run("probe", "--layers", "784,256,256,10")
    assert "theory (th columns, mean field):" in wide.stdout


def test_every_meaning_has_its_own_basic_colour_and_a_legend():
    styles = [*FLAG_STYLES.values(), WARN_STYLE, OFF_THEORY_STYLE, NOTE_STYLE]
    assert len(set(styles)) == len(styles)
    for style in styles:  # the 8 standard colours only: a 256-colour orange is drawn red on 16 colours
        parsed = Style.parse(style)
        for colour in (parsed.color, parsed.bgcolor):
            assert colour is None or colour.number is None or colour.number < 16, style
    result = initdiag.probe("784,256,256,10", act="sigmoid", init="normal:10")
    console = Console(width=250, force_terminal=True, color_system="standard")
    with console.capture() as captured:
        console.print(probe_table(result))
    legend = [line for line in captured.get().splitlines() if "colours:" in line]
    assert legend and "exploding" in legend[0] and "saturated" in legend[0]
