"""initdiag compare and initdiag sweep: the same numbers as the single probes, in grid order whether
cells run serially or on processes, and their output pinned at a fixed width."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

import initdiag
from initdiag.analysis.compare import badness, candidate_grid, compare, sweep
from initdiag.cli import app
from initdiag.core.callspec import split_list
from initdiag.errors import InitdiagError
from initdiag.render.common import SPARKS, fmt
from initdiag.render.compare import sparkline
from initdiag.render.sweep import heat_style

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "120"})


def test_split_list_keeps_the_arguments_of_each_name():
    assert split_list("he,xavier,normal:0.01", "--init") == ["he", "xavier", "normal:0.01"]
    assert split_list("uniform:low=-1,high=1,he_uniform:mode=fan_out,gain=auto,lecun", "--init") == [
        "uniform:low=-1,high=1",
        "he_uniform:mode=fan_out,gain=auto",
        "lecun",
    ]
    with pytest.raises(InitdiagError, match="an empty item"):
        split_list("he,,xavier", "--init")
    with pytest.raises(InitdiagError, match="he given twice"):
        split_list("he,xavier,he", "--init")


def test_candidates_are_the_grid_with_labels_of_what_varies():
    grid = candidate_grid(["he", "xavier"], ["relu", "tanh"])
    assert [c.label for c in grid] == ["he · relu", "he · tanh", "xavier · relu", "xavier · tanh"]
    assert [c.label for c in candidate_grid(["he", "xavier"], [])] == ["he", "xavier"]
    assert [c.label for c in candidate_grid(["he"], ["relu", "gelu"])] == ["relu", "gelu"]


def test_compare_numbers_are_the_single_probes():
    comparison = compare(layers="64,64x4,10", inits=["he", "xavier"], acts=["relu", "tanh"],
                         probe_options={"batch": 64, "seed": 3, "trials": 2})  # fmt: skip
    for cand, result in zip(comparison.candidates, comparison.results, strict=True):
        alone = initdiag.probe("64,64x4,10", init=cand.init, act=cand.act, batch=64, seed=3, trials=2)
        assert initdiag.to_json(result) == initdiag.to_json(alone)


def test_ranking_is_verdict_then_distance_of_the_gains_from_one():
    assert badness([1.0, 1.0], "ok") < badness([3.0, 1.0], "ok") < badness([1.0, 1.0], "warn")
    assert badness([1e-3, 1.0], "fail") < badness([1e-9, 1.0], "fail") < badness([math.nan, 1.0], "fail")
    comparison = compare(layers="128,128x8,10", inits=["normal:0.01", "xavier", "he"],
                         probe_options={"batch": 64})  # fmt: skip
    assert [comparison.candidates[i].label for i in comparison.order()] == ["he", "xavier", "normal:0.01"]
    data = comparison.to_dict()
    assert data["ranking"] == ["he", "xavier", "normal:0.01"]
    assert [r["candidate"]["init"] for r in data["results"]] == ["normal:0.01", "xavier_uniform", "he_normal"]
    assert set(data["results"][0]) >= {"candidate", "spec", "settings", "layers", "summary"}


def test_sweep_cells_are_the_single_probes_and_parallel_equals_serial():
    options = {"batch": 32, "seed": 1}
    serial = sweep(width=32, depths=[2, 5], inits=["he", "normal:0.05"], acts=["tanh"], probe_options=options,
                   jobs=1)  # fmt: skip
    parallel = sweep(width=32, depths=[2, 5], inits=["he", "normal:0.05"], acts=["tanh"], probe_options=options,
                     jobs=2)  # fmt: skip
    assert serial.to_dict() == parallel.to_dict()
    assert serial.column_key == "depth" and serial.row_keys == ("init",)
    cell = serial.cells[1][1]
    assert cell.values == {"init": "normal:0.05", "act": "tanh", "depth": 5, "width": 32}
    alone = initdiag.probe("32,32x5", init="normal:0.05", act="tanh", batch=32, seed=1).summary
    assert (cell.forward_gain, cell.backward_gain, cell.verdict) == (
        alone.forward_gain, alone.backward_gain, alone.verdict)  # fmt: skip


def test_sweep_axes_activation_by_initializer_and_trials():
    result = sweep(width=16, depths=[3], inits=["he", "xavier"], acts=["relu", "tanh", "gelu"],
                   probe_options={"batch": 16, "trials": 2}, jobs=1)  # fmt: skip
    assert result.column_key == "init" and result.row_keys == ("act",)
    assert [r["act"] for r in result.rows] == ["relu", "tanh", "gelu"]
    cells = result.to_dict()["cells"]
    assert len(cells) == 6 and {"forward_gain_sd", "backward_gain_sd", "loss_sd"} <= set(cells[0])
    alone = initdiag.probe("16,16x3", init="xavier", act="gelu", batch=16, trials=2).summary
    assert cells[-1]["forward_gain"] == alone.forward_gain
    assert cells[-1]["forward_gain_sd"] == alone.sd["forward_gain"]


def test_heat_map_colours_follow_the_log_scale():
    """Bands in units of log T: beyond T^2, beyond T, the warn band past T^0.75, inside."""
    t = 10.0
    assert heat_style(1.0, t) == heat_style(2.0, t) == "black on green"
    assert heat_style(7.0, t) == "black on yellow"  # past 10^0.75: the warn band
    assert heat_style(0.15, t) == "black on bright_cyan"
    assert heat_style(50.0, t) == "black on bright_red"
    assert heat_style(5e3, t) == heat_style(1e30, t) == "white on red"
    assert heat_style(0.05, t) == "black on cyan"
    assert heat_style(1e-3, t) == heat_style(0.0, t) == "white on blue"
    assert heat_style(math.nan, t) == heat_style(math.inf, t) == "white on magenta"


def test_sparkline_levels_are_fixed_decades():
    """One decade per height from 1e-3 to 1e3 whatever the candidates: 1 is the middle height."""
    chars = [c for c, _ in sparkline([1e-5, 1e-3, 0.1, 1.0, 10.0, 1e3, 1e9, math.nan], 10)]
    assert chars == [SPARKS[0], SPARKS[0], SPARKS[2], SPARKS[3], SPARKS[4], SPARKS[6], SPARKS[6], "×"]


COMPARE_OUTPUT = """\
compare · 32 → 32 → 32 → 32 → 4 (4 layers) · batch 64 · seed 0 · float32

            he         normal:0.5
 layer     fwd    bwd         fwd   bwd
 ──────────────────────────────────────
 dense1      1   1.13           1  72.1
 dense2  0.876   1.13        3.51  18.1
 dense3   1.13  0.845        18.1  3.38
 dense4   1.49      1        95.6     1

  fwd, bwd: each layer's cumulative forward and backward gain in E[x^2] (the probe's gains; dim where not judged)

best first

 #  candidate   fwd gain  bwd gain  worst flag  verdict  reason
 ──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────
 1  he              1.49      1.13              ok
 2  normal:0.5      95.6      18.1  exploding   fail     layer dense4: forward gain 95.6 > 10 (exploding); 1 more layer
                                                         too


depth profile: forward gain per judged layer, log10 from -3 (▁) to 3 (▇); ▄ is 1, × not a number
  he          ▄▄▄▄  1 → 1.49
  normal:0.5  ▄▅▅▆  1 → 95.6
"""

SWEEP_OUTPUT = """\
sweep · forward gain · width 16 · act relu · batch 16 · seed 0 · float32

 init \\ depth            2             8
 ───────────────────────────────────────
 he                 1.33 ✔       0.261 !
 normal:0.01     0.00106 ✘    5.48e-23 ✘

  each cell: the end-to-end forward gain in E[x^2] and the verdict of its probe (✔ ok, ! warn, ✘ fail: a cell fails on
  any flag, not only its gain)
"""


def test_compare_command_output():
    result = run("compare", "--layers", "32,32x3,4", "--init", "he,normal:0.5", "--batch", "64")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout == COMPARE_OUTPUT  # pinned at 120 columns
    lines = result.stdout.splitlines()
    assert lines[0] == "compare · 32 → 32 → 32 → 32 → 4 (4 layers) · batch 64 · seed 0 · float32"
    assert lines[2].split() == ["he", "normal:0.5"]
    assert lines[3].split() == ["layer", "fwd", "bwd", "fwd", "bwd"]
    assert [line.split()[0] for line in lines[5:9]] == ["dense1", "dense2", "dense3", "dense4"]
    # the probe's own gains, in E[x^2]: forward from dense1, backward from dense4
    he, big = (initdiag.probe("32,32x3,4", init=i, batch=64) for i in ("he", "normal:0.5"))
    assert lines[8].split() == [
        "dense4",
        *(fmt(g) for r in (he, big) for g in (r.layers[3].forward_gain, 1.0)),
    ]
    assert lines[5].split()[1::2] == ["1", "1"]
    assert "best first" in result.stdout
    ranks = [line.split()[:2] for line in lines if line.strip()[:2] in ("1 ", "2 ")]
    assert ranks == [["1", "he"], ["2", "normal:0.5"]]
    assert "depth profile: forward gain per judged layer" in result.stdout
    assert (
        result.stdout
        == run("compare", "--layers", "32,32x3,4", "--init", "he,normal:0.5", "--batch", "64").stdout
    )


def test_compare_formats():
    args = ["compare", "--layers", "16,16,4", "--act", "relu,tanh", "--batch", "16"]
    data = json.loads(run(*args, "--format", "json").stdout)
    assert [r["candidate"]["label"] for r in data["results"]] == ["relu", "tanh"]
    csv_text = run(*args, "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("candidate,candidate_init,candidate_act,name,kind")
    assert len(csv_text.splitlines()) == 1 + 2 * 2
    md = run(*args, "--format", "markdown").stdout
    assert md.startswith("**initdiag compare · 16 → 16 → 4") and "| layer | relu fwd | relu bwd |" in md


def test_sweep_command_output_and_formats():
    args = [
        "sweep",
        "--width",
        "16",
        "--depth",
        "2,8",
        "--init",
        "he,normal:0.01",
        "--batch",
        "16",
        "--jobs",
        "1",
    ]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no progress bar off a terminal
    assert result.stdout == SWEEP_OUTPUT  # pinned at 120 columns
    lines = result.stdout.splitlines()
    assert lines[0] == "sweep · forward gain · width 16 · act relu · batch 16 · seed 0 · float32"
    assert lines[2].split() == ["init", "\\", "depth", "2", "8"]
    assert lines[4].split()[0] == "he" and lines[5].split()[0] == "normal:0.01"
    assert lines[4].split()[1:] == ["1.33", "✔", "0.261", "!"]
    assert "✔ ok, ! warn, ✘ fail" in result.stdout
    data = json.loads(run(*args, "--format", "json").stdout)
    assert [c["depth"] for c in data["cells"]] == [2, 8, 2, 8]
    assert data["rows"] == ["init"] and data["columns"] == "depth"
    alone = initdiag.probe("16,16x8", init="normal:0.01", batch=16).summary
    assert data["cells"][3]["forward_gain"] == pytest.approx(alone.forward_gain, rel=1e-12)
    csv_lines = run(*args, "--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("init,act,depth,width,forward_gain,backward_gain,loss,verdict,flags")
    md = run(*args, "--format", "markdown", "--metric", "backward").stdout
    assert "| init \\ depth | 2 | 8 |" in md and "backward gain per cell" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--layers", "16,4", "--init", "he"], "compare needs at least two candidates"),
        (
            ["compare", "--layers", "16,4", "--init", "he,hee"],
            "unknown initializer 'hee'; did you mean 'he'?",
        ),
        (["compare", "--layers", "16,4", "--init", "he,,xavier"], "--init 'he,,xavier': an empty item"),
        (["sweep", "--depth", "2,x"], "--depth '2,x': 'x' is not a positive integer"),
        (["sweep", "--depth", "2,0"], "--depth '2,0': '0' is not a positive integer"),
        (["sweep", "--depth", "2,2"], "--depth '2,2': 2 given twice"),
        (["sweep", "--depth", "²"], "--depth '²': '²' is not a positive integer"),
        (
            ["sweep", "--depth", "100000000"],
            "--depth 100,000,000 is more layers than initdiag takes (10,000)",
        ),
        (["sweep", "--metric", "sideways"], "--metric 'sideways' is not one of forward, backward"),
        (["sweep", "--jobs", "0"], "--jobs must be a positive integer, got 0"),
        (["sweep", "--width", "0"], "--width '0': '0' is not a positive integer"),
        (["sweep", "--width", "64,64"], "--width '64,64': 64 given twice"),
        (["sweep", "--init", "he,xavier", "--act", "tanh,bogus"], "unknown activation 'bogus'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("initdiag: error: ")
    assert message in lines[0]


def test_compare_with_trials_shows_the_spread():
    result = run("compare", "--layers", "16,16x3,4", "--init", "he,xavier", "--batch", "16", "--trials", "3")
    assert result.exit_code == 0, result.output
    comparison = compare(layers="16,16x3,4", inits=["he", "xavier"], probe_options={"batch": 16, "trials": 3})
    he = comparison.results[0].summary
    assert (
        f"{initdiag.analysis.result.format_number(he.forward_gain)} ±{initdiag.analysis.result.format_number(he.sd['forward_gain'])}"
        in (result.stdout)
    )
    assert "3 trials" in result.stdout.splitlines()[0]


def test_progress_bar_only_on_a_terminal_and_for_more_than_a_few_cells(monkeypatch):
    import io
    import sys

    from initdiag.cli.stacks import _progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    with _progress() as progress:
        for done in range(1, 4):
            progress(done, 3)  # three cells: no bar
        assert progress._bar is None
    with _progress() as progress:
        for done in range(1, 7):
            progress(done, 6)
        assert progress._bar is not None and progress._bar.tasks[0].completed == 6
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a log
    with _progress() as progress:
        progress(1, 24)
        assert progress._bar is None


def test_a_sweep_cell_says_why_it_is_not_ok():
    """A warn has no flag (a gain close to its limit): the cell's reasons say so, as the probe's do."""
    from initdiag.analysis.compare import sweep
    from initdiag.analysis.probe import run_probe
    from initdiag.network.job import job

    result = sweep(width=64, depths=[4], inits=["he", "xavier"], acts=["relu"], jobs=1)
    xavier = result.cells[0][1] if result.columns[1]["init"].startswith("xavier") else result.cells[1][0]
    stack, settings, _ = job(layers="64,64x4", stack_options={"init": "xavier", "act": "relu"})
    expected = run_probe(stack, settings).summary
    assert xavier.verdict == expected.verdict == "warn" and xavier.flags == []
    assert list(xavier.reasons) == expected.reasons and "close to vanishing" in xavier.reasons[0]
    assert xavier.to_dict()["reasons"] == expected.reasons
