"""The command line, through typer's CliRunner: output, formats, exit codes, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import initdiag
from initdiag.cli import app

runner = CliRunner()
MAIN = ["probe", "--layers", "784,256,256,10", "--act", "relu", "--init", "he"]


ROOT = Path(__file__).resolve().parents[1]


def run(*args: str):
    # piped output is fitted to COLUMNS; pytest-xdist's workers set it to 80
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_main_command_prints_the_table_and_verdict():
    result = run(*MAIN)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("layer", "shape", "W rms", "z mean", "z std", "a mean", "a std", "∂x std", "∂W rms"):
        assert header in out
    for header in ("dead%", "sat%", "distinct", "fwd gain", "bwd gain", "gain (log)", "flags"):
        assert header in out
    assert "dense1  784→256  relu" in out
    assert "dense3   256→10  linear" in out
    assert "✔ ok: forward gain" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert all(line == line.rstrip() for line in out.splitlines())


def test_table_pinned_for_a_small_float64_stack():
    result = run(
        "probe",
        "--layers",
        "6,4,2",
        "--batch",
        "16",
        "--dtype",
        "float64",
        "--act",
        "tanh",
        "--init",
        "xavier",
        "--no-theory",
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "6 → 4 → 2 (2 layers) · tanh · xavier_uniform · batch 16 · seed 0 · float64"
    assert lines[2].split() == [
        "layer", "shape", "act", "W", "rms", "z", "mean", "z", "std", "a", "mean", "a", "std",
        "∂x", "std", "∂W", "rms", "dead%", "sat%", "distinct", "fwd", "gain", "bwd", "gain", "gain", "(log)",
        "flags",
    ]  # fmt: skip
    rows = [line.split() for line in lines[4:6]]
    assert [row[0] for row in rows] == ["dense1", "dense2"]
    assert rows[0][1:3] == ["6→4", "tanh"] and rows[1][1:3] == ["4→2", "linear"]
    data = initdiag.probe("6,4,2", batch=16, dtype="float64", act="tanh", init="xavier")
    from initdiag.render.common import fmt

    assert rows[0][3] == fmt(data.layers[0].weight_rms)
    assert rows[1][5] == fmt(data.layers[1].preact_var ** 0.5)
    assert rows[0][-3:-1] == [fmt(data.layers[0].forward_gain), fmt(data.layers[0].backward_gain)]
    assert "●" in rows[0][-1] and "○" in rows[0][-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "784"], "needs an input width and at least one layer"),
        (["--layers", "784,,10"], "empty width at position 2"),
        (["--layers", "784,0,10"], "width must be a positive integer, got 0"),
        (["--layers", "784,-5,10"], "width must be a positive integer, got -5"),
        (["--layers", "a,b"], "'a' is not a width"),
        (["--layers", "784,10", "--init", "hee"], "unknown initializer 'hee'; did you mean 'he'?"),
        (["--layers", "784,10", "--init", "normal:-1"], "std must be >= 0, got -1"),
        (["--layers", "784,10", "--init", "normal:abc"], "std must be a number, got 'abc'"),
        (["--layers", "784,10", "--init", "uniform:low=1,high=0"], "low must be below high"),
        (["--layers", "784,10", "--act", "bogus"], "unknown activation 'bogus'; allowed:"),
        (["--layers", "784,10", "--batch", "0"], "--batch must be a positive integer, got 0"),
        (["--layers", "784,10", "--trials", "0"], "--trials must be a positive integer, got 0"),
        (["--layers", "784,10", "--max-gain", "0.5"], "--max-gain must be greater than 1, got 0.5"),
        (["--layers", "784,10", "--init", "file:/nonexistent/w.npz"], "file not found: '/nonexistent/w.npz'"),
        (["--layers", "784,10", "--input", "/nonexistent/x.npy"], "file not found: '/nonexistent/x.npy'"),
        (["--layers", "1000000,1000000,10"], "this stack needs about 7.3 TiB"),
        (["--layers", "784,10", "--batch", "abc"], "Invalid value for '--batch'"),
        (["--layers", "784,10", "--bogus"], "No such option: --bogus"),
        (
            ["--layers", "784,10", "--format", "xml"],
            "--format 'xml' is not one of table, json, csv, markdown",
        ),
        (["--layers", "784,10", "--loss", "l2"], "--loss 'l2' is not one of unit, mse, xent"),
        (["--layers", "784,10", "--dtype", "float16"], "--dtype 'float16' is not one of float32, float64"),
        (["--layers", "784,10", "--fail-on", "vanish"], "--fail-on: unknown flag 'vanish'"),
        (["--layers", "784,10", "--seed", "-1"], "--seed must be a non-negative integer"),
        (["--layers", "784,1", "--loss", "xent"], "--loss xent needs at least 2 outputs"),
        (["--layers", "784,10", "--bias-init", "lsuv"], "'lsuv' is a weight-only initializer"),
        ([], "a stack is needed: --layers 784,256,10 or --config SPEC.toml"),
        (
            ["--layers", "3x32x32,10"],
            "'3x32x32' looks like an image shape; the shorthand builds dense stacks",
        ),
        (["--layers", "256,256,10", "--dropout", "1"], "--dropout must be a number in [0, 1), got 1"),
        (["--layers", "256,256,10", "--dropout", "-0.1"], "--dropout must be a number in [0, 1), got -0.1"),
        (["--layers", "256,256,10", "--norm", "group"], "--norm 'group' is not one of none, batch, layer"),
        (
            ["--layers", "256,128,10", "--residual"],
            "--residual: no hidden layer of '256,128,10' keeps its width",
        ),
        (["--layers", "256,256,10", "--residual-scale", "0.5"], "--residual-scale needs --residual"),
        (
            ["--config", str(ROOT / "sample_configs" / "mlp_he.toml"), "--norm", "batch"],
            "--norm shapes a --layers shorthand; in a spec file, write the layers",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run("probe", *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("initdiag: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_npz_errors_through_the_cli(tmp_path):
    np.savez(tmp_path / "w.npz", dense1=np.zeros((784, 20)), dense2=np.zeros((20, 10)))
    result = run("probe", "--layers", "784,20,10", "--init", f"file:{tmp_path / 'w.npz'}")
    assert result.exit_code == 0, result.output
    result = run("probe", "--layers", "784,30,10", "--init", f"file:{tmp_path / 'w.npz'}")
    assert result.exit_code == 2
    assert (
        "layer dense1 needs shape (784, 30) (fan_in, fan_out) but the file holds (784, 20)" in result.stderr
    )
    np.savez(tmp_path / "p.npz", dense1=np.array([None], dtype=object), allow_pickle=True)
    result = run("probe", "--layers", "784,30,10", "--init", f"file:{tmp_path / 'p.npz'}")
    assert result.exit_code == 2 and "pickled Python objects, refused" in result.stderr


def test_debug_shows_the_exception():
    result = run("probe", "--layers", "784", "--debug")
    assert isinstance(result.exception, initdiag.InitdiagError)


def test_unknown_command_suggests():
    result = run("prob", "--layers", "1,2")
    assert result.exit_code == 2
    assert "No such command 'prob'. Did you mean 'probe'?" in result.stderr


@pytest.mark.parametrize(
    "args, flags, code",
    [
        # zero weights and biases: z = 0 everywhere, so no signal and no gradient passes (vanishing)
        (["--init", "zeros", "--fail-on", "symmetric"], {"vanishing", "dead", "symmetric"}, 1),
        (["--init", "zeros", "--fail-on", "exploding,saturated"], {"vanishing", "dead", "symmetric"}, 0),
        (["--init", "he", "--fail-on", "any"], set(), 0),
        (["--act", "sigmoid", "--init", "normal:10", "--fail-on", "any"], {"saturated", "exploding"}, 1),
    ],
)
def test_fail_on(args, flags, code):
    result = run("probe", "--layers", "784,256,256,10", *args, "--format", "json")
    assert result.exit_code == code
    assert set(json.loads(result.stdout)["summary"]["flags"]) == flags


def test_json_is_strict_deterministic_and_complete():
    args = ("probe", "--layers", "256,256x60,10", "--init", "normal:1", "--format", "json")
    first, second = run(*args), run(*args)
    assert first.exit_code == 0
    assert first.stdout == second.stdout  # byte-identical
    assert "Warning" not in first.stderr and first.stderr == ""
    data = json.loads(first.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert data["schema_version"] == 1
    assert data["initdiag_version"] == initdiag.__version__
    assert data["settings"]["seed"] == 0 and data["settings"]["dtype"] == "float32"
    assert data["layers"][-1]["act_var"] is None
    assert "nonfinite" in data["summary"]["flags"]


def test_overflow_table_shows_inf_and_nan():
    result = run("probe", "--layers", "256,256x60,10", "--init", "normal:1")
    assert result.exit_code == 0
    assert " nan " in result.stdout and " inf " in result.stdout
    assert result.stderr == ""


def test_csv_and_markdown():
    result = run(*MAIN, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["name"] for row in rows] == ["dense1", "dense2", "dense3"]
    assert float(rows[0]["preact_var"]) == pytest.approx(2.0, rel=0.1)
    assert rows[0]["flags"] == ""
    result = run("probe", "--layers", "20,10,5", "--init", "zeros", "--format", "csv")
    assert next(iter(csv.DictReader(io.StringIO(result.stdout))))["flags"] == "vanishing;dead;symmetric"
    md = run(*MAIN, "--format", "markdown").stdout
    assert md.startswith("**initdiag probe** · 784 → 256 → 256 → 10")
    assert "| layer | shape | act | W rms |" in md
    assert "| dense1 | 784→256 | relu |" in md
    assert "**✔ ok: forward gain" in md


def test_trials_in_json_and_table():
    result = run("probe", "--layers", "64,32,8", "--trials", "3", "--format", "json")
    data = json.loads(result.stdout)
    assert data["settings"]["trials"] == 3
    assert data["layers"][0]["weight_std_sd"] > 0
    table = run("probe", "--layers", "64,32,8", "--trials", "3").stdout
    assert "3 trials" in table and "±" in table


def test_input_file_through_the_cli(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(32, 10)))
    result = run("probe", "--layers", "10,5", "--input", str(tmp_path / "x.npy"), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["settings"]["batch"] == 32


def test_version_help_and_module_entry_point():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout == f"initdiag {initdiag.__version__}\n"
    help_text = run("probe", "-h").stdout
    assert "Example: initdiag probe --layers 784,256,256,10 --act relu --init he" in help_text
    for option in (
        "--layers",
        "--act",
        "--out-act",
        "--init",
        "--bias-init",
        "--batch",
        "--seed",
        "--trials",
    ):
        assert option in help_text
    for option in ("--loss", "--input", "--dtype", "--max-gain", "--format", "--fail-on"):
        assert option in help_text
    assert "Example:" in run("--help").stdout
    module = subprocess.run([sys.executable, "-m", "initdiag", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout.strip() == f"initdiag {initdiag.__version__}"


def test_console_script_start_up_stays_light():
    """The console script's dense probe imports none of the transformer's layers, and freezes the
    objects at the end so that the interpreter's exit does not walk them (benchmarks/startup.py)."""
    script = (
        "import gc, sys\n"
        "from initdiag.cli import main\n"
        "sys.argv = ['initdiag', 'probe', '--layers', '8,4,2']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('initdiag.core.mlp', 'initdiag.core.transformer') if m in sys.modules))\n"
        "print(gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "dense1" in done.stdout, done.stdout
    assert done.stdout.splitlines()[-2:] == ["[]", "True"]


def test_every_command_has_help_with_an_example_and_a_readme_entry():
    """Every command has -h with an example, a row in the README's command table, and a page in
    docs/commands/ (inits and explain share one) that the site's navigation lists."""
    from initdiag.cli import COMMANDS

    readme = (ROOT / "README.md").read_text()
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {"explain": "inits"}
    assert set(COMMANDS) == {
        "probe",
        "compare",
        "sweep",
        "check",
        "audit",
        "train",
        "coordcheck",
        "inits",
        "explain",
        "schema",
    }
    for name in COMMANDS:
        result = runner.invoke(app, [name, "-h"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, name
        assert "Example: initdiag " + name in " ".join(result.stdout.split()), name
        assert f"`initdiag {name}" in readme, name
        page = f"commands/{pages.get(name, name)}.md"
        title = (ROOT / "docs" / page).read_text().splitlines()[0]
        assert title.startswith("# ") and f"`initdiag {name}`" in title, name
        assert page in nav, name


def test_help_text_loses_no_square_brackets_to_rich_markup():
    """rich reads [plot] in "pip install 'initdiag[plot]'" as a markup tag and drops it: every
    option's help must reach the screen whole (words compared with whitespace and the box removed)."""
    import re

    import typer.main

    from initdiag.cli import COMMANDS

    def words(text: str) -> str:
        return re.sub(r"[\s│╭╮╰╯─]+", "", text)

    for name, (function, _) in COMMANDS.items():
        shown = words(runner.invoke(app, [name, "-h"], env={"COLUMNS": "400"}).stdout)
        command = typer.main.get_command_from_info(
            typer.models.CommandInfo(callback=function),
            pretty_exceptions_short=False,
            rich_markup_mode="rich",
        )
        for param in command.params:
            help_text = getattr(param, "help", None) or ""
            plain = help_text.replace("\\[", "[")
            assert words(plain) in shown, (name, param.name, plain)


def test_a_long_list_of_candidates_is_refused_at_once():
    """A name given twice in a list of 20,000 is found in one pass, and the line quotes a part of the list."""
    import time

    start = time.perf_counter()
    result = run("compare", "--layers", "8,4", "--init", ",".join(["he"] * 20_000))
    assert time.perf_counter() - start < 1.0  # each item was counted in the whole list: 5 s
    assert result.exit_code == 2
    assert result.stderr == f"initdiag: error: --init '{'he,' * 19}he…': he given twice\n"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--act", "bogus", "--act: unknown activation 'bogus'"),
        ("--out-act", "bogus", "--out-act: unknown activation 'bogus'"),
        ("--init", "normal:std=-1", "--init: 'normal:std=-1': std must be >= 0"),
        ("--bias-init", "bogus", "--bias-init: unknown initializer 'bogus'"),
    ],
)
def test_a_bad_name_says_which_option_it_came_from(option, value, message):
    result = runner.invoke(app, ["probe", "--layers", "8,8,4", option, value])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"initdiag: error: {message}"), result.stderr
    from initdiag import probe

    with pytest.raises(ValueError, match=f"^{option[2:].replace('-', '_')}: "):
        probe([8, 8, 4], **{option[2:].replace("-", "_"): value})
