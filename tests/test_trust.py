"""Verdicts that never mislead: the cases where a diagnostics tool is most tempted to say "ok" (or to
blame the network) wrongly. Each test failed before the behaviour it pins was fixed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

import initdiag
from initdiag.cli import app
from initdiag.errors import InitdiagError
from initdiag.network.kinds import LayerSpec
from initdiag.network.settings import ProbeSettings
from initdiag.network.stack import StackSpec

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- no gradient, no signal -------------------------------------------------------------------------


def test_hidden_layers_that_get_no_gradient_fail_whatever_the_bias_does():
    """Zero weights with a random bias: every unit differs (the bias breaks the symmetry of z), but
    dense3's zero weights pass no gradient back, so dense1 and dense2 never learn at this point."""
    r = initdiag.probe("784,256,256,10", act="tanh", init="zeros", bias_init="normal:0.1")
    assert r.summary.verdict == "fail"
    assert [x.name for x in r.layers if "vanishing" in x.flags] == ["dense1", "dense2"]
    assert r.layers[0].gradient_stop == "dense3" and r.layers[2].gradient_stop is None
    assert r.summary.reasons[0] == (
        "no gradient reaches layer dense1 (dL/dW = 0 everywhere): the gradient stops at layer dense3, "
        "whose dL/dx is 0; 1 more layer too"
    )
    result = run("probe", "--layers", "784,256,256,10", "--act", "tanh", "--init", "zeros",
                 "--bias-init", "normal:0.1", "--fail-on", "any")  # fmt: skip
    assert result.exit_code == 1, result.output


def test_a_layer_whose_units_are_all_dead_stops_the_gradient_there():
    spec = StackSpec(
        (64,), (LayerSpec(units=64), LayerSpec(units=64, bias_init="constant:-100"), LayerSpec(units=10))
    )
    r = initdiag.run_probe(spec.resolve(), ProbeSettings())
    dense1, dense2 = r.layers[0], r.layers[1]
    assert dense2.dead_fraction == 1.0 and {"dead", "vanishing"} <= set(dense2.flags)
    assert dense2.gradient_stop == "dense2" and dense1.gradient_stop == "dense2"
    assert "the gradient stops at layer dense2, whose dL/dx is 0" in r.summary.reasons[0]


def test_zero_weights_and_biases_pass_no_signal():
    r = initdiag.probe("64,32,10", init="zeros")
    assert r.layers[0].silent and "vanishing" in r.layers[0].flags
    assert r.summary.reasons[0].startswith("layer dense1: z is 0 for every input, so no signal passes it")


def test_a_single_layer_from_zeros_gets_a_gradient_but_passes_no_data():
    """Logistic regression from zero weights trains: its weights get a gradient, so it is not blamed
    for a stopped gradient. But at this point its output is its bias whatever the data (z = b: the
    data's E[x^2] is multiplied by 0, vanishing(fwd)), and its units differ only by their bias."""
    r = initdiag.probe("64,10", init="zeros", bias_init="normal:0.1", act="linear")
    assert r.layers[0].gradient_stop is None and not r.layers[0].silent
    assert r.layers[0].flag_sources == {"vanishing": ["fwd"]}
    dense = r.layers[0]  # E[z^2] / E[x^2], and E[x^2] of 256 x 64 standard normals is 1 within 2%
    assert dense.data_gain == pytest.approx(dense.preact_var + dense.preact_mean**2, rel=0.02)
    assert dense.data_gain < 0.1


# --- gains restart at normalization layers -------------------------------------------------------


def _bn_mlp(hidden_init: str) -> StackSpec:
    layers = []
    for _ in range(4):
        layers += [LayerSpec(units=256, init=hidden_init), LayerSpec(kind="batchnorm")]
    layers.append(LayerSpec(units=10, init="he_normal"))
    return StackSpec((256,), tuple(layers)).resolve()


def test_a_scale_that_a_norm_erases_decides_nothing():
    """Rescaling every layer that a batch norm follows (x100 in std) leaves every judged gain, forward
    and backward, where it was: the norm divides it out forward, and its backward pass divides the
    gradient by the same std, so the product through the layer and its norm does not change."""
    small, large = (
        initdiag.run_probe(_bn_mlp(init), ProbeSettings()) for init in ("normal:0.01", "normal:1")
    )
    for a, b in zip(small.layers, large.layers, strict=True):
        assert a.gain_judged == b.gain_judged
        if a.gain_judged[0]:
            assert a.forward_gain == pytest.approx(b.forward_gain, rel=1e-3), a.name
        if a.gain_judged[1]:
            assert a.backward_gain == pytest.approx(b.backward_gain, rel=1e-3), a.name
        assert a.flags == b.flags, a.name
    assert small.summary.verdict == large.summary.verdict
    assert small.summary.forward_gain_from == "bn4"
    # the hidden layers' own x10^4 in E[z^2] is there to see, but not judged
    assert large.layers[2].forward_gain / small.layers[2].forward_gain == pytest.approx(1e4, rel=1e-3)
    assert not large.layers[2].gain_judged[0]


RESNET = """
name = "resnet-like"
input_shape = [3, 16, 16]
[defaults]
act = "relu"
init = "he_normal:mode=fan_out"
[[layers]]
kind = "conv2d"
channels = 16
name = "stem"
init = "{stem}"
[[layers]]
kind = "batchnorm"
[[layers]]
kind = "residual"
repeat = 3
  [[layers.layers]]
  kind = "conv2d"
  channels = 16
  [[layers.layers]]
  kind = "batchnorm"
  [[layers.layers]]
  kind = "conv2d"
  channels = 16
  [[layers.layers]]
  kind = "batchnorm"
  act = "linear"
[[layers]]
kind = "activation"
[[layers]]
kind = "global_avgpool"
[[layers]]
units = 10
[probe]
batch = 16
theory = false
"""


@pytest.mark.parametrize("stem", ["normal:1", "normal:0.01"])
def test_the_first_convs_init_changes_nothing_after_the_first_norm(tmp_path, stem):
    """The issue's ResNet: changing only the stem's init left every row after bn1 identical, yet the
    final forward gain read 0.95, 68 or 9.5e3 and a textbook ResNet was flagged exploding."""
    results = []
    for init in ("he_normal:mode=fan_out", stem):
        path = tmp_path / "resnet.toml"
        path.write_text(RESNET.replace("{stem}", init))
        results.append(run("probe", "-c", path, "-f", "json"))
    import json

    base, other = (json.loads(r.stdout) for r in results)
    # (to 1%: batch norm's eps = 1e-5 is 0.4% of the variance of the N(0, 0.01^2) stem's output)
    for a, b in zip(base["layers"][1:], other["layers"][1:], strict=True):  # bn1 onwards
        assert a["forward_gain"] == pytest.approx(b["forward_gain"], rel=1e-2), a["name"]
        assert a["flags"] == b["flags"], a["name"]
    assert base["summary"]["forward_gain"] == pytest.approx(other["summary"]["forward_gain"], rel=1e-2)
    for key in ("verdict", "flags", "forward_gain_from"):
        assert base["summary"][key] == other["summary"][key]
    assert base["summary"]["forward_gain_from"] == "res3.bn2"


def test_the_gradient_of_the_data_is_not_judged():
    """RGB input: a fan_in He conv from 3 channels has a large dL/dx (27 inputs, 576 outputs per
    position), which trains nothing; only the gradients that reach weights are judged."""
    spec = StackSpec(
        (3, 8, 8), (LayerSpec(kind="conv2d", channels=64), LayerSpec(kind="flatten"), LayerSpec(units=10))
    ).resolve()
    r = initdiag.run_probe(spec, ProbeSettings())
    assert r.layers[0].backward_gain > 10 and r.layers[0].gain_judged == (True, False)
    assert "exploding" not in r.layers[0].flags


# --- degenerate batches and inputs ----------------------------------------------------------------


def test_batch_norm_needs_a_batch_of_two():
    with pytest.raises(InitdiagError, match="layer bn1: batch norm needs a batch of at least 2"):
        initdiag.probe("20,20,2", norm="batch", batch=1)
    result = run("probe", "--layers", "20,20,2", "--norm", "batch", "--batch", "1")
    assert result.exit_code == 2 and "batch norm needs a batch of at least 2" in result.stderr
    # a conv batch norm of one image has H x W values per channel: fine, as in PyTorch
    spec = StackSpec((3, 4, 4), (LayerSpec(kind="conv2d", channels=4), LayerSpec(kind="batchnorm"),
                                 LayerSpec(kind="flatten"), LayerSpec(units=2)))  # fmt: skip
    assert initdiag.run_probe(spec.resolve(), ProbeSettings(batch=1)).layers[1].preact_var == pytest.approx(
        1, 1e-3
    )


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_a_tiny_batch_does_not_call_live_units_dead(batch):
    r = initdiag.probe("64,256,256,10", batch=batch)
    assert r.layers[0].dead_fraction > 2.0**-batch / 4  # a live unit looks dead on n values w.p. 2^-n
    assert "dead" not in r.summary.flags and not any("dead" in x for x in r.summary.reasons)
    assert any(note.startswith("dead units are not judged") for note in r.summary.notes)
    assert not initdiag.probe("64,256,256,10", batch=16).summary.notes


@pytest.mark.parametrize(
    "source, message",
    [
        ("normal:0", "--input 'normal:0' has variance 0"),
        ("uniform:0", "--input 'uniform:0' has variance 0"),
        ("nan.npy", "holds 1 non-finite value (nan or inf)"),
        ("inf.npy", "holds 2 non-finite values (nan or inf)"),
        ("zeros.npy", "every entry is 0, so every sample is the same"),
    ],
)
def test_bad_input_is_blamed_on_the_input(tmp_path, source, message):
    x = np.random.default_rng(0).normal(size=(8, 20))
    arrays = {"nan.npy": x.copy(), "inf.npy": x.copy(), "zeros.npy": np.zeros((8, 20))}
    arrays["nan.npy"][3, 2] = np.nan
    arrays["inf.npy"][0, :2] = [np.inf, -np.inf]
    if source in arrays:
        np.save(tmp_path / source, arrays[source])
        source = str(tmp_path / source)
    result = run("probe", "--layers", "20,20,2", "--input", source)
    assert result.exit_code == 2
    assert message in result.stderr and "overflow" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_no_verdict_is_ok_when_a_gain_is_undefined():
    """Every probe whose flags are empty has finite, positive gains at every judged row."""
    for init in ("zeros", "he", "normal:1e-30", "constant:0.01"):
        r = initdiag.probe("32,32,32,4", init=init, bias_init="normal:0.1", act="tanh")
        if r.summary.verdict != "fail":
            for x in r.layers:
                for gain, judged in zip((x.forward_gain, x.backward_gain), x.gain_judged, strict=True):
                    assert not judged or (gain > 0 and math.isfinite(gain)), (init, x.name)


# --- the Python API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("widths", [[784, 256, 10], (784, 256), np.array([64, 32, 10])])
def test_probe_takes_any_sequence_of_widths(widths):
    r = initdiag.probe(widths)
    assert [x.fan_in for x in r.layers] == [int(w) for w in widths[:-1]]


def test_library_errors_name_keyword_arguments_and_the_command_line_names_options():
    with pytest.raises(InitdiagError) as info:
        initdiag.probe([784, 256, 10], batch=0)
    assert str(info.value) == "batch must be a positive integer, got 0"
    with pytest.raises(InitdiagError) as info:
        initdiag.probe("784,256", residual_scale=0.5)
    assert str(info.value) == "residual_scale needs residual"
    with pytest.raises(InitdiagError, match=r"^layers must be text like '784,256,10' or a sequence"):
        initdiag.probe([784, "a"])
    result = run("probe", "--layers", "784,256,10", "--batch", "0")
    assert result.stderr == "initdiag: error: --batch must be a positive integer, got 0\n"
    result = run("probe", "--layers", "784,256", "--residual-scale", "0.5")
    assert result.stderr == "initdiag: error: --residual-scale needs --residual\n"
