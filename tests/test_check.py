"""``initdiag check``: exit codes, reasons, every malformed file reported, formats, JUnit, GitHub
annotations and baselines."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from initdiag.analysis.check import find_specs, run_check
from initdiag.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_configs"
runner = CliRunner()

GOOD = """\
name = "good"
input_shape = [64]

[defaults]
act = "relu"
init = "he_normal"

[[layers]]
units = 64
repeat = 3

[[layers]]
units = 10
"""
DEEP = """\
name: deep
input_shape: [64]
defaults: {act: relu, init: xavier_normal}
layers:
  - units: 64
    repeat: 6
  - units: 64
    repeat: 6
  - units: 10
"""


def deep_line(layer: str) -> int:
    """The line of DEEP's entry that layer denseN comes from."""
    n = int(layer.removeprefix("dense"))
    return 5 if n <= 6 else 7 if n <= 12 else 9


BROKEN = 'input_shape = [64]\n[[layers]]\nunits = 0\n[[layers]]\nunits = 10\ninit = "hee"\n'


@pytest.fixture
def specs(tmp_path):
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "deep.yaml").write_text(DEEP)
    return tmp_path


def run(*args, env=None):
    # piped output is fitted to COLUMNS (pytest-xdist's workers set it to 80): wide, for long paths
    return runner.invoke(app, ["check", *map(str, args)], env={"COLUMNS": "300", **(env or {})})


def test_all_pass_exit_0(specs):
    result = run(specs / "good.toml")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout and "✔ 1 passed" in result.stdout


def test_a_failing_spec_exits_1_with_the_reason_in_words(specs):
    result = run(specs / "good.toml", specs / "deep.yaml")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "✘ 1 failed, 1 passed" in result.stdout
    outcome = run_check([str(specs / "deep.yaml")]).outcomes[0]
    assert not outcome.passed
    # both directions vanish: one sentence each, naming the worst layer, the worse one first
    assert len(outcome.reasons) == 2
    forward = next(r for r in outcome.reasons if "forward gain" in r)
    backward = next(r for r in outcome.reasons if "backward gain" in r)
    assert "< 1/10 (vanishing)" in forward and "< 1/10 (vanishing)" in backward
    # gradients vanish towards the input (dense1's is the data's gradient, not judged)
    assert backward.startswith("layer dense2: backward gain")
    layers = [r.split(":")[0].removeprefix("layer ") for r in outcome.reasons]
    assert outcome.worst_layer == layers[0]
    # each reason carries the line of the entry its layer comes from
    assert outcome.reason_lines == [deep_line(layer) for layer in layers]
    assert outcome.line == deep_line(outcome.worst_layer)
    assert set(outcome.reason_lines) == {5, 7}


def test_malformed_specs_exit_2_all_reported_and_the_valid_ones_still_run(specs):
    (specs / "broken.toml").write_text(BROKEN)
    (specs / "also_broken.json").write_text("{")
    result = run(specs)
    assert result.exit_code == 2
    out = result.stdout
    assert "ERROR" in out and "PASS" in out and "FAIL" in out
    assert f"{specs / 'broken.toml'}:3: layers[0].units must be a positive integer, got 0" in out
    assert f"{specs / 'broken.toml'}:6: layers[1].init: unknown initializer 'hee'; did you mean 'he'?" in out
    assert (
        f"{specs / 'also_broken.json'}:1: invalid JSON: Expecting property name enclosed in double quotes"
        in out
    )
    assert "✘ 1 failed, 2 malformed, 1 passed" in out


def test_trials_default_as_probe_config_and_can_be_set(specs):
    outcome = run_check([str(specs / "good.toml")]).outcomes[0]
    assert outcome.result.settings.trials == 1  # as `probe --config`: one default for both
    assert run_check([str(specs / "good.toml")], trials=1).outcomes[0].result.settings.trials == 1
    (specs / "two.toml").write_text(GOOD + "\n[probe]\ntrials = 2\n")
    assert run_check([str(specs / "two.toml")]).outcomes[0].result.settings.trials == 2


def test_fail_on_and_allow_symmetric_decide_what_fails(tmp_path):
    (tmp_path / "deep_ok.yaml").write_text(DEEP + "check:\n  fail_on: [exploding, nonfinite]\n")
    assert run_check([str(tmp_path / "deep_ok.yaml")]).outcomes[0].passed
    constant = 'input_shape = [32]\nlayers = [{units = 16}, {units = 4}]\n[defaults]\nact = "tanh"\ninit = "constant:0.1"\n'
    (tmp_path / "sym.toml").write_text(constant)
    outcome = run_check([str(tmp_path / "sym.toml")]).outcomes[0]
    assert outcome.result.summary.flags == ["symmetric"] and not outcome.passed
    assert outcome.reasons == ["layer dense1: 1 distinct unit of 16 (symmetric); 1 more layer too"]
    (tmp_path / "sym_ok.toml").write_text(constant + "[check]\nallow_symmetric = true\n")
    assert run_check([str(tmp_path / "sym_ok.toml")]).outcomes[0].passed


def test_files_directories_and_globs(specs):
    (specs / "sub").mkdir()
    shutil.copy(specs / "good.toml", specs / "sub" / "good2.json.bak")  # not a spec suffix
    (specs / ".hidden").mkdir()
    (specs / ".hidden" / "x.toml").write_text("garbage")
    files, missing, _, _ = find_specs([str(specs), str(specs / "*.toml"), str(specs / "good.toml")])
    assert files == [str(specs / "deep.yaml"), str(specs / "good.toml")]  # each once, hidden skipped
    assert missing == []
    files, missing, _, _ = find_specs([str(specs / "*.json"), str(specs / "nope.toml")])
    assert files == [] and [m.problems[0] for m in missing] == [
        f"{specs / '*.json'}: no spec files match",
        f"{specs / 'nope.toml'}: file not found",
    ]
    assert run(specs / "nope.toml").exit_code == 2


def test_json_output_is_strict_and_has_the_contract_keys(specs):
    (specs / "broken.toml").write_text(BROKEN)
    result = run(specs, "--format", "json")
    assert result.exit_code == 2
    data = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(c))
    assert list(data) == [
        "schema_version",
        "initdiag_version",
        "results",
        "summary",
        "skipped",
        "skipped_coordcheck",
    ]
    by_file = {Path(r["file"]).name: r for r in data["results"]}
    good, deep, broken = by_file["good.toml"], by_file["deep.yaml"], by_file["broken.toml"]
    assert good["passed"] is True and good["reasons"] == [] and "layers" in good and "summary" in good
    assert deep["passed"] is False and any("forward gain" in r for r in deep["reasons"])
    assert deep["line"] == deep_line(deep["worst_layer"])
    assert broken["passed"] is False and broken["error"].endswith(
        "layers[0].units must be a positive integer, got 0"
    )
    assert len(broken["reasons"]) == 2
    assert data["summary"] == {"passed": 1, "failed": 1, "malformed": 1}
    assert "initdiag: error:" in result.stderr  # malformed specs also go to the log
    again = run(specs, "--format", "json")
    assert again.stdout == result.stdout  # deterministic


def test_junit_xml(specs, tmp_path):
    (specs / "broken.toml").write_text(BROKEN)
    out = tmp_path / "report.xml"
    result = run(specs, "--format", "junit", "--output", out)
    assert result.exit_code == 2
    assert "initdiag check" in result.stdout  # the table still prints
    suites = ET.parse(out).getroot()
    assert suites.tag == "testsuites"
    assert (suites.get("tests"), suites.get("failures"), suites.get("errors")) == ("3", "1", "1")
    cases = {Path(c.get("name")).name: c for c in suites.iter("testcase")}
    assert set(cases) == {"good.toml", "deep.yaml", "broken.toml"}
    assert cases["good.toml"].find("failure") is None and cases["good.toml"].find("error") is None
    failure = cases["deep.yaml"].find("failure")
    worst = failure.get("message").split(":")[0].removeprefix("layer ")
    assert "forward gain" in failure.text and "layer dense2: backward gain" in failure.text
    assert cases["deep.yaml"].get("line") == str(deep_line(worst))
    assert cases["broken.toml"].find("error").get("type") == "malformed spec"
    assert "✔" in cases["good.toml"].find("system-out").text


def test_github_annotations_point_at_the_failing_layer(specs):
    plain = run(specs / "deep.yaml")
    assert "::error" not in plain.stdout
    result = run(specs / "deep.yaml", env={"GITHUB_ACTIONS": "true"})
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    path = str(specs / "deep.yaml").replace(":", "%3A").replace(",", "%2C")
    assert len(annotations) == 2
    for annotation in annotations:  # each at its layer's line
        _, head, message = annotation.split("::", 2)
        layer = message.split(":")[0].removeprefix("layer ")
        assert head == f"error file={path},line={deep_line(layer)},title=initdiag check%3A deep"
    assert {a.split(",")[1] for a in annotations} == {"line=5", "line=7"}
    (specs / "broken.toml").write_text(BROKEN)
    result = run(specs / "broken.toml", env={"GITHUB_ACTIONS": "true"})
    assert (
        "::error file=" in result.stdout and ",line=3,title=malformed spec::layers[0].units" in result.stdout
    )


def test_baseline_catches_a_regression_that_is_not_yet_a_failure(specs, tmp_path):
    baseline = tmp_path / "baseline.json"
    run(specs / "good.toml", "--format", "json", "--output", baseline)
    assert run(specs / "good.toml", "--baseline", baseline).exit_code == 0
    # the same file now with Glorot's init: every layer still inside [1/10, 10] at depth 4, but the
    # gains move by about 2x per layer from the He baseline
    (specs / "good.toml").write_text(GOOD.replace("he_normal", "xavier_normal"))
    without = run_check([str(specs / "good.toml")])
    assert without.outcomes[0].passed
    report = run_check([str(specs / "good.toml")], baseline=str(baseline))
    outcome = report.outcomes[0]
    assert not outcome.passed and report.exit_code == 1
    assert any("forward gain moved from" in r and "against the baseline" in r for r in outcome.reasons)
    loose = run_check([str(specs / "good.toml")], baseline=str(baseline), baseline_factor=100)
    assert loose.outcomes[0].passed


def test_bad_check_options(specs, tmp_path):
    (tmp_path / "bad.json").write_text("[1]")
    for args, message in (
        (["--format", "xml"], "--format 'xml' is not one of table, json, csv, markdown, junit"),
        (["--baseline", tmp_path / "nope.json"], "--baseline: file not found"),
        (["--baseline", tmp_path / "bad.json"], "is not a JSON result of initdiag check or probe"),
        (["--baseline-factor", "0.5"], "--baseline-factor must be greater than 1"),
        (["--trials", "0"], "--trials must be a positive integer"),
        (["--jobs", "0"], "--jobs must be a positive integer"),
    ):
        result = run(specs / "good.toml", *args)
        assert result.exit_code == 2, args
        assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Missing argument 'SPEC...'" in run().stderr


def test_csv_and_markdown(specs):
    rows = run(specs, "--format", "csv").stdout.splitlines()
    assert rows[0] == "file,name,passed,status,verdict,worst_layer,line,forward_gain,backward_gain,reasons"
    assert len(rows) == 3
    md = run(specs, "--format", "markdown").stdout
    assert (
        md.startswith("**initdiag check**")
        and "| spec | name | result |" in md
        and "**✘ 1 failed, 1 passed**" in md
    )


def _without_timing(report) -> list[dict]:
    return [{k: v for k, v in o.to_dict().items() if k != "seconds"} for o in report.outcomes]


def _leaves(value, path=""):
    """(path, value) of every number and string in a JSON-like value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def test_specs_on_worker_processes_report_as_one_after_another(specs):
    (specs / "broken.toml").write_text(BROKEN)
    serial = run_check([str(specs)], jobs=1)
    parallel = run_check([str(specs)], jobs=2)
    assert [o.file for o in parallel.outcomes] == [o.file for o in serial.outcomes]
    # equal but for the last bits: the parent's matrix products may use two BLAS threads, a worker's one
    for got, want in zip(_without_timing(parallel), _without_timing(serial), strict=True):
        got, want = dict(_leaves(got)), dict(_leaves(want))
        assert got.keys() == want.keys()
        for key, value in want.items():
            expected = pytest.approx(value, rel=1e-9, nan_ok=True) if isinstance(value, float) else value
            assert got[key] == expected, key
    assert parallel.exit_code == serial.exit_code == 2


def test_workers_share_the_memory_a_spec_may_plan_on(specs, monkeypatch):
    """Specs checked at once each get their share of the memory: one that fits alone is refused
    on two workers, with the reason, and --jobs 1 gives it all."""
    from initdiag.analysis.probe import estimate_memory
    from initdiag.network.job import job
    from initdiag.network.specfile import load_spec

    stack, settings, _ = job(spec=load_spec(str(specs / "good.toml")), probe_defaults={"trials": 3})
    need = estimate_memory(stack, settings.batch, settings.dtype).total
    (specs / "deep.yaml").unlink()
    (specs / "good2.toml").write_text(GOOD.replace('"good"', '"good2"'))
    monkeypatch.setenv("INITDIAG_MAX_MEMORY", str(int(1.5 * need)))  # after the workers' server started
    alone = run_check([str(specs)], jobs=1)
    assert [o.status for o in alone.outcomes] == ["pass", "pass"]
    shared = run_check([str(specs)], jobs=2)
    assert [o.status for o in shared.outcomes] == ["error", "error"]
    assert (
        "is available to each of 2 worker processes (jobs 1 gives one all of it)"
        in shared.outcomes[0].problems[0]
    )


def test_the_sample_configs():
    report = run_check([str(SAMPLES)])
    status = {Path(o.file).name: o.status for o in report.outcomes}
    assert status == {
        "mlp_he.toml": "pass",
        "deep_xavier.yaml": "fail",
        "torch_default_mlp.json": "fail",
        "vgg_cifar.toml": "pass",
        "resnet20_cifar.toml": "pass",
        "residual_preact.toml": "pass",
        "residual_postact.toml": "fail",
        "tanh_xavier.toml": "pass",  # warns: q decays like 1/depth at the critical point
        "selu_lecun.toml": "pass",  # warns: chi_1 = 1.07
        "lsuv_relu.toml": "pass",
        "zeros_with_bias.toml": "fail",
        "gpt_small.toml": "pass",  # GPT-2's init: a small stream is not a gradient exploding
    }
    verdicts = {Path(o.file).name: o.result.summary.verdict for o in report.outcomes}
    assert verdicts["tanh_xavier.toml"] == verdicts["selu_lecun.toml"] == "warn"
    zeros = next(o for o in report.outcomes if o.file.endswith("zeros_with_bias.toml"))
    assert zeros.reasons[0].startswith("no gradient reaches layer dense1 (dL/dW = 0 everywhere)")
    # every sample says in a comment what it shows
    for path in SAMPLES.iterdir():
        assert path.read_text().lstrip().startswith(("#", "{")), path.name


def test_pre_commit_hook_definition():
    import re

    import yaml

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "initdiag-check" and hook["entry"] == "initdiag check"
    assert hook["language"] == "python" and hook["pass_filenames"] is True
    pattern = re.compile(hook["files"])
    for path in ("architectures/mlp.toml", "ml/specs/deep.yaml", "specs/a.json"):
        assert pattern.search(path), path
    for path in ("package.json", "src/config.yaml", "architectures/readme.md"):
        assert not pattern.search(path), path


@pytest.mark.parametrize(
    ("ratio", "factor", "text"),
    [
        (2.0834, 2.0, "2.08"),
        (2.0000000017626771, 2.0, "2.000000002"),
        (2.0, 1.5, "2"),
        (1.50049, 1.5, "1.5005"),
    ],
)
def test_a_baseline_ratio_reads_above_its_factor(ratio, factor, text):
    from initdiag.analysis.check import ratio_text

    assert ratio_text(ratio, factor) == text and float(text) > factor


def test_a_folder_s_coordcheck_specs_are_skipped_and_named(tmp_path):
    """``check dir/`` runs the architecture specs and names the coordcheck specs it holds (they are
    run by ``coordcheck -c``); named alone, one is an error that says so."""
    (tmp_path / "mlp.toml").write_text("input_shape = [8]\nlayers = [{units = 8}, {units = 4}]\n")
    coord = tmp_path / "coord.yaml"
    coord.write_text('coordcheck:\n  layers: "16,W,4"\n  widths: [16, 32]\n')
    result = runner.invoke(app, ["check", str(tmp_path), "--format", "json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and [r["file"] for r in data["results"]] == [str(tmp_path / "mlp.toml")]
    assert data["skipped_coordcheck"] == [str(coord)]
    assert f"skipped {coord}: a coordcheck spec; run with initdiag coordcheck -c FILE" in result.stderr
    alone = runner.invoke(app, ["check", str(coord)])
    assert alone.exit_code == 2 and "a coordcheck spec, not an architecture spec" in " ".join(
        alone.output.split()
    )
