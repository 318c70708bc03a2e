"""Every public function's errors name its own keyword (``max_gain``, ``depths``,
``probe_options['batch']``), never a command-line flag; the command line's name its flags; a bool
is not an integer; and the Python and command-line rules agree (compare needs two candidates in
both). One line each, an `InitdiagError`, never a bare TypeError."""

from __future__ import annotations

import math
import pickle

import pytest
from typer.testing import CliRunner

import initdiag
from initdiag import InitdiagError, TrainSettings
from initdiag.cli import app
from initdiag.errors import command_line_spelling, keyword_names

runner = CliRunner()
NAN = math.nan
STACK = "16,16,4"


def _probe(**kw):
    return initdiag.probe(STACK, **{"batch": 8, **kw})


def _compare(**kw):
    return initdiag.compare(**{"layers": STACK, "inits": ["he", "xavier"], **kw})


def _sweep(**kw):
    return initdiag.sweep(**{"width": 8, "depths": [2], "inits": ["he"], "acts": ["relu"], "jobs": 1, **kw})


def _check(**kw):
    return initdiag.run_check(**{"patterns": ["sample_configs/mlp_he.toml"], "jobs": 1, **kw})


def _train(inits=("he",), **kw):
    return initdiag.train(
        list(inits) if isinstance(inits, tuple) else inits, TrainSettings(**{"iters": 5, **kw})
    )


# (function, keyword arguments, what the message must say: the keyword, and the rule)
CASES = [
    (_probe, {"max_gain": 0.5}, "max_gain must be greater than 1, got 0.5"),
    (_probe, {"max_gain": NAN}, "max_gain must be greater than 1, got nan"),
    (_probe, {"max_gain": True}, "max_gain must be greater than 1, got True"),
    (_probe, {"batch": True}, "batch must be a positive integer, got True"),
    (_probe, {"batch": 2.5}, "batch must be a positive integer, got 2.5"),
    (_probe, {"seed": True}, "seed must be a non-negative integer, got True"),
    (_probe, {"seed": -1}, "seed must be a non-negative integer, got -1"),
    (_probe, {"trials": True}, "trials must be a positive integer, got True"),
    (_probe, {"trials": 5000}, "trials 5000 is more than initdiag takes (at most 1,000)"),
    (_probe, {"dropout": 2.0}, "dropout must be a number in [0, 1), got 2"),
    (_probe, {"norm": "x"}, "norm 'x'"),
    (_probe, {"residual_scale": 0.5}, "residual_scale needs residual"),
    (_probe, {"loss": "x"}, "unknown loss 'x'"),
    (_probe, {"dtype": "x"}, "unknown dtype 'x'"),
    (_probe, {"input": "x"}, "input 'x'"),
    (
        _compare,
        {"inits": ["he"]},
        "compare needs at least two candidates: inits he,xavier and/or acts relu,tanh",
    ),
    (_compare, {"inits": [1, 2]}, "inits must be a list of names"),
    (_compare, {"acts": "relu,,tanh"}, "acts 'relu,,tanh': an empty item"),
    (_compare, {"max_gain": NAN}, "max_gain must be greater than 1, got nan"),
    (_compare, {"layers": "x"}, "layers 'x'"),
    (
        _compare,
        {"probe_options": {"batch": True}},
        "probe_options['batch'] must be a positive integer, got True",
    ),
    (_compare, {"probe_options": {"trials": 0}}, "probe_options['trials'] must be a positive integer, got 0"),
    (_compare, {"stack_options": {"dropout": 2.0}}, "stack_options['dropout'] must be a number in [0, 1)"),
    (_sweep, {"width": True}, "width must be a positive integer, got True"),
    (_sweep, {"depths": [0]}, "depths must be positive integers, e.g. 2,4,8; got 0"),
    (_sweep, {"depths": [True]}, "depths must be positive integers, e.g. 2,4,8; got True"),
    (_sweep, {"depths": []}, "depths must be a list of positive integers"),
    (_sweep, {"depths": [2, 2]}, "depths lists a depth twice"),
    (_sweep, {"inits": [3]}, "inits must be a list of names"),
    (_sweep, {"metric": "x"}, "metric 'x' is not one of forward, backward"),
    (_sweep, {"max_gain": 1}, "max_gain must be greater than 1, got 1"),
    (_sweep, {"jobs": True}, "jobs must be a positive integer, got True"),
    (_sweep, {"probe_options": {"seed": True}}, "probe_options['seed'] must be a non-negative integer"),
    (_check, {"patterns": []}, "check needs spec files, directories or globs"),
    (_check, {"patterns": [3]}, "patterns must be a list of spec files"),
    (_check, {"trials": True}, "trials must be a positive integer, got True"),
    (_check, {"trials": 5000}, "trials 5000 is more than initdiag takes"),
    (_check, {"seed": True}, "seed must be a non-negative integer, got True"),
    (_check, {"max_gain": NAN}, "max_gain must be greater than 1, got nan"),
    (_check, {"baseline_factor": NAN}, "baseline_factor must be greater than 1, got nan"),
    (_check, {"jobs": True}, "jobs must be a positive integer, got True"),
    (_check, {"baseline": "nope.json"}, "baseline: file not found: 'nope.json'"),
    (_train, {"inits": []}, "train needs at least one initializer: inits he,xavier"),
    (_train, {"inits": [1]}, "inits must be a list of names"),
    (_train, {"iters": True}, "iters must be a positive integer, got True"),
    (_train, {"trials": True}, "trials must be a positive integer, got True"),
    (_train, {"trials": 5000}, "trials 5000 is more than initdiag takes"),
    (_train, {"seed": True}, "seed must be a non-negative integer, got True"),
    (_train, {"n_train": 1}, "n_train must be an integer >= 2, got 1"),
    (_train, {"jobs": True}, "jobs must be a positive integer, got True"),
    (_train, {"lr": 0}, "lr must be a positive number, got 0"),
]


@pytest.mark.parametrize(("function", "kwargs", "message"), CASES,
                         ids=[f"{f.__name__[1:]}-{next(iter(k))}-{i}" for i, (f, k, _) in enumerate(CASES)])  # fmt: skip
def test_python_errors_name_the_keyword(function, kwargs, message, monkeypatch):
    monkeypatch.chdir(initdiag.__file__.rsplit("/initdiag/", 1)[0])
    with pytest.raises(InitdiagError) as caught:
        function(**kwargs)
    text = str(caught.value)
    assert message in text
    assert "--" not in text and "\n" not in text


CLI_CASES = [
    (["probe", "--layers", STACK, "--max-gain", "nan"], "--max-gain must be greater than 1, got nan"),
    (
        ["probe", "--layers", STACK, "--trials", "5000"],
        "--trials 5000 is more than initdiag takes (at most 1,000)",
    ),
    (
        ["compare", "--layers", STACK, "--init", "he"],
        "compare needs at least two candidates: --init he,xavier",
    ),
    (
        ["compare", "--layers", STACK, "--init", "he,xavier", "--max-gain", "nan"],
        "--max-gain must be greater",
    ),
    (["sweep", "--width", "8", "--depth", "0"], "--depth '0': '0' is not a positive integer"),
    (["sweep", "--width", "8", "--depth", "2", "--max-gain", "nan"], "--max-gain must be greater than 1"),
    (
        ["check", "sample_configs/mlp_he.toml", "--max-gain", "nan"],
        "--max-gain must be greater than 1, got nan",
    ),
    (
        ["check", "sample_configs/mlp_he.toml", "--baseline-factor", "nan"],
        "--baseline-factor must be greater than 1",
    ),
    (
        ["check", "sample_configs/mlp_he.toml", "--trials", "5000"],
        "--trials 5000 is more than initdiag takes",
    ),
    (["train", "--trials", "5000"], "--trials 5000 is more than initdiag takes"),
    (["train", "--n-train", "1"], "--n-train must be an integer >= 2, got 1"),
]


@pytest.mark.parametrize(("args", "message"), CLI_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CLI_CASES])
def test_the_command_line_names_its_flags(args, message, monkeypatch):
    monkeypatch.chdir(initdiag.__file__.rsplit("/initdiag/", 1)[0])
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"initdiag: error: {result.stderr.split('error: ', 1)[1]}"
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_a_renamed_keyword_survives_a_worker_process():
    """Errors cross process boundaries (sweep and check run on workers): the keyword map too."""
    with pytest.raises(InitdiagError) as caught, keyword_names({"--depth": "depths"}):
        raise InitdiagError("--depth must be positive integers")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == "depths must be positive integers"
    with command_line_spelling():
        assert str(copy) == "--depth must be positive integers"


def test_compare_takes_a_comma_separated_string_as_the_command_line_does():
    assert [c.label for c in initdiag.compare(layers=STACK, inits="he,xavier").candidates] == ["he", "xavier"]
