"""initdiag coordcheck: the parametrizations against Tensor Programs V's Table 3 and against the mup
package's own training (tests/data/mup_reference.npz), the slopes against closed forms, the paper's
and the mup README's figures on small widths, and the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from initdiag.analysis import coordtrain
from initdiag.analysis.coordcheck import CoordSettings, _layout, coordcheck, parse_stack
from initdiag.analysis.coordjudge import slopes, verdict_of
from initdiag.cli import app
from initdiag.core.init_parser import get_initializer
from initdiag.core.parametrizations import get_parametrization
from initdiag.errors import InitdiagError

runner = CliRunner()
DATA = Path(__file__).resolve().parent / "data" / "mup_reference.npz"
SMALL = {"widths": [64, 128, 256, 512], "steps": 3, "seeds": 3, "batch": 64}


# --- the rules ------------------------------------------------------------------------------------


def test_mup_is_table_3_of_tensor_programs_v():
    """Table 3 (SGD and Adam): input weights & biases Var 1/fan_in, SGD fan_out, Adam 1; hidden 1/fan_in,
    SGD 1, Adam 1/fan_in; output 1/fan_in^2, SGD 1/fan_in, Adam 1/fan_in; at 4x the base width."""
    mup, m = get_parametrization("mup:readout=normal"), 4.0
    expected = {  # role: (variance, SGD lr, Adam lr), relative to the base width
        "input": (1, 4, 1), "hidden": (1 / 4, 1, 1 / 4), "output": (1 / 16, 1 / 4, 1 / 4), "bias": (1, 4, 1),
        "fixed": (1, 1, 1),
    }  # fmt: skip
    for role, (var, sgd, adam) in expected.items():
        assert mup.variance_factor(role, m) == pytest.approx(var), role
        assert mup.lr_factor(role, m, "sgd") == pytest.approx(sgd), role
        assert mup.lr_factor(role, m, "momentum") == pytest.approx(sgd), role
        assert mup.lr_factor(role, m, "adam") == pytest.approx(adam), role
        assert mup.eps_factor(role, m) == 1
    assert get_parametrization("mup").variance_factor("output", m) == 0  # the zero readout (mup's default)
    sp = get_parametrization("sp")
    assert sp.own_init and all(sp.lr_factor(r, m, o) == 1 for r in expected for o in ("sgd", "adam"))


def test_ntk_and_mean_field_fold_their_multipliers_into_the_learning_rates():
    """W = A w trained with lr on w is W trained with A^2 lr (SGD), A lr and eps / A (Adam): NTK's
    A = n^-1/2, mean field's A = 1/n after the first layer (TP4's abc with a = 1/2 and 1)."""
    ntk, mf, m = get_parametrization("ntk"), get_parametrization("mf"), 16.0
    assert ntk.variance_factor("hidden", m) == pytest.approx(1 / 16)
    assert ntk.lr_factor("hidden", m, "sgd") == pytest.approx(1 / 16)  # A^2
    assert ntk.lr_factor("output", m, "adam") == pytest.approx(1 / 4)  # A
    assert ntk.eps_factor("hidden", m) == pytest.approx(4)  # 1 / A
    assert ntk.lr_factor("input", m, "sgd") == 1 and ntk.variance_factor("input", m) == 1
    assert mf.variance_factor("hidden", m) == pytest.approx(1 / 256)  # A^2 Var(w)
    assert mf.lr_factor("hidden", m, "sgd") == pytest.approx(1 / 16)  # A^2 * n (c = -1)
    assert mf.lr_factor("hidden", m, "adam") == pytest.approx(1 / 16) and mf.eps_factor("hidden", m) == 16
    assert mf.lr_factor("input", m, "sgd") == pytest.approx(16)  # c = -1 with A = 1


def test_names_and_their_errors():
    assert str(get_parametrization("μP")) == "mup" and str(get_parametrization("standard")) == "sp"
    assert str(get_parametrization("MUP:readout=normal")) == "mup:readout=normal"
    with pytest.raises(InitdiagError, match="unknown parametrization 'mupp'; did you mean 'mup'"):
        get_parametrization("mupp")
    with pytest.raises(InitdiagError, match="readout"):
        get_parametrization("mup:readout=huge")
    with pytest.raises(InitdiagError, match="takes no"):
        get_parametrization("ntk:2")


def test_init_scales_follow_the_rule_at_the_real_fans():
    """The draw at the real fans times the scale has the rule's variance: He hidden (2/n at any n) needs
    no scale, the muP readout sqrt(n0/n); Xavier's input layer at base fans, sqrt((d+n)/(d+n0))."""
    stack, settings = parse_stack("16,W,W,4"), CoordSettings(seeds=1)
    params = [get_parametrization("mup:readout=normal")]
    layout, _ = _layout(stack, 256, 64, params, get_initializer("he"), get_initializer("zeros"), settings)
    assert layout.weight_scale[0] == pytest.approx([1, 1, math.sqrt(64 / 256)])
    layout, _ = _layout(stack, 256, 64, params, get_initializer("xavier"), get_initializer("zeros"), settings)
    assert layout.weight_scale[0, 0] == pytest.approx(math.sqrt((16 + 256) / (16 + 64)))
    assert layout.weight_lr[0] == pytest.approx([1e-3, 1e-3 / 4, 1e-3 / 4])  # Adam: 1, base/n, base/n


# --- against the mup package -----------------------------------------------------------------------


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("param", ["sp", "mup"])
def test_training_matches_the_mup_package(monkeypatch, opt, param):
    """From the same weights, initdiag's runs give mup's l1 at every step and width (MuSGD, MuAdam and
    MuReadout against initdiag's Table 3; torch.optim for SP): the per-layer learning rates agree."""
    ref = np.load(DATA)
    base = int(ref["base"])
    X, labels = ref["X"], ref["labels"]
    Y = np.eye(3)[labels]
    settings = CoordSettings(layers="6,W,W,3", optimizer=opt, lr=float(ref[f"lr/{opt}"]), seeds=1)
    parametrization = get_parametrization("sp" if param == "sp" else "mup:readout=normal")
    for n in ref["widths"]:
        weights = [(ref[f"{n}/W{i}"], ref[f"{n}/b{i}"]) for i in (1, 2, 3)]
        layout, _ = _layout(parse_stack(settings.layers), int(n), base, [parametrization], get_initializer("he"),
                            get_initializer("zeros"), settings)  # fmt: skip
        params = [np.concatenate([W, b[:, None]], axis=1)[None].copy() for W, b in weights]
        monkeypatch.setattr(coordtrain, "_sample", lambda *args, p=params: [x.copy() for x in p])
        options = {"steps": 3, "dtype": "float64", "optimizer": opt, "loss": "xent", "seed": 0}
        l1, *_ = coordtrain.run_task(layout, None, None, (X, Y), options)
        np.testing.assert_allclose(l1[0], ref[f"{param}/{opt}/{n}/l1"], rtol=2e-6)


# --- slopes and verdicts --------------------------------------------------------------------------


def test_slopes_are_least_squares_with_the_seeds_standard_error():
    widths = [64, 128, 256, 512]
    w = np.array(widths, dtype=float)
    values = np.stack([3 * w**0.5, 0.2 * w**0.7])[:, :, None]  # two seeds, exact power laws
    slope, se = slopes(widths, values)
    assert slope[0] == pytest.approx(0.6) and se[0] == pytest.approx(0.1)  # sd 0.1414 / sqrt(2)
    one = np.log2(w) * 0.25 + np.array([0.1, -0.1, -0.1, 0.1])  # one seed: the fit's own standard error
    slope, se = slopes(widths, (2.0**one)[None, :, None])
    x = np.log2(w) - np.log2(w).mean()
    residual = one - one.mean() - 0.25 * x
    assert slope[0] == pytest.approx(0.25)
    assert se[0] == pytest.approx(math.sqrt((residual**2).sum() / 2 / (x @ x)))
    slope, _ = slopes(widths, np.array([[[1.0], [0.0], [1.0], [1.0]]]))
    assert math.isnan(slope[0])


def test_verdicts():
    ones = np.ones((2, 3))
    assert verdict_of(ones, 0.05, 0.0, 0.1, True) == "stable"
    assert verdict_of(ones, 0.15, 0.03, 0.1, True) == "stable"  # within 0.1 + 2 se
    assert verdict_of(ones, 0.15, 0.01, 0.1, True) == "grows"
    assert verdict_of(ones, -0.5, 0.02, 0.1, True) == "shrinks"
    assert verdict_of(np.zeros((2, 3)), math.nan, math.nan, 0.1, True) == "zero"
    assert verdict_of(ones * np.inf, math.nan, math.nan, 0.1, True) == "nonfinite"
    assert verdict_of(ones, 3.0, 0.0, 0.1, False) == "fixed"


# --- the figures, on small widths -----------------------------------------------------------------


@pytest.fixture(scope="module", params=[("adam", 4e-3), ("sgd", 0.1)], ids=["adam", "sgd"])
def report(request):
    """The acceptance runs (widths 128..2048, Adam lr 1e-3, SGD lr 0.1) at widths 4x narrower: in SP an
    Adam update moves a layer by about lr * width, so Adam's learning rate is 4x larger to reach the
    same regime (the docs show the full-size runs)."""
    opt, lr = request.param
    return coordcheck(CoordSettings(**SMALL, optimizer=opt, lr=lr, params=["sp", "mup", "mup:readout=normal"],
                                    jobs=1))  # fmt: skip


def test_mup_keeps_every_layer_flat_at_every_step(report):
    """TP5 / mup README: in muP "all curves stay horizontal", the logits too (zero readout)."""
    mup = report.results[1]
    assert mup.verdict == "ok", mup.reasons
    for layer in mup.layers:
        finite = layer.slope[np.isfinite(layer.slope)]
        assert np.all(np.abs(finite) <= 0.1), (layer.name, layer.slope)
    assert mup.layers[-1].verdicts[0] == "zero"  # the zero readout at init


def test_sp_is_flat_at_init_and_its_output_blows_up_after_an_update(report):
    sp = report.results[0]
    assert all(layer.verdicts[0] == "stable" for layer in sp.layers)  # init: width-stable in SP too
    assert all(abs(layer.slope[0]) <= 0.1 for layer in sp.layers if layer.role == "hidden")
    assert max(sp.layers[-1].slope[1:3]) >= 0.5  # the logits: clearly growing by step 2
    assert "grows" in sp.flags and sp.verdict == "fail"
    assert any("step 0 is width-stable" in note for note in sp.notes)
    # the hidden layers' change since init already grows with width (TP5 sec. 3: an update moves them by
    # about lr * n with Adam, lr * sqrt(n) with SGD, whose gradient reaches them through a readout of
    # size n^-1/2), while their size is still dominated by the init at these widths
    hidden = [layer for layer in sp.layers if layer.role == "hidden"]
    if report.settings.optimizer == "adam":
        assert all(layer.delta_slope[1] >= 0.7 for layer in hidden)
    else:
        assert all(layer.delta_slope[2] == pytest.approx(0.5, abs=0.15) for layer in hidden)
        assert sp.layers[0].delta_slope[1] == pytest.approx(-0.5, abs=0.1)  # the input layer: dz ~ n^-1/2


def test_mup_random_readout_starts_at_width_to_the_minus_half(report):
    readout = report.results[2].layers[-1]
    assert readout.slope[0] == pytest.approx(-0.5, abs=0.1)
    assert readout.verdicts[0] == "shrinks"
    assert any("expected in muP" in note for note in report.results[2].notes)


def test_mean_field_shrinks_by_half_a_power_per_layer_at_init():
    """W = w / n after the first layer: E[z_2^2] ~ n * (1/n^2) * 1 = 1/n, then 1/n^2, ...: slopes of
    l1 (a std) of -1/2, -1, -3/2 (closed form, relu or not)."""
    result = coordcheck(CoordSettings(**SMALL, params=["mean_field"], jobs=1)).results[0]
    assert [layer.slope[0] for layer in result.layers] == pytest.approx([0, -0.5, -1, -1.5], abs=0.1)
    assert "shrinks" in result.flags


def test_ntk_with_sgd_is_lazy():
    """NTK (SGD): stable sizes, a change since init that shrinks like width^-1/2 (the kernel regime)."""
    result = coordcheck(CoordSettings(**SMALL, params=["ntk"], optimizer="sgd", lr=0.1, jobs=1)).results[0]
    assert result.verdict == "ok"
    hidden = [layer for layer in result.layers if layer.role == "hidden"]
    assert all(layer.delta_slope[1] == pytest.approx(-0.5, abs=0.1) for layer in hidden)
    assert any("lazy" in note for note in result.notes)


def test_split_and_pool_give_the_same_numbers():
    """Runs do not depend on how they are grouped into tasks or processes."""
    settings = {**SMALL, "widths": [32, 64], "steps": 2, "params": ["sp", "mup"]}
    one = coordcheck(CoordSettings(**settings, jobs=1))
    two = coordcheck(CoordSettings(**settings, jobs=2))
    for a, b in zip(one.results, two.results, strict=True):
        for x, y in zip(a.layers, b.layers, strict=True):
            np.testing.assert_array_equal(x.l1, y.l1)


# --- input and the command line -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "64,128,10"], "mark the widths that scale with W"),
        (["--layers", "W,W,10"], "the input and output widths are fixed"),
        (["--layers", "64,W,Q,10"], "'q' is not a width"),
        (["--widths", "64"], "at least two widths"),
        (["--widths", "64,-2"], "is not a positive integer"),
        (["--param", "sp,mupp"], "did you mean 'mup'"),
        (["--param", "mup", "--init", "constant:0.1"], "cannot rescale it with width"),
        (["--init", "lsuv"], "draws new weights at every width"),
        (["--steps", "0"], "--steps"),
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--optimizer", "adamw"], "--optimizer 'adamw' is not one of"),
        (["--data", "spiral"], "input width must be 2"),
        (["--fail-on", "explodes"], "unknown flag 'explodes'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, ["coordcheck", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_too_much_work_is_refused_at_once(monkeypatch):
    monkeypatch.setenv("INITDIAG_MAX_SECONDS", "5")
    result = runner.invoke(app, ["coordcheck", "--widths", "1024,4096,16384", "--steps", "50"])
    assert result.exit_code == 2 and "would take about" in result.stderr


def test_cli_table_json_csv_markdown_and_fail_on(tmp_path):
    args = ["coordcheck", "--widths", "64,128,256", "--steps", "2", "--lr", "0.004"]
    table = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "sp: slope of log2 l1" in table.stdout and "step 2" in table.stdout and "┌─ step 0" in table.stdout
    data = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    sp = data["results"][0]
    assert data["widths"] == [64, 128, 256] and data["base_width"] == 64
    assert len(sp["layers"][1]["points"]) == 3 * 3 and {"l1", "l1_sd", "std", "delta"} <= set(
        sp["layers"][1]["points"][0]
    )
    assert sp["flags"] == ["grows"]
    csv = runner.invoke(app, [*args, "--format", "csv"]).stdout.splitlines()
    assert csv[0].startswith("param,layer,shape,role,width,step,l1") and len(csv) == 1 + 2 * 4 * 3 * 3
    markdown = runner.invoke(app, [*args, "--format", "markdown"]).stdout
    assert "| layer | shape | role | step 0 |" in markdown
    assert runner.invoke(app, [*args, "--fail-on", "grows"]).exit_code == 1
    assert runner.invoke(app, [*args, "--param", "mup", "--fail-on", "any"]).exit_code == 0


def test_explain_prints_each_parametrization_with_its_table():
    text = runner.invoke(app, ["explain", "mup"]).stdout
    assert "Table 3" in text and "1/fan_in^2" in text and "lr * base/fan_in" in text
    for name in ("sp", "ntk", "mean_field", "μP"):
        result = runner.invoke(app, ["explain", name])
        assert result.exit_code == 0 and "parametrization" in result.stdout
    data = json.loads(runner.invoke(app, ["explain", "ntk", "--format", "json"]).stdout)
    assert data["kind"] == "parametrization" and data["table"][0]["row"] == "init var"


def test_sweep_takes_several_widths_as_an_axis():
    """``sweep --width 64,256``: a column per width, each cell the probe of that width's stack."""
    from initdiag.analysis.compare import sweep
    from initdiag.analysis.probe import run_probe
    from initdiag.network.job import job

    result = sweep(width=[64, 256], depths=[3], inits=["he", "xavier"], acts=["relu"], jobs=1)
    assert result.column_key == "width" and result.row_keys == ("init",)
    assert [c["width"] for c in result.columns] == [64, 256] and result.to_dict()["widths"] == [64, 256]
    for row, init in zip(result.cells, ("he", "xavier"), strict=True):
        for cell, width in zip(row, (64, 256), strict=True):
            stack, settings, _ = job(layers=f"{width},{width}x3", stack_options={"init": init, "act": "relu"})
            assert cell.forward_gain == pytest.approx(
                run_probe(stack, settings).summary.forward_gain, rel=1e-12
            )
    table = runner.invoke(app, ["sweep", "--width", "64,256", "--depth", "3", "--jobs", "1"])
    title = table.stdout.split("\n\n")[0]  # a narrow terminal wraps it
    assert table.exit_code == 0 and "width" not in title and "depth 3" in title
    assert any(line.split() == ["64", "256"] for line in table.stdout.splitlines())
    bad = runner.invoke(app, ["sweep", "--width", "64,x"])
    assert bad.exit_code == 2 and "'x' is not a positive integer" in bad.stderr


# --- spec files -----------------------------------------------------------------------------------

SPEC_TOML = """\
name = "tiny"
[coordcheck]
layers = [16, "W", "2W", 4]
widths = [16, 32, 64]
params = "sp,mup"
act = "relu"
init = "he"
optimizer = "adam"
lr = 0.01
steps = 2
seeds = 2
batch = 16
fail_on = ["grows"]
"""
SPEC_ARGS = ["--layers", "16,W,2W,4", "--widths", "16,32,64", "--param", "sp,mup", "--act", "relu",
             "--init", "he", "--optimizer", "adam", "--lr", "0.01", "--steps", "2", "--seeds", "2",
             "--batch", "16"]  # fmt: skip


def _results(result) -> dict:
    data = json.loads(result.stdout)
    return {key: data[key] for key in ("settings", "stack", "widths", "results")}


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_a_spec_file_runs_what_the_same_options_run(tmp_path, suffix):
    """``-c FILE`` gives the same JSON as the options it holds, in every format; exit 1 from its
    fail_on (SP's last hidden layer grows with width after two Adam steps), and options typed override it."""
    import tomllib

    import yaml

    data = tomllib.loads(SPEC_TOML)
    path = tmp_path / f"tiny{suffix}"
    path.write_text({".toml": SPEC_TOML, ".yaml": yaml.safe_dump(data), ".json": json.dumps(data)}[suffix])
    from_file = runner.invoke(app, ["coordcheck", "-c", str(path), "--format", "json"])
    typed = runner.invoke(app, ["coordcheck", *SPEC_ARGS, "--format", "json"])
    assert typed.exit_code == 0 and from_file.exit_code == 1, from_file.output
    assert _results(from_file) == _results(typed)
    assert _results(from_file)["results"][0]["flags"] == ["grows"]
    mup = runner.invoke(app, ["coordcheck", "-c", str(path), "--param", "mup", "--format", "json"])
    assert mup.exit_code == 0 and [r["param"] for r in json.loads(mup.stdout)["results"]] == ["mup"]
    overridden = runner.invoke(app, ["coordcheck", "-c", str(path), "--fail-on", "nonfinite"])
    assert overridden.exit_code == 0, overridden.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[coordcheck]\nlayers = "16,W,4"\nsteps = 0\n', "spec.toml:3: coordcheck.steps must be a positive integer"),
        ('[coordcheck]\nlayers = "16,W,4"\nstepz = 3\n', "spec.toml:3: coordcheck: unknown key 'stepz'; did you mean 'steps'"),
        ('[coordcheck]\nlayers = "16,W,4"\nparams = ["sp", "mupp"]\n', "spec.toml:3: coordcheck.params: unknown parametrization 'mupp'"),
        ('[coordcheck]\nlayers = "W,W,4"\n', "spec.toml:2: coordcheck.layers 'W,W,4': the input and output widths are fixed"),
        ('[coordcheck]\nlayers = "16,W,4"\nlr = "fast"\n', "spec.toml:3: coordcheck.lr must be a number, got 'fast'"),
        ('[coordcheck]\nlayers = "16,W,4"\nwidths = [64]\n', "spec.toml:3: coordcheck.widths needs at least two widths"),
        ('[coordcheck]\nlayers = "16,W,4"\nfail_on = "grow"\n', "spec.toml:3: coordcheck.fail_on: unknown flag 'grow'"),
        ('[coordcheck]\nlayers = "16,W,4"\nact = "rellu"\n', "spec.toml:3: coordcheck.act: unknown activation 'rellu'"),
        ('name = "x"\n', "spec.toml: needs a [coordcheck] table"),
        ('input_shape = [3]\n[coordcheck]\nlayers = "16,W,4"\n', "spec.toml:1: unknown key 'input_shape'; an architecture spec"),
        ('[coordcheck]\nlayers = "16,W,4"\nsteps = 1\nsteps = 2\n', "spec.toml:4:"),
    ],
)  # fmt: skip
def test_a_bad_spec_file_is_one_line_at_its_line(tmp_path, text, message):
    (tmp_path / "spec.toml").write_text(text)
    result = runner.invoke(app, ["coordcheck", "-c", str(tmp_path / "spec.toml")])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and message in line.replace(str(tmp_path) + "/", ""), line


def test_the_documented_spec_is_the_example_file_and_check_names_it():
    """The toml the docs show is the example file (without its comment lines), and ``check``, which
    reads architecture specs, points at coordcheck -c instead of listing schema errors."""
    root = Path(__file__).resolve().parent.parent
    example = root / "examples" / "coordcheck" / "mlp_mup.toml"
    shown = [line for line in example.read_text().splitlines() if not line.startswith("#")]
    assert "\n".join(shown).strip() in (root / "docs" / "commands" / "coordcheck.md").read_text()
    result = runner.invoke(app, ["check", str(example)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "a coordcheck spec, not an architecture spec" in said
    assert f"initdiag coordcheck -c {example}" in said


def test_a_toy_set_is_drawn_as_train_draws_it():
    """``--data circles`` draws its batch with ``initdiag train``'s maker and default noise, and the
    title counts steps in the singular when there is one."""
    from initdiag.analysis.inputs import stream
    from initdiag.analysis.toy_data import NOISE, make_dataset

    X, Y, labels = coordtrain.make_data("circles", 32, 2, 1, "xent", 0, None)
    rng = stream(0, 0, coordtrain._DATA)
    expected = make_dataset("circles", 32, 1, NOISE["circles"], rng)
    assert np.array_equal(X, expected.X_train) and np.array_equal(labels, expected.y_train)
    assert Y.shape == (32, 1) and set(np.unique(Y)) <= {0.0, 1.0}
    result = runner.invoke(app, ["coordcheck", "--data", "circles", "--layers", "2,W,1", "--widths", "8,16",
                                 "--steps", "1", "--seeds", "1", "--batch", "32"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "· 1 step · 1 seed ·" in " ".join(result.stdout.split())


def test_one_seed_and_two_widths_say_their_slope_has_no_error():
    report = coordcheck(
        CoordSettings(layers="16,W,4", widths=[16, 32], params=["sp"], steps=1, seeds=1, jobs=1)
    )
    assert np.all(np.isnan(report.results[0].layers[1].slope_se))  # none to estimate: null in JSON
    assert any("no standard error" in note for note in report.results[0].notes)
    two_seeds = coordcheck(
        CoordSettings(layers="16,W,4", widths=[16, 32], params=["sp"], steps=1, seeds=2, jobs=1)
    )
    assert not any("no standard error" in note for note in two_seeds.results[0].notes)


def test_a_diverged_run_is_flagged_whatever_its_slopes():
    """Momentum at lr 1e10: the loss goes from ln 10 to ~1e10 at every width, the slopes stay small,
    and the parametrization must not read ok."""
    settings = CoordSettings(layers="16,W,4", widths=[16, 32], params=["mup"], act="tanh", optimizer="momentum",
                             lr=1e10, steps=2, seeds=2, batch=16, jobs=1)  # fmt: skip
    result = coordcheck(settings).results[0]
    assert result.verdict == "fail" and "diverged" in result.flags
    assert any(
        reason.startswith("the loss diverged at width 16 (from 1.39 at init") for reason in result.reasons
    )
    calm = coordcheck(
        CoordSettings(layers="16,W,4", widths=[16, 32], params=["mup"], steps=2, seeds=2, jobs=1)
    )
    assert "diverged" not in calm.results[0].flags


def test_a_cell_says_grows_or_shrinks_without_colour(tmp_path):
    """Piped (no colour), a cell that grows carries ▲ (▼ shrinks), and the legend says so; a bad
    --save-plot folder is refused before any training."""
    args = ["coordcheck", "--layers", "16,W,4", "--widths", "16,32,64", "--param", "sp", "--lr", "0.05",
            "--steps", "1", "--seeds", "2", "--batch", "16"]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "120"})
    grows = [line for line in result.stdout.splitlines() if line.startswith(" dense2")]
    assert result.exit_code == 0 and grows and grows[0].rstrip().endswith("▲")
    assert "▲ grows, ▼ shrinks" in result.stdout
    plot = runner.invoke(app, [*args, "--save-plot", str(tmp_path / "no" / "such" / "x.png")])
    assert plot.exit_code == 2 and plot.stdout == "" and "does not exist" in plot.stderr
