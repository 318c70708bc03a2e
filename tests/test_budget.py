"""No long runs by mistake: work estimated past the time limit (10 min; INITDIAG_MAX_SECONDS) is one
error line at once, with the estimate and what to lower, for probe, compare, sweep, check and train;
--trials stops at 1000. The review's `probe --layers 784,256,10 --trials 100000` ran 20 s+ before it
was killed."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

import initdiag
from initdiag.analysis.budget import MAX_SECONDS, duration, probe_seconds, train_seconds
from initdiag.cli import app
from initdiag.errors import InitdiagError
from initdiag.network.job import job

runner = CliRunner()
BIG = ["--layers", "784,256,10", "--trials", "1000", "--batch", "65536"]  # about 2 h here


def run(*args, env=None):
    start = time.perf_counter()
    result = runner.invoke(app, list(args), env={"COLUMNS": "200", "INITDIAG_MAX_SECONDS": "", **(env or {})})
    return result, time.perf_counter() - start


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["probe", *BIG], "this probe would take about"),
        (["compare", *BIG, "--init", "he,xavier"], "comparing 2 candidates would take about"),
        (["sweep", "--width", "2048", "--depth", "16,32,64", "--trials", "1000", "--jobs", "1"],
         "this sweep of 3 cells would take about"),
        (["train", "--iters", "100000000", "--jobs", "1"], "training 6 runs of 2,10,5,1 for 100,000,000 steps"),
    ],
    ids=["probe", "compare", "sweep", "train"],
)  # fmt: skip
def test_long_work_is_refused_at_once(args, message):
    result, seconds = run(*args)
    assert result.exit_code == 2, result.output
    assert seconds < 5
    line = result.stderr.strip()
    assert "\n" not in line and message in line
    assert "(estimated; the limit is 10 min, INITDIAG_MAX_SECONDS sets another); " in line


def test_the_review_case_trials_100000_is_refused_by_the_cap():
    result, seconds = run("probe", "--layers", "784,256,10", "--trials", "100000")
    assert result.exit_code == 2 and seconds < 5
    assert result.stderr == (
        "initdiag: error: --trials 100000 is more than initdiag takes (at most 1,000); a statistic's "
        "spread hardly changes past a few dozen trials\n"
    )


def test_check_refuses_one_long_spec_and_runs_the_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "long.toml").write_text(
        "input_shape = [784]\nlayers = [{units = 256}, {units = 10}]\n[probe]\ntrials = 1000\nbatch = 65536\n"
    )
    (tmp_path / "short.toml").write_text("input_shape = [16]\nlayers = [{units = 16}, {units = 4}]\n")
    result, seconds = run("check", ".", "--jobs", "1")
    assert result.exit_code == 2 and seconds < 10
    assert " short.toml  short  PASS" in result.stdout
    assert "  long.toml: probing this spec would take about " in result.stdout
    assert "; lower its probe.trials or probe.batch (or give --trials)" in result.stdout


def test_the_limit_can_be_moved_or_lifted(monkeypatch):
    args = ["probe", "--layers", "64,64x4,10"]
    assert run(*args)[0].exit_code == 0
    refused, _ = run(*args, env={"INITDIAG_MAX_SECONDS": "0.001"})
    assert refused.exit_code == 2 and "the limit is 0 s" in refused.stderr
    assert run(*args, env={"INITDIAG_MAX_SECONDS": "0"})[0].exit_code == 0  # no limit
    bad, _ = run(*args, env={"INITDIAG_MAX_SECONDS": "soon"})
    assert bad.exit_code == 2 and "INITDIAG_MAX_SECONDS='soon' is not a number of seconds" in bad.stderr
    monkeypatch.setenv("INITDIAG_MAX_SECONDS", "0.001")
    with pytest.raises(InitdiagError, match="this probe would take about"):
        initdiag.probe("64,64x4,10")


def test_the_estimate_grows_with_the_work_and_the_usual_runs_are_far_below_the_limit():
    stack, settings, _ = job(layers="784,256,256,10")
    one = probe_seconds(stack, settings)
    assert 0.001 < one < 1  # the README's first probe
    plain = {"theory": False}  # the theory is computed once, whatever the trials
    stack1, settings1, _ = job(layers="784,256,256,10", probe_options=plain)
    stack2, settings2, _ = job(layers="784,256,256,10", probe_options={**plain, "trials": 10, "batch": 512})
    assert probe_seconds(stack2, settings2) == pytest.approx(20 * probe_seconds(stack1, settings1), rel=0.3)
    stack3, settings3, _ = job(config="sample_configs/vgg_cifar.toml")
    assert 0.5 < probe_seconds(stack3, settings3) < MAX_SECONDS / 20  # conv: the largest sample
    default_train = train_seconds([2, 10, 5, 1], 6, 300, 15000, "float32", 1)
    assert 0.5 < default_train < 30
    assert duration(40) == "40 s" and duration(1980) == "33 min" and duration(7200) == "2 h"
