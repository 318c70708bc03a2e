"""Small output problems a fresh-eyes review found: an input file's rows silently replacing --batch, a
spec's missing `file:` without its line, the sweep legend split inside a swatch, and `schema` refusing
the --format the README promised."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
from typer.testing import CliRunner

from initdiag.cli import app

runner = CliRunner()


def run(*args, env=None):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


@pytest.fixture
def rows100(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("x100.npy", np.random.default_rng(0).standard_normal((100, 16)).astype("float32"))
    return tmp_path


NOTE = "--batch 256 not used: the 100 rows of the input file x100.npy are the batch"


def test_an_input_file_overriding_batch_says_so(rows100):
    result = run("probe", "--layers", "16,16,4", "--input", "x100.npy", "--batch", "256")
    assert result.exit_code == 0, result.output
    assert "batch 100" in result.stdout.splitlines()[0]
    assert f"note: {NOTE}" in result.stdout
    data = json.loads(
        run("probe", "--layers", "16,16,4", "--input", "x100.npy", "--batch", "256", "-f", "json").stdout
    )
    assert data["settings"]["batch"] == 100 and NOTE in data["summary"]["notes"]
    quiet = run("probe", "--layers", "16,16,4", "--input", "x100.npy")  # no --batch given: nothing to say
    assert "not used" not in quiet.stdout
    same = run("probe", "--layers", "16,16,4", "--input", "x100.npy", "--batch", "100")
    assert "not used" not in same.stdout


def test_the_same_note_in_compare_sweep_and_a_spec_file(rows100):
    compared = run(
        "compare", "--layers", "16,16,4", "--init", "he,xavier", "--input", "x100.npy", "--batch", "256"
    )
    assert f"note (he): {NOTE}" in compared.stdout
    swept = run(
        "sweep", "--width", "16", "--depth", "2,3", "--input", "x100.npy", "--batch", "256", "--jobs", "1"
    )
    assert "batch 100" in swept.stdout.splitlines()[0] and f"note: {NOTE}" in swept.stdout
    swept_json = json.loads(
        run("sweep", "--width", "16", "--depth", "2", "--input", "x100.npy", "-f", "json").stdout
    )
    assert swept_json["settings"]["batch"] == 100 and swept_json["notes"] == []
    (rows100 / "f.toml").write_text(
        'input_shape = [16]\nlayers = [{units = 8}, {units = 4}]\n[probe]\nbatch = 64\ninput = "x100.npy"\n'
    )
    spec_note = "probe.batch 64 not used: the 100 rows of the input file x100.npy are the batch"
    assert f"note: {spec_note}" in run("probe", "-c", "f.toml").stdout
    checked = json.loads(run("check", "f.toml", "-f", "json").stdout)["results"][0]
    assert spec_note in checked["summary"]["notes"]
    assert "--batch 32 not used" in run("probe", "-c", "f.toml", "--batch", "32").stdout


MISSING = "layers[0].init: file not found: 'nonexist.npz' (file:PATH.npz needs an existing .npz)"


@pytest.mark.parametrize(
    "command", ["probe -c spec.yaml", "check spec.yaml", "compare -c spec.yaml --act relu,tanh"]
)
def test_a_missing_weights_file_is_named_at_its_line(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(
        'input_shape: [8]\nlayers:\n  - {units: 8, init: "file:nonexist.npz"}\n'
    )
    result = run(*shlex.split(command))
    assert result.exit_code == 2
    assert f"spec.yaml:3: {MISSING}" in result.output


def _plain(text: str) -> list[str]:
    return [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]


@pytest.mark.parametrize("columns", [40, 52, 60, 80, 100, 200])
def test_the_sweep_legend_never_splits_a_swatch(columns):
    env = {"FORCE_COLOR": "1", "COLUMNS": str(columns)}
    result = runner.invoke(
        app, ["sweep", "--width", "32", "--depth", "2,4,8", "--init", "he,xavier", "--jobs", "1"], env=env
    )
    assert result.exit_code == 0, result.output
    lines = _plain(result.stdout)
    start = next(i for i, line in enumerate(lines) if line.startswith("  colour:"))
    legend = lines[start:]
    assert all(len(line.rstrip()) <= columns for line in legend)
    joined = "\n".join(legend)
    for swatch in ("< 1/100", "< 1/10", "< 1/5.62", "inside", "> 5.62", "> 10", "> 100", "not finite"):
        assert swatch in joined, (swatch, joined)  # each whole on one line
    assert all(line.startswith("  ") for line in legend)  # wrapped lines keep the indent


@pytest.mark.parametrize("args", [[], ["--format", "json"], ["-f", "JSON"]])
def test_schema_takes_format_json(args):
    result = run("schema", *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["title"] == "initdiag architecture spec"


def test_schema_refuses_other_formats_in_one_line():
    result = run("schema", "--format", "csv")
    assert result.exit_code == 2
    assert result.stderr == (
        "initdiag: error: --format 'csv': schema prints a JSON Schema, whose one format is json\n"
    )


@pytest.mark.parametrize(
    "command", ["probe -c spec.yaml", "check spec.yaml", "compare -c spec.yaml --act relu,tanh"]
)
def test_a_weights_file_of_the_wrong_shape_is_named_at_its_layers_line(command, tmp_path, monkeypatch):
    """The sibling of a missing file: found while probing, not while reading, and still at its line."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(
        'input_shape: [8]\nlayers:\n  - {units: 4}\n  - {units: 8, init: "file:w.npz"}\n'
    )
    np.savez(tmp_path / "w.npz", dense2=np.zeros((3, 3)))
    result = run(*shlex.split(command))
    assert result.exit_code == 2
    assert (
        "spec.yaml:4: 'w.npz': layer dense2 needs shape (4, 8) (fan_in, fan_out) but the file holds (3, 3)"
        in (result.output)
    )


def test_a_weights_file_is_read_again_from_another_directory_or_when_rewritten(tmp_path, monkeypatch):
    """file:w.npz is relative: the same name in another directory (or the file rewritten) is another file."""
    from initdiag.core.files import load_npz

    for sub, shape in (("a", (2, 2)), ("b", (3, 3))):
        (tmp_path / sub).mkdir()
        monkeypatch.chdir(tmp_path / sub)
        np.savez("w.npz", dense1=np.zeros(shape))
        assert load_npz("w.npz")["dense1"].shape == shape
    np.savez("w.npz", dense1=np.zeros((4, 4)))
    assert load_npz("w.npz")["dense1"].shape == (4, 4)


def test_every_command_takes_format_as_the_readme_says():
    """The README: every command takes --format, and it names each command's formats."""
    from pathlib import Path

    from initdiag.cli.app import COMMANDS

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    claim = readme[readme.index("Every command takes `-h`") :].split("`python -m initdiag`")[0]
    for name in COMMANDS:
        assert f"`{name}`" in claim, name
        assert "--format" in run(name, "--help").stdout, name
