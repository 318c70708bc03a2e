"""Fuzzing what users type and write: the ``--layers`` shorthand and spec files, through the command
line as a shell runs it (typer's CliRunner; the command line turns errors into exit codes).

Whatever the input, the answer is a result (exit 0), a failing check (1) or one line refusing it
(2): never an internal error (3), never a traceback, and a refusal in under a second. Probes that
succeed stay small (--no-theory, batch 4); a stack too large to run is refused by the memory
estimate (INITDIAG_MAX_MEMORY=512MiB) or by the layer limit, before anything is allocated."""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from datetime import timedelta

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from initdiag.cli import app
from initdiag.network.specfile import dump

runner = CliRunner()
ENV = {"INITDIAG_MAX_MEMORY": "512MiB", "COLUMNS": "200"}
HANG = 10  # seconds
FAST = ["--no-theory", "--batch", "4", "--trials", "1", "--format", "json"]
FUZZ = settings(
    max_examples=int(os.environ.get("INITDIAG_FUZZ_EXAMPLES", "40")),  # more for a longer hunt
    deadline=timedelta(seconds=5),
    database=None,  # nothing written to the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _hung(signum, frame):
    raise TimeoutError(f"still running after {HANG} s")


def run(args: list[str]):
    """Run the command line; check the exit code, the output and, for a refusal, its time. A run
    still going after `HANG` seconds is stopped and fails the test (a hang is what this hunts)."""
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.setitimer(signal.ITIMER_REAL, HANG)
    try:
        result = runner.invoke(app, args, env=ENV)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    shown = f"{args!r} -> {result.exit_code}: {result.stderr[-500:]!r}"
    event(f"exit {result.exit_code}")  # see them with --hypothesis-show-statistics
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert result.exit_code in (0, 1, 2), shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith("initdiag: error: ") for line in lines), shown
        assert len(lines) == 1 or args[0] == "check", shown  # check lists each problem of each spec
        assert elapsed < 1.0, f"refused after {elapsed:.2f} s: {shown}"
    return result


# --- the shorthand ----------------------------------------------------------------------------------

ODD_NUMBERS = st.one_of(
    st.integers(10**9, 10**30).map(str),  # too wide to fit: the memory estimate refuses
    st.integers(20_000, 10**15).map(str),  # as a repeat count: too many layers (10,000 would run, slowly)
    st.sampled_from(
        ["0", "-3", "+4", "007", "1_0", "1e3", "2.5", "", " ", "x", "X", "٣", "８", "²", "∞", "3x32x32"]
    ),
    st.integers(4400, 6000).map(lambda n: "9" * n),  # more digits than int() reads
)
WIDTHS = st.one_of(*[st.integers(1, 12).map(str)] * 6, ODD_NUMBERS)  # mostly valid, one odd in a few
REPEATS = st.one_of(*[st.integers(1, 30).map(str)] * 3, ODD_NUMBERS)
ITEMS = st.one_of(
    WIDTHS,
    WIDTHS,
    st.tuples(WIDTHS, st.sampled_from(["x", "x", "X", " x ", "x x", "xx"]), REPEATS).map("".join),
)
VALID = st.lists(
    st.tuples(st.integers(1, 12), st.integers(1, 4)).map(
        lambda p: f"{p[0]}x{p[1]}" if p[1] > 1 else str(p[0])
    ),
    min_size=2,
    max_size=5,
).map(",".join)
SHORTHANDS = st.one_of(
    VALID,
    st.text(max_size=40),
    st.lists(ITEMS, min_size=0, max_size=6).flatmap(
        lambda items: st.sampled_from([",", ",", ", ", " ,", ",,"]).map(lambda sep: sep.join(items))
    ),
)
SHAPING = st.sampled_from(
    [
        [],
        [],
        [],
        ["--residual"],
        ["--norm", "batch"],
        ["--norm", "layer", "--dropout", "0.5"],
        ["--residual", "--norm", "layer"],
    ]
)


@FUZZ
@given(text=SHORTHANDS, shaping=SHAPING, act=st.sampled_from(["relu", "tanh", "gelu"]))
def test_any_shorthand_runs_or_is_refused_in_one_line(text, shaping, act):
    run(["probe", f"--layers={text}", "--act", act, *shaping, *FAST])


@FUZZ
@given(text=SHORTHANDS)
def test_any_shorthand_emits_a_spec_or_is_refused_in_one_line(text):
    run(["probe", f"--layers={text}", "--emit-spec", "yaml"])


# --- spec files ---------------------------------------------------------------------------------------

SMALL = st.integers(1, 8)
ODD = st.one_of(
    st.integers(-3, 0),
    st.integers(10**9, 10**40),  # refused by the memory estimate (10^6 units would run, for seconds)
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.lists(SMALL, max_size=2),
)
ACTS = st.sampled_from(["relu", "tanh", "gelu", "leaky_relu:0.2", "linear", "sigmoid"])
INITS = st.sampled_from(
    ["he", "xavier_uniform", "orthogonal", "normal:0.1", "zeros", "lsuv", "torch_default"]
)
BAD_NAMES = st.sampled_from(["hee", "", "relu:", "normal:x", "file:w.npz", "he:mode=sideways", "constant"])


def dense(width) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {"units": width}, optional={"act": ACTS, "init": INITS, "repeat": st.integers(1, 3)}
    )


def flat_layers(width=SMALL) -> st.SearchStrategy[list]:
    """Layers of a flat stack: dense, normalization, dropout, activation, residual blocks (nested)."""
    plain = st.one_of(
        dense(width),
        dense(width),
        st.sampled_from([{"kind": "batchnorm"}, {"kind": "layernorm"}, {"kind": "activation", "act": "tanh"},
                         {"kind": "dropout", "rate": 0.25}]),
    )  # fmt: skip
    return st.recursive(
        st.lists(plain, min_size=1, max_size=4),
        lambda branch: st.lists(
            st.one_of(
                plain,
                st.fixed_dictionaries(
                    {"kind": st.just("residual"), "layers": branch},
                    optional={"scale": st.floats(-2, 2), "repeat": st.integers(1, 3)},
                ),
            ),
            min_size=1,
            max_size=4,
        ),
        max_leaves=10,
    )


CONV = st.fixed_dictionaries(
    {"kind": st.just("conv2d"), "channels": SMALL},
    optional={"kernel": st.one_of(st.integers(1, 5), st.lists(st.integers(1, 5), min_size=2, max_size=2)),
              "stride": st.integers(1, 3), "padding": st.sampled_from(["same", "valid", 0, 1]), "act": ACTS},
)  # fmt: skip
IMAGE_LAYERS = st.tuples(
    st.lists(
        st.one_of(CONV, CONV, st.just({"kind": "maxpool2d"}), st.just({"kind": "batchnorm"})), max_size=4
    ),
    st.sampled_from([{"kind": "flatten"}, {"kind": "global_avgpool"}]),
    flat_layers(),
).map(lambda parts: [*parts[0], parts[1], *parts[2]])

STACKS = st.one_of(
    st.fixed_dictionaries({"input_shape": st.lists(SMALL, min_size=1, max_size=1), "layers": flat_layers()}),
    st.fixed_dictionaries(
        {"input_shape": st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)).map(list),
         "layers": IMAGE_LAYERS},
    ),
)  # fmt: skip
EXTRAS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=10),
        "defaults": st.fixed_dictionaries({}, optional={"act": ACTS, "init": INITS}),
        "probe": st.fixed_dictionaries(
            {}, optional={"loss": st.sampled_from(["unit", "mse", "xent"]), "seed": st.integers(0, 10**30)}
        ),
        "check": st.fixed_dictionaries(
            {}, optional={"max_forward_gain": st.floats(1.5, 100), "allow_symmetric": st.booleans()}
        ),
    },
)


@st.composite
def specs(draw) -> dict:
    """A spec that is valid, or one mutation away from it: a key dropped, misspelt or added, a value
    replaced by an odd one (a huge number, a string, null, a list), a layer repeated 20,000 times or
    more, a name given twice, an unknown activation or initializer."""
    data = copy.deepcopy({**draw(STACKS), **draw(EXTRAS)})  # st.just and sampled_from share their values
    for _ in range(draw(st.integers(0, 2))):
        entry = data
        while True:  # a random table, the top level or a layer at any depth
            lists = [
                v for v in entry.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
            ]
            if not lists or draw(st.booleans()):
                break
            entry = draw(st.sampled_from(draw(st.sampled_from(lists))))
        key = draw(st.sampled_from([*sorted(entry), "units", "repeat", "kind", "name", "unit", "layers"]))
        change = draw(st.sampled_from(["odd", "odd", "drop", "repeat", "name", "act", "init"]))
        if change == "odd":
            entry[key] = draw(ODD)
        elif change == "drop":
            entry.pop(key, None)
        elif change == "repeat":
            entry["repeat"] = draw(st.integers(20_000, 10**15))
        elif change == "name":
            entry["name"] = "twice"
        else:
            entry[change] = draw(BAD_NAMES)
    return data


def write(path, text: str | bytes):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def dumped(data: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=1)
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False)
    try:
        return dump(data, "toml")
    except TypeError:  # None has no TOML spelling
        return dump(json.loads(json.dumps(data).replace("null", '"none"')), "toml")


def check_spec(path: str, command: str):
    if command == "probe":
        run(["probe", "-c", path, *FAST])
    else:
        run(["check", path, "--trials", "1", "--jobs", "1", "--format", "json"])


@FUZZ
@given(
    data=specs(), fmt=st.sampled_from(["toml", "yaml", "json"]), command=st.sampled_from(["probe", "check"])
)
def test_any_spec_document_runs_or_is_refused_in_one_line(tmp_path_factory, data, fmt, command):
    path = tmp_path_factory.mktemp("spec") / f"s.{fmt}"
    check_spec(write(path, dumped(data, fmt)), command)


# lines a spec file is made of, to shuffle into near-misses: keys twice, aliases, merges, nesting
YAML_LINES = ["input_shape: [8]", "layers:", "  - units: 4", "  - {units: 2, act: tanh}", "    units: 3",
              "  - kind: residual", "    layers:", "      - units: 8", "    layers: *a", "layers: &a",
              "  - &b {units: 4}", "  - *b", "  - <<: *b", "    act: relu", "probe: {batch: 4}", "probe:",
              "  batch: 4", "a: &c [1, 2]", "b: [*c, *c, *c]", "? [1]", ": 2", "--- ", "!!python/name:os.system",
              "  - units: 2024-13-45", "  - units: 0x1F", "    repeat: 100000", "[[[[", "{", "}", "'", "\t"]  # fmt: skip
TOML_LINES = ["input_shape = [8]", "[[layers]]", "units = 4", "units = 5", "[[layers.layers]]", 'kind = "residual"',
              'act = "tanh"', "repeat = 100000", "layers = [{units = 2}]", "[probe]", "batch = 4", "[check]",
              "max_forward_gain = 0.5", "x = [[[[", "= 3", '"', "units = 9999999999999999999999",
              "input_shape = [3, 8, 8]", 'kind = "conv2d"', "channels = 2"]  # fmt: skip
JSON_TOKENS = ["{", "}", "[", "]", ",", ":", '"input_shape"', '"layers"', '"units"', '"kind"', '"residual"', "[8]",
               "8", "0", "NaN", "-Infinity", "1e999", "true", "null", '"\\u0000"', '"\\ud800"', " ", "\n"]  # fmt: skip


@FUZZ
@given(
    case=st.one_of(
        st.tuples(st.just("yaml"), st.lists(st.sampled_from(YAML_LINES), max_size=12).map("\n".join)),
        st.tuples(st.just("toml"), st.lists(st.sampled_from(TOML_LINES), max_size=12).map("\n".join)),
        st.tuples(st.just("json"), st.lists(st.sampled_from(JSON_TOKENS), max_size=30).map("".join)),
    ),
    command=st.sampled_from(["probe", "check"]),
)
def test_near_miss_spec_text_runs_or_is_refused_in_one_line(tmp_path_factory, case, command):
    fmt, text = case
    check_spec(write(tmp_path_factory.mktemp("spec") / f"s.{fmt}", text), command)


@FUZZ
@given(
    text=st.one_of(st.text(max_size=200), st.binary(max_size=200)),
    fmt=st.sampled_from(["toml", "yaml", "yml", "json"]),
)
def test_random_spec_text_is_refused_in_one_line(tmp_path_factory, text, fmt):
    check_spec(write(tmp_path_factory.mktemp("spec") / f"s.{fmt}", text), "probe")
