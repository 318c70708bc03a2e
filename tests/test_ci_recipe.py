"""docs/ci.md's recipe runs as written: every `initdiag` command of its workflow and shell blocks, in a
fresh directory holding a spec and its baseline, exits 0; `check` skips the initdiag results it finds
in a directory (saying so) and refuses one named on the command line; the pre-commit hook and the
page's snippet do not hand the baseline to `check`."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from initdiag.analysis.check import is_result, run_check
from initdiag.cli import app

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "docs" / "ci.md"
runner = CliRunner()
EMIT = "probe --layers 784,512x4,10 --act gelu --init he_normal:gain=auto --emit-spec yaml"


def run(args: list[str]):
    return runner.invoke(app, args, env={"COLUMNS": "200", "GITHUB_ACTIONS": "false"})


def recipe_commands() -> list[str]:
    """Every `initdiag ...` command of the page's yaml (`- run:`) and bash blocks, in order."""
    commands = []
    for body in re.findall(r"```(?:yaml|bash)\n(.*?)```", CI.read_text(), flags=re.S):
        for line in body.splitlines():
            found = re.match(r"\s*(?:- (?:run: )?)?initdiag (check .*)$", line)
            if found:
                commands.append(found.group(1).split("  #")[0].strip())
    return commands


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project as the recipe starts it: architectures/ with one spec from --emit-spec."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "architectures").mkdir()
    emitted = run(shlex.split(EMIT))
    assert emitted.exit_code == 0, emitted.output
    (tmp_path / "architectures" / "mlp.yaml").write_text(emitted.stdout)
    return tmp_path


def test_the_ci_recipe_runs_as_written(project):
    commands = recipe_commands()
    refresh = "check architectures/ --format json --output architectures/baseline.json"
    assert refresh in commands
    assert "check architectures/ --baseline architectures/baseline.json" in commands
    assert len(commands) >= 4  # GitHub Actions, GitLab, the baseline check and its refresh
    for command in [refresh, *commands]:  # the baseline first, as it is committed before CI runs
        result = run(shlex.split(command))
        assert result.exit_code == 0, (command, result.output)
    gated = run(shlex.split("check architectures/ --baseline architectures/baseline.json"))
    assert "architectures/mlp.yaml" in gated.stdout and "PASS" in gated.stdout
    assert "skipped architectures/baseline.json: an initdiag result (JSON output), not a spec" in gated.stdout
    assert gated.stdout.count("baseline.json") == 1  # in the note, not as a row


def test_a_result_named_as_a_spec_is_one_clear_error(project):
    assert (
        run(shlex.split("check architectures/ --format json --output architectures/baseline.json")).exit_code
        == 0
    )
    result = run(["check", "architectures/baseline.json"])
    assert result.exit_code == 2
    assert (
        "architectures/baseline.json: an initdiag result (JSON output), not a spec; to compare against it, "
        "pass --baseline architectures/baseline.json"
    ) in result.stdout
    assert "missing key" not in result.output


@pytest.mark.parametrize(
    "command", [["probe", "--layers", "8,8,4"], ["compare", "--layers", "8,8,4", "--init", "he,xavier"]]
)
def test_every_json_result_is_told_from_a_spec(project, command):
    out = run([*command, "--format", "json"])
    (project / "architectures" / "out.json").write_text(out.stdout)
    assert is_result("architectures/out.json")
    assert not is_result("architectures/mlp.yaml")
    report = run_check(["architectures/"], jobs=1)
    assert [o.file for o in report.outcomes] == ["architectures/mlp.yaml"]
    assert report.skipped == ["architectures/out.json"]
    assert report.exit_code == 0


def test_the_json_report_lists_what_was_skipped(project):
    run(shlex.split("check architectures/ --format json --output architectures/baseline.json"))
    result = run(["check", "architectures/", "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["skipped"] == ["architectures/baseline.json"]
    assert "initdiag: note: skipped architectures/baseline.json" in result.stderr


def test_a_glob_skips_results_too(project):
    run(shlex.split("check architectures/ --format json --output architectures/baseline.json"))
    result = run(["check", "architectures/*"])
    assert result.exit_code == 0, result.output
    assert "skipped architectures/baseline.json" in result.stdout


def _hooks(text: str) -> list[dict]:
    data = yaml.safe_load(text)
    if isinstance(data, list):
        return data
    return [hook for repo in data["repos"] for hook in repo["hooks"]]


@pytest.mark.parametrize("source", ["hook", "snippet"])
def test_pre_commit_does_not_pass_the_baseline_to_check(source):
    if source == "hook":
        hook = _hooks((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    else:
        snippet = re.search(r"```yaml\n(# \.pre-commit-config\.yaml.*?)```", CI.read_text(), flags=re.S)
        hook = _hooks(snippet.group(1))[0]

    def selected(path: str) -> bool:  # pre-commit's rule: files matches, exclude does not
        return bool(re.search(hook["files"], path)) and not re.search(hook.get("exclude", "^$"), path)

    assert selected("architectures/mlp.yaml") and selected("architectures/cnn.json")
    assert not selected("architectures/baseline.json")


@pytest.mark.parametrize("spec", ["mlp_he.toml", "tanh_xavier.toml", "torch_default_mlp.json"])
def test_probe_config_and_check_print_the_same_numbers(spec):
    """The same spec file gives the same numbers in `probe -c` and `check` (both read its probe.trials,
    with one default): the review found dense1's forward gain 0.208 in one and 0.173 in the other."""
    path = str(ROOT / "sample_configs" / spec)
    probed = json.loads(run(["probe", "--config", path, "--format", "json"]).stdout)
    checked = json.loads(run(["check", path, "--format", "json", "--jobs", "1"]).stdout)["results"][0]
    assert checked["settings"] == probed["settings"]
    assert checked["layers"] == probed["layers"]
    assert checked["summary"] == probed["summary"]


@pytest.mark.parametrize("command", ["probe", "compare --init he,xavier"])
def test_a_result_given_as_config_is_one_clear_error(project, command):
    run(shlex.split("check architectures/ --format json --output architectures/baseline.json"))
    result = run([*shlex.split(command), "--config", "architectures/baseline.json"])
    assert result.exit_code == 2
    assert result.stderr == (
        "initdiag: error: --config 'architectures/baseline.json' is an initdiag result (JSON output), not a spec file\n"
    )


def test_telling_a_result_survives_any_json(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # deeper than json can read: not a result
    assert not is_result(deep)
    (tmp_path / "bad.json").write_text("{not json")
    assert not is_result(tmp_path / "bad.json")
