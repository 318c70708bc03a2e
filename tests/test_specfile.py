"""Spec files: one schema across TOML, YAML and JSON, the same objects as the shorthand, line-precise
errors, round trips through --emit-spec, and agreement with an independent JSON Schema validator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import initdiag
from initdiag.analysis.probe import run_probe
from initdiag.cli import app
from initdiag.errors import InitdiagError
from initdiag.network.job import job
from initdiag.network.kinds import LayerSpec
from initdiag.network.parse import SourceMap, SpecError
from initdiag.network.schema import SCHEMA
from initdiag.network.specfile import build, dump, load_spec, to_data
from initdiag.network.stack import MAX_NESTING, MAX_ROWS, StackSpec
from initdiag.render.probe import to_json

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "sample_configs").glob("*.*"))
runner = CliRunner()

TOML = """\
name = "demo"
input_shape = [64]

[defaults]
act = "tanh"
init = "xavier_uniform"

[[layers]]
units = 32
repeat = 2

[[layers]]
units = 16
init = "orthogonal"

[[layers]]
units = 4
name = "head"

[probe]
batch = 64
seed = 3
"""
YAML = """\
name: demo
input_shape: [64]
defaults:
  act: tanh
  init: xavier_uniform
layers:
  - units: 32
    repeat: 2
  - {units: 16, init: orthogonal}
  - units: 4
    name: head
probe:
  batch: 64
  seed: 3
"""
JSON = json.dumps(
    {
        "name": "demo",
        "input_shape": [64],
        "defaults": {"act": "tanh", "init": "xavier_uniform"},
        "layers": [
            {"units": 32, "repeat": 2},
            {"units": 16, "init": "orthogonal"},
            {"units": 4, "name": "head"},
        ],
        "probe": {"batch": 64, "seed": 3},
    },
    indent=2,
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_three_formats_build_the_same_spec(tmp_path):
    specs = [load_spec(write(tmp_path, f"demo.{ext}", text)) for ext, text in
             (("toml", TOML), ("yaml", YAML), ("json", JSON))]  # fmt: skip
    stacks = [s.stack.resolve() for s in specs]
    assert stacks[0] == stacks[1] == stacks[2]
    stack = stacks[0]
    assert [layer.name for layer in stack.layers] == ["dense1", "dense2", "dense3", "head"]
    assert [str(layer.init) for layer in stack.layers] == ["xavier_uniform"] * 2 + [
        "orthogonal",
        "xavier_uniform",
    ]
    assert [str(layer.act) for layer in stack.layers] == ["tanh"] * 3 + ["linear"]
    assert all(s.probe == {"batch": 64, "seed": 3} for s in specs)
    # the same stack from the shorthand, once the file's per-layer override is applied
    short, _, _ = job(layers="64,32,32,16,4", stack_options={"act": "tanh", "init": "xavier_uniform"})
    assert [layer.units for layer in short.layers] == [layer.units for layer in stack.layers]
    assert short.layers[0] == stack.layers[0]


def test_source_lines_for_each_format(tmp_path):
    toml = load_spec(write(tmp_path, "d.toml", TOML))
    assert toml.layer_lines == [8, 8, 12, 16]
    yaml = load_spec(write(tmp_path, "d.yaml", YAML))
    assert yaml.layer_lines == [7, 7, 9, 10]
    js = load_spec(write(tmp_path, "d.json", JSON))
    lines = JSON.splitlines()
    assert [lines[n - 1].strip() for n in js.layer_lines] == ["{", "{", "{", "{"]
    assert js.source.line(("layers", 1, "init")) == next(
        i for i, t in enumerate(lines, 1) if "orthogonal" in t
    )


@pytest.mark.parametrize(
    "name, text, expected",
    [
        (
            "a.toml",
            'input_shape = [784]\n\n[[layers]]\nunits = 256\n\n[[layers]]\nunit = 10\n\n[[layers]]\nunits = 0\n',
            [
                "a.toml:6: layers[1]: missing key 'units'",
                "a.toml:7: layers[1]: unknown key 'unit'; did you mean 'units'?",
                "a.toml:10: layers[2].units must be a positive integer, got 0",
            ],
        ),
        (
            "b.yaml",
            "input_shape: [784]\nlayers:\n  - units: 256\n    init: hee\n  - {units: 10, act: bogus}\nprobe:\n  seeds: 3\n",
            [
                "b.yaml:4: layers[0].init: unknown initializer 'hee'; did you mean 'he'?",
                "b.yaml:5: layers[1].act: unknown activation 'bogus'; allowed: linear, relu, leaky_relu, elu, "
                "selu, gelu, silu, softplus, sigmoid, tanh",
                "b.yaml:7: probe: unknown key 'seeds'; did you mean 'seed'?",
            ],
        ),
        (
            "c.json",
            '{\n  "input_shape": [784],\n  "layers": [\n    {"units": 256},\n    {"units": "ten"}\n  ],\n'
            '  "check": {"max_forward_gain": 0.5, "fail_on": ["vanish"]}\n}\n',
            [
                'c.json:5: layers[1].units must be a positive integer, got "ten"',
                "c.json:7: check.max_forward_gain must be a number greater than 1, got 0.5",
                "c.json:7: check.fail_on[0] must be one of vanishing, exploding, dead, saturated, symmetric, "
                'nonfinite, collapse, attn_saturated, stream_growth, got "vanish"',
            ],
        ),
        (
            "d.toml",
            'input_shape = [784]\nlayers = [\n  {units = 256},\n  {units = 256, bias_init = "orthogonal"},\n]\n',
            ["d.toml:4: layers[1].bias_init: 'orthogonal' is a weight-only initializer; for biases use zeros, "
             "ones, constant:V, normal:STD, uniform:A, trunc_normal:STD, torch_default or a variance-scaling name"],
        ),
        ("e.toml", "input_shape = [784\n", ["e.toml:2: invalid TOML: Unclosed array"]),
        (
            "m.toml",
            'input_shape = [8]\nlayers = [{units = 4}]\n[check]\nfail_on = [\n  "dead",\n  "vanish",\n  "symmetric",\n]\n',
            ['m.toml:6: check.fail_on[1] must be one of vanishing, exploding, dead, saturated, symmetric, nonfinite, collapse, attn_saturated, stream_growth, got "vanish"'],
        ),
        ("f.yaml", "layers:\n  - units: 10\n   bad: 1\n", ["f.yaml:3: invalid YAML: expected <block end>, but found "
                                                         "'<block mapping start>'"]),
        ("g.json", '{"layers": [}\n', ["g.json:1: invalid JSON: Expecting value"]),
        ("h.json", "[1, 2]", ["h.json:1: a spec must be a table of keys (input_shape, layers, ...)"]),
        ("i.yaml", "input_shape: [784]\nlayers: []\n", ["i.yaml:2: layers needs at least 1 item"]),
        ("j.toml", 'layers = [{units = 10, name = "a"}, {units = 5, name = "a"}]\n',
         ["j.toml:1: missing key 'input_shape'"]),
        ("k.toml", 'input_shape = [8]\nlayers = [{units = 10, name = "a"}, {units = 5, name = "a"}]\n',
         ["k.toml:2: layer names must be unique; repeated: a"]),
        ("l.toml", 'input_shape = [8]\nlayers = [{units = 10, name = "9lives"}]\n',
         ['l.toml:2: layers[0].name must be letters, digits, _ . - (not starting with a digit), got "9lives"']),
    ],
)  # fmt: skip
def test_malformed_specs_report_every_problem_at_its_line(tmp_path, name, text, expected):
    path = write(tmp_path, name, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert [line.replace(str(tmp_path) + "/", "") for line in info.value.lines] == expected


def test_spec_suffix_and_missing_file():
    with pytest.raises(InitdiagError, match=r"must end in \.toml, \.yaml, \.yml or \.json, got '\.txt'"):
        load_spec("spec.txt")
    with pytest.raises(InitdiagError, match=r"file not found: 'nope\.toml'"):
        load_spec("nope.toml")


# --- the schema ---------------------------------------------------------------------------------


def test_schema_is_valid_and_the_samples_conform():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SAMPLES, "sample_configs/ holds spec files"
    for path in SAMPLES:
        spec = load_spec(path)
        from initdiag.network.parse import parse_text, spec_format

        data, _ = parse_text(path.read_text(), spec_format(path))
        jsonschema.validate(data, SCHEMA)  # an independent validator agrees with ours
        assert spec.stack.resolve().layers


@pytest.mark.parametrize(
    "data",
    [
        {"input_shape": [784], "layers": [{"units": 0}]},
        {"input_shape": [784], "layers": [{"units": 10, "unit": 3}]},
        {"input_shape": [784], "layers": [{"units": True}]},
        {"input_shape": [784], "layers": [{"units": 10}], "check": {"max_dead_fraction": 1.5}},
        {"input_shape": [784], "layers": [{"units": 10}], "check": {"fail_on": ["dead", "dead"]}},
        {"input_shape": [784], "layers": [{"units": 10}], "probe": {"loss": "l2"}},
        {"input_shape": [], "layers": [{"units": 10}]},
        {"layers": [{"units": 10}]},
        {"input_shape": [3, 8, 8], "layers": [{"kind": "conv2d"}]},
        {"input_shape": [3, 8, 8], "layers": [{"kind": "conv2d", "channels": 4, "padding": "full"}]},
        {"input_shape": [3, 8, 8], "layers": [{"kind": "conv2d", "channels": 4, "kernel": [3]}]},
        {"input_shape": [8], "layers": [{"kind": "dropout", "rate": 1}]},
        {"input_shape": [8], "layers": [{"kind": "residual", "layers": []}]},
        {"input_shape": [8], "layers": [{"kind": "residual", "layers": [{"kind": "dense"}]}]},
        {"input_shape": [8], "layers": [{"kind": "pool"}]},
        {"input_shape": [1, 2, 3, 4], "layers": [{"units": 10}]},
    ],
)
def test_our_validator_and_jsonschema_reject_the_same_documents(data):
    from initdiag.network.schema import validate

    assert validate(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)


def test_schema_command_prints_the_schema():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == SCHEMA


# --- emit, load, probe: the same thing ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["toml", "yaml", "json"])
def test_emitted_spec_round_trips_to_the_same_probe(tmp_path, fmt):
    args = [
        "--layers",
        "100,64x3,32,10",
        "--act",
        "gelu",
        "--init",
        "he:gain=auto",
        "--batch",
        "64",
        "--seed",
        "4",
    ]
    emitted = runner.invoke(app, ["probe", *args, "--emit-spec", fmt])
    assert emitted.exit_code == 0, emitted.output
    path = write(tmp_path, f"spec.{fmt}", emitted.stdout)
    from_file = runner.invoke(app, ["probe", "--config", path, "--format", "json"])
    from_options = runner.invoke(app, ["probe", *args, "--format", "json"])
    a, b = json.loads(from_file.stdout), json.loads(from_options.stdout)
    b["spec"]["name"] = a["spec"]["name"] = None
    assert a == b
    assert "repeat" in emitted.stdout  # 64x3 folds into one entry


@settings(max_examples=30, deadline=None)
@given(
    widths=st.lists(st.integers(1, 40), min_size=2, max_size=7),
    act=st.sampled_from(["relu", "tanh", "leaky_relu:0.2", "gelu"]),
    init=st.sampled_from(
        ["he", "xavier_normal", "normal:0.1", "orthogonal", "torch_default", "lecun:mode=fan_avg"]
    ),
    fmt=st.sampled_from(["toml", "yaml", "json"]),
)
def test_any_shorthand_round_trips(tmp_path_factory, widths, act, init, fmt):
    stack, settings_, check = job(layers=",".join(map(str, widths)), stack_options={"act": act, "init": init})
    path = tmp_path_factory.mktemp("rt") / f"s.{fmt}"
    path.write_text(dump(to_data(stack, settings_, check), fmt))
    again, settings2, check2 = job(config=str(path))
    assert [(x.units, x.act, x.init, x.bias_init) for x in again.layers] == [
        (x.units, x.act, x.init, x.bias_init) for x in stack.layers
    ]
    assert settings2 == settings_ and check2 == check


def test_options_override_the_file(tmp_path):
    path = write(tmp_path, "demo.toml", TOML)
    stack, settings_, check = job(
        config=path, stack_options={"init": "he_normal"}, probe_options={"batch": 16}
    )
    # --init replaces every layer's init, the file's own too; keep_layer_inits keeps a layer's own
    assert [str(layer.init) for layer in stack.layers] == ["he_normal"] * 4
    kept, _, _ = job(config=path, stack_options={"init": "he_normal", "keep_layer_inits": True})
    assert [str(layer.init) for layer in kept.layers] == ["he_normal", "he_normal", "orthogonal", "he_normal"]
    assert settings_.batch == 16 and settings_.seed == 3 and settings_.trials == 1
    _, settings_, check = job(config=path, max_gain=4)
    assert check.thresholds.max_forward_gain == 4 == settings_.thresholds.max_backward_gain
    result = runner.invoke(app, ["probe", "--config", path, "--seed", "5", "--format", "json"])
    data = json.loads(result.stdout)
    assert data["settings"]["seed"] == 5 and data["settings"]["batch"] == 64
    assert data["spec"]["name"] == "demo"


def test_relative_paths_are_relative_to_the_spec(tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "w.npz", dense1=rng.normal(0, 0.1, (8, 6)), dense2=rng.normal(0, 0.1, (6, 2)))
    np.save(folder / "x.npy", rng.normal(size=(12, 8)))
    path = write(folder, "s.toml", 'input_shape = [8]\nlayers = [{units = 6}, {units = 2}]\n'
                 '[defaults]\ninit = "file:w.npz"\n[probe]\ninput = "x.npy"\n')  # fmt: skip
    stack, settings_, _ = job(config=path)
    result = run_probe(stack, settings_)
    assert result.settings.batch == 12
    assert result.layers[0].weight_std == pytest.approx(np.load(folder / "w.npz")["dense1"].std(), rel=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "8,4", "--config", "x.toml"], "give --layers or --config, not both"),
        (["--config", "missing.toml"], "file not found: 'missing.toml'"),
        (["--config", "spec.txt"], "a spec file must end in .toml, .yaml, .yml or .json"),
        (["--layers", "8,4", "--emit-spec", "xml"], "--emit-spec 'xml' is not one of toml, yaml, json"),
    ],
)
def test_config_errors_are_one_line(args, message):
    result = runner.invoke(app, ["probe", *args])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_a_malformed_config_is_one_line_with_a_count(tmp_path):
    path = write(tmp_path, "bad.toml", "input_shape = [8]\n[[layers]]\nunits = 0\n[[layers]]\nunit = 3\n")
    result = runner.invoke(app, ["probe", "--config", path])
    assert result.exit_code == 2
    assert result.stderr == (
        f"initdiag: error: {path}:3: layers[0].units must be a positive integer, got 0 (and 2 more problems)\n"
    )


def test_library_entry_points_take_specs():
    stack, settings_, _ = job(config=str(ROOT / "sample_configs" / "mlp_he.toml"))
    result = initdiag.run_probe(stack, settings_)
    assert result.spec.name == "mlp-he" and result.layers[-1].name == "logits"
    assert json.loads(to_json(result))["spec"]["layers"][-1]["name"] == "logits"


# --- layer kinds beyond dense -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'input_shape = [3, 8, 8]\n\n[[layers]]\nkind = "conv2d"\nchannels = 4\n\n[[layers]]\nkind = "conv2d"\n'
            'channels = 4\nkernel = 9\npadding = "valid"\n',
            "s.toml:7: layer conv2: kernel 9x9 is larger than its 8x8 input (padding valid); use a smaller "
            "kernel or padding same",
        ),
        (
            'input_shape = [8]\n[[layers]]\nkind = "residual"\nlayers = []\n',
            "s.toml:4: layers[0].layers needs at least 1 item",
        ),
        (
            'input_shape = [8]\n[[layers]]\nkind = "dropout"\nrate = 1.5\n',
            "s.toml:4: layers[0].rate must be a number in [0, 1), got 1.5",
        ),
        (
            'input_shape = [3, 8, 8]\n[[layers]]\nunits = 10\n',
            "s.toml:2: layer dense1: a dense layer needs a flat input but gets (3, 8, 8); put a flatten or "
            "global_avgpool layer before it",
        ),
        (
            'input_shape = [8]\n[[layers]]\nkind = "residual"\n[[layers.layers]]\nunits = 8\n'
            '[[layers.layers]]\nkind = "batchnorm"\ninit = "he"\n',
            "s.toml:6: layers[0].layers[1]: a batchnorm layer takes no 'init' (it takes eps, act)",
        ),
        (
            'input_shape = [8, 8, 8, 8]\n[[layers]]\nunits = 8\n',
            "s.toml:1: input_shape must be [width], [seq, d] or [channels, height, width] of positive "
            "integers, or 'seq=64,vocab=1000' (token ids), got [8, 8, 8, 8]",
        ),
        (
            'input_shape = [8, 8]\n[[layers]]\nkind = "flatten"\n[[layers]]\nunits = 8\n',
            "s.toml:2: layer flatten1: a flatten layer on a token stream (8, 8) is not supported; per token, "
            "use layernorm or rmsnorm (normalization) or dense (a map)",
        ),
    ],
)  # fmt: skip
def test_impossible_layers_in_a_spec_point_at_their_line(tmp_path, text, expected):
    path = write(tmp_path, "s.toml", text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.lines[0].replace(str(tmp_path) + "/", "") == expected
    result = runner.invoke(app, ["probe", "--config", path])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("fmt", ["toml", "yaml", "json"])
def test_every_kind_round_trips_through_emit_spec(tmp_path, fmt):
    args = ["--layers", "32,32x3,16,10", "--norm", "batch", "--dropout", "0.2", "--residual",
            "--residual-scale", "0.5", "--act", "gelu", "--batch", "32"]  # fmt: skip
    emitted = runner.invoke(app, ["probe", *args, "--emit-spec", fmt])
    assert emitted.exit_code == 0, emitted.output
    path = write(tmp_path, f"spec.{fmt}", emitted.stdout)
    a = json.loads(runner.invoke(app, ["probe", "--config", path, "--format", "json"]).stdout)
    b = json.loads(runner.invoke(app, ["probe", *args, "--format", "json"]).stdout)
    b["spec"]["name"] = a["spec"]["name"] = None
    assert a == b
    assert "repeat" in emitted.stdout  # three equal residual blocks fold into one entry


def test_vgg_sample_round_trips():
    stack, settings_, check = job(config=str(ROOT / "sample_configs" / "vgg_cifar.toml"))
    data = to_data(stack, settings_, check)
    assert data["layers"][0] == {
        "kind": "conv2d",
        "channels": 32,
        "init": "he_normal:mode=fan_out",
        "repeat": 2,
    }
    again = build(data, SourceMap({(): 1}), "again.toml").stack.resolve()
    assert again.layers == stack.layers


# --- refused at once: too large, keys given twice, paths that are not spec files ---------------------


def refused(args: list[str], env: dict | None = None, within: float = 5.0) -> str:
    """The one line the command line refuses *args* with (exit 2), checked to come *within* seconds."""
    start = time.perf_counter()
    result = runner.invoke(app, args, env=env)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2, result.output
    assert elapsed < within, f"refused after {elapsed:.2f} s"
    assert result.stderr.count("\n") == 1
    return result.stderr.removeprefix("initdiag: error: ").removesuffix("\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "784,256x100000,10"],
         "--layers '784,256x100000,10': the stack has 100,001 layers; initdiag takes at most 10,000"),
        (["--layers", "256x1000000000000"],
         "--layers '256x1000000000000': the stack has 999,999,999,999 layers; initdiag takes at most 10,000"),
        (["--layers", "784,256x10000,10"],
         "--layers '784,256x10000,10': the stack has 10,001 layers; initdiag takes at most 10,000"),
        # the shorthand's widths fit; its normalization layers and residual sums make it too deep
        (["--layers", "64,64x4000,10", "--residual", "--norm", "batch"],
         "the stack has 16,001 layers; initdiag takes at most 10,000"),
        (["--layers", "8,4x" + "9" * 5000],
         "--layers '8,4x" + "9" * 55 + "…': repeat count '" + "9" * 19 + "…' is too large"),
        (["--layers", "8,\u0663"], "--layers '8,\u0663': '\u0663' is not a width; write positive integers, "
                                   "a width may repeat as 256x8"),
    ],
)  # fmt: skip
def test_a_stack_too_large_is_refused_before_it_is_built(args, message):
    assert refused(["probe", *args]) == message


def test_resolving_the_largest_stack_is_linear():
    """Resolving 10,000 layers costs about 4x resolving 2,500 (names were once checked pairwise: 16x).
    A ratio of best-of-3 times, so that a busy machine slows both sides alike."""

    def best(layers: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            job(layers=layers)
            times.append(time.perf_counter() - start)
        return min(times)

    stack, _, _ = job(layers="8,8x9999,8")
    assert len(list(stack.walk())) == MAX_ROWS == 10_000
    assert best("8,8x9999,8") / best("8,8x2499,8") < 8
    # the memory estimate refuses the widest such stack (0.4 s here, planning each of its layers first;
    # a margin for a busy machine)
    message = refused(
        ["probe", "--layers", "784,1024x9999,10"], env={"INITDIAG_MAX_MEMORY": "512MiB"}, within=10.0
    )
    assert message.startswith("this stack needs about 99.7 GiB")


def test_residual_blocks_nest_at_most_32_deep():
    def nested(depth: int) -> StackSpec:
        layer = LayerSpec(units=8)
        for _ in range(depth):
            layer = LayerSpec(kind="residual", layers=(layer,))
        return StackSpec(input_shape=(8,), layers=(layer,))

    assert len(list(nested(MAX_NESTING).resolve().walk())) == MAX_NESTING + 1
    with pytest.raises(InitdiagError) as info:
        nested(MAX_NESTING + 1).resolve()
    assert str(info.value) == "residual blocks nest more than 32 deep; initdiag takes at most 32"


def _nested_json(depth: int) -> str:
    text = '{"units": 8}'
    for _ in range(depth):
        text = f'{{"kind": "residual", "layers": [\n{text}]}}'
    return f'{{"input_shape": [8], "layers": [\n{text}]}}\n'


BILLION_LAUGHS = "input_shape: [8]\nlayers: [{units: 4}]\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        # a key given twice: both lines (TOML's parser refuses this itself)
        ("spec.yaml", "name: dup\ninput_shape: [8]\nlayers:\n  - units: 4\nprobe:\n  batch: 8\n  seed: 1\n"
                      "defaults: {act: tanh}\nlayers:\n  - units: 2\n",
         ["spec.yaml:9: duplicate key 'layers' (first at line 3)"]),
        ("a.yaml", "input_shape: [8]\nlayers:\n  - units: 4\n    act: relu\n    units: 5\n"
                   "  - kind: residual\n    layers:\n      - {units: 4, act: relu, act: tanh}\n",
         ["a.yaml:5: layers[0]: duplicate key 'units' (first at line 3)",
          "a.yaml:8: layers[1].layers[0]: duplicate key 'act' (first at line 8)"]),
        ("b.json", '{\n  "input_shape": [8],\n  "layers": [{"units": 4}],\n  "probe": {"batch": 8},\n'
                   '  "layers": [{"units": 2}]\n}\n',
         ["b.json:5: duplicate key 'layers' (first at line 3)"]),
        ("c.json", '{\n  "input_shape": [8],\n  "layers": [\n    {"units": 4,\n     "\\u0075nits": 5}\n  ]\n}\n',
         ["c.json:5: layers[0]: duplicate key 'units' (first at line 4)"]),
        ("d.toml", 'input_shape = [8]\n[[layers]]\nunits = 4\nunits = 5\n',
         ["d.toml:4: invalid TOML: Cannot overwrite a value"]),
        # a repeat too many to build, refused before anything is expanded
        ("r.toml", 'input_shape = [8]\n\n[[layers]]\nunits = 8\nrepeat = 1000000000000\n',
         ["r.toml:3: the stack has 1,000,000,000,000 layers; initdiag takes at most 10,000"]),
        ("s.yaml", "input_shape: [8]\nlayers:\n  - kind: residual\n    repeat: 1000\n    layers:\n"
                   "      - {units: 8, repeat: 100}\n",
         ["s.yaml:2: the stack has 101,000 layers; initdiag takes at most 10,000"]),
        # what the fuzzer (tests/test_fuzz.py) found: each was an internal error or a hang
        ("n.json", '{"input_shape": [NaN], "layers": [{"units": 4}]}',
         ["n.json:1: invalid JSON: NaN is not a JSON value; write a number"]),
        ("i.json", '{"input_shape": [8],\n "layers": [{"units": ' + "9" * 5000 + "}]}",
         ["i.json:2: an integer of 5,000 digits is too large"]),
        ("i.yaml", "input_shape: [8]\nlayers:\n  - units: " + "9" * 5000 + "\n",
         ["i.yaml:3: an integer of 5,000 digits is too large"]),
        ("i.toml", "input_shape = [8]\nlayers = [{units = " + "9" * 5000 + "}]\n",
         ["i.toml:2: an integer of 5,000 digits is too large"]),
        ("deep.json", '{"input_shape": [8],\n "layers": ' + "[" * 5000 + "]" * 5000 + "}",
         ["deep.json:2: nested more than 100 levels deep"]),
        ("deep.yaml", "input_shape: [8]\nlayers: " + "[" * 5000 + "]" * 5000 + "\n",
         ["deep.yaml:2: nested more than 100 levels deep"]),
        ("deep.toml", "input_shape = [8]\nlayers = " + "[" * 5000 + "]" * 5000 + "\n",
         ["deep.toml: nested more than 100 levels deep"]),
        ("res.json", _nested_json(40), ["res.json:34: residual blocks nest more than 32 deep; initdiag takes at most 32"]),
        ("laughs.yaml", BILLION_LAUGHS,
         ["laughs.yaml:8: the document has more than 1,000,000 values once its aliases are expanded"]),
        ("loop.yaml", "input_shape: [8]\nlayers: &a\n  - units: 3\n  - kind: residual\n    layers: *a\n",
         ["loop.yaml:2: the value anchored here contains an alias of itself"]),
        ("date.yaml", "input_shape: [8]\nlayers: [{units: 3}]\ndescription: 2024-13-45\n",
         ["date.yaml:3: invalid YAML: month must be in 1..12"]),
        ("key.yaml", "input_shape: [8]\nlayers: [{units: 3}]\n? [a, b]\n: 1\n",
         ["key.yaml:3: invalid YAML: found unhashable key"]),
        ("nl.json", '{"input_shape": [8], "layers": [{"units": 3}], "a\\nb": 1}',
         ["nl.json:1: unknown key 'a\\nb'; allowed: name, description, model, model_args, input_shape, init, defaults, layers, probe, check"]),
    ],
)  # fmt: skip
def test_documents_refused_at_once_at_their_line(tmp_path, name, text, expected):
    path = write(tmp_path, name, text)
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    # at once: a deep document parses in about 0.1 s; 5 s allows a busy machine
    assert time.perf_counter() - start < 5.0
    assert [line.replace(str(tmp_path) + "/", "") for line in info.value.lines] == expected
    assert refused(["probe", "--config", path]).replace(str(tmp_path) + "/", "").startswith(expected[0])


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    path = write(tmp_path, "m.yaml", "base: &base {units: 4, act: tanh}\ninput_shape: [8]\nlayers:\n"
                 "  - {<<: *base, act: relu}\n")  # fmt: skip
    with pytest.raises(SpecError, match=r"m\.yaml:1: unknown key 'base'"):  # only the extra key is wrong
        load_spec(path)


def test_a_path_that_is_not_a_spec_file_gets_one_line(tmp_path, monkeypatch):
    import initdiag.network.document

    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "a.toml").write_text("input_shape = [8]\nlayers = [{units = 4}]\n")
    assert refused(["probe", "-c", str(folder)]) == (
        f"'{folder}' is a directory, not a spec file; name one .toml, .yaml, .yml or .json file, or check "
        f"every spec in it with: initdiag check {folder}"
    )
    assert refused(["compare", "-c", str(folder), "--init", "he,xavier"]).startswith(
        f"'{folder}' is a directory"
    )
    assert runner.invoke(app, ["check", str(folder), "--trials", "1"]).exit_code == 0  # as it suggests
    assert (
        refused(["probe", "-c", str(tmp_path / "none.toml")]) == f"file not found: '{tmp_path / 'none.toml'}'"
    )
    assert refused(["probe", "-c", "spec.txt"]) == (
        "'spec.txt': a spec file must end in .toml, .yaml, .yml or .json, got '.txt'"
    )
    assert refused(["probe", "-c", "Makefile"]) == (
        "'Makefile': a spec file must end in .toml, .yaml, .yml or .json (it has no suffix)"
    )
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'input_shape = [8]\nname = "caf\xe9"\n')
    assert (
        refused(["probe", "-c", str(bad)]) == f"{bad}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    )
    big = tmp_path / "big.json"
    big.write_text(" " * (4 << 20) + "{}")
    assert refused(["probe", "-c", str(big)]) == (
        f"{big}: larger than 4 MiB, too large for a spec file (runs of equal layers can be one entry with repeat)"
    )

    def unreadable(path, mode="r", *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(initdiag.network.document, "open", unreadable, raising=False)  # tests may run as root
    assert (
        refused(["probe", "-c", str(folder / "a.toml")])
        == f"{folder / 'a.toml'}: cannot be read: Permission denied"
    )


def test_yaml_reads_an_exponent_without_a_dot_as_a_number(tmp_path):
    """``rate: 1e-1`` is a float in YAML 1.2, TOML, JSON and Python; PyYAML (YAML 1.1) reads it as a
    string unless told, and the spec would be refused as "must be a number"."""
    from initdiag.network.parse import parse_text

    data, _ = parse_text("a: 1e-3\nb: -2.5E+2\nc: 12\nd: 1e\ne: 1_0e1\n", "yaml")
    assert data == {"a": 1e-3, "b": -250.0, "c": 12, "d": "1e", "e": 100.0}
    path = write(
        tmp_path, "d.yaml", "input_shape: [8]\nlayers:\n  - units: 8\n  - kind: dropout\n    rate: 1e-1\n"
    )
    assert load_spec(path).stack.layers[1].rate == pytest.approx(0.1)
