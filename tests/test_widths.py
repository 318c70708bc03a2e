"""Tables never cut a number, a flag or a verdict: every table of every command at 60, 80, 100 and 120
columns, piped (plain, COLUMNS set) and in a terminal (colour), fits its width, shows no ellipsis,
and still shows every layer, flag and verdict (hiding whole columns, splitting, or switching to a
list instead)."""

from __future__ import annotations

import json
import re

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from initdiag.cli import app

runner = CliRunner()
WIDTHS = (60, 80, 100, 120)
ANSI = re.compile(r"\x1b\[[0-9;]*m")

RESNET = """
name = "a-resnet-with-long-layer-names"
input_shape = [3, 8, 8]
[defaults]
act = "relu"
init = "normal:1"
[[layers]]
kind = "conv2d"
channels = 8
name = "a_rather_long_stem_name"
[[layers]]
kind = "batchnorm"
[[layers]]
kind = "residual"
repeat = 2
  [[layers.layers]]
  kind = "conv2d"
  channels = 8
  [[layers.layers]]
  kind = "batchnorm"
[[layers]]
kind = "global_avgpool"
[[layers]]
units = 10
[probe]
batch = 8
"""


def render(args: list[str], width: int, terminal: bool):
    env = {"COLUMNS": str(width)}
    if terminal:
        env["FORCE_COLOR"] = "1"
    else:
        env["NO_COLOR"] = "1"
    result = runner.invoke(app, args, env=env)
    assert result.exit_code in (0, 1), result.output
    return ANSI.sub("", result.stdout)


def assert_whole(text: str, width: int):
    assert "…" not in text, text
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line!r}\n{text}"


PROBES = [
    ["--layers", "784,256,256,10", "--init", "xavier"],
    ["--layers", "256,256x6,10", "--act", "sigmoid", "--init", "normal:10"],
    ["--layers", "64,64x4,10", "--init", "zeros", "--bias-init", "normal:0.1", "--act", "tanh"],
    ["--layers", "64,64x3,10", "--trials", "3", "--init", "lecun"],
]


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("args", PROBES, ids=lambda a: " ".join(a[1:4]))
def test_probe(args, width, terminal):
    text = render(["probe", *args], width, terminal)
    assert_whole(text, width)
    data = json.loads(runner.invoke(app, ["probe", *args, "-f", "json"]).stdout)
    assert_every_layer_whole(text, data)
    assert data["summary"]["verdict"] in text


def layer_regions(text: str, names: list[str]) -> dict[str, str]:
    """Each layer's row (or block), from its name to the next layer's: the row may wrap."""
    lines = text.splitlines()
    starts = []
    position = 0
    for name in names:
        pattern = re.compile(rf"^\s*{re.escape(name)}(\s|$)")
        while not pattern.match(lines[position]):
            position += 1
        starts.append(position)
        position += 1
    ends = [
        *starts[1:],
        next((k for k in range(starts[-1] + 1, len(lines)) if not lines[k].strip()), len(lines)),
    ]
    return {name: "\n".join(lines[a:b]) for name, a, b in zip(names, starts, ends, strict=True)}


def assert_every_layer_whole(text: str, data: dict):
    """Every layer's gains, both directions, and every flag are shown in its own row or block."""
    from initdiag.analysis.result import format_number

    regions = layer_regions(text, [layer["name"] for layer in data["layers"]])
    for layer in data["layers"]:
        region = regions[layer["name"]]
        for key in ("forward_gain", "backward_gain"):
            value = layer[key]
            shown = "nan" if value is None else format_number(value)
            assert re.search(rf"(^|\s){re.escape(shown)}(\s|$|±)", region), (
                layer["name"],
                key,
                shown,
                region,
            )
        for flag in layer["flags"]:
            assert flag in region, (layer["name"], flag, region)


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("width", WIDTHS)
def test_probe_of_a_spec_with_long_names(tmp_path, width, terminal):
    path = tmp_path / "spec.toml"
    path.write_text(RESNET)
    text = render(["probe", "-c", str(path)], width, terminal)
    assert_whole(text, width)
    data = json.loads(runner.invoke(app, ["probe", "-c", str(path), "-f", "json"]).stdout)
    assert_every_layer_whole(text, data)


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("width", WIDTHS)
def test_compare(width, terminal):
    args = ["compare", "--layers", "784,256x6,10", "--init", "he,xavier,normal:0.01,torch_default,orthogonal"]
    text = render(args, width, terminal)
    assert_whole(text, width)
    for label in ("he", "xavier", "normal:0.01", "torch_default", "orthogonal"):
        assert label in text
    assert "ok" in text and "fail" in text and "vanishing" in text


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("width", WIDTHS)
def test_sweep(width, terminal):
    args = ["sweep", "--width", "32", "--depth", "2,4,8,16,32,64,128", "--init", "he,xavier,normal:0.01",
            "--jobs", "1"]  # fmt: skip
    text = render(args, width, terminal)
    assert_whole(text, width)
    assert text.count("✘") >= 3 and "✔" in text


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("width", WIDTHS)
def test_check_with_long_file_names(tmp_path, width, terminal):
    folder = tmp_path / "a_rather_deep_folder_name" / "with_another_long_folder_inside_it"
    folder.mkdir(parents=True)
    (folder / "healthy_multilayer_perceptron_spec.toml").write_text(
        "input_shape = [32]\nlayers = [{units = 32}, {units = 10}]\n"
    )
    (folder / "deep_xavier_relu_stack_that_vanishes.toml").write_text(
        'input_shape = [32]\n[defaults]\ninit = "xavier_normal"\n[[layers]]\nunits = 32\nrepeat = 20\n'
        "[[layers]]\nunits = 10\n"
    )
    text = render(["check", str(folder), "--jobs", "1"], width, terminal)
    assert_whole(text, width)
    assert "PASS" in text and "FAIL" in text and "1 failed, 1 passed" in text
    assert "vanishing" in text


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("width", WIDTHS)
def test_train(width, terminal):
    args = ["train", "--iters", "200", "--init", "zeros,he,normal:0.333", "--jobs", "1"]
    text = render(args, width, terminal)
    assert_whole(text, width)
    for label in ("zeros", "he", "normal:0.333"):
        assert label in text


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("width", WIDTHS)
def test_reference_card(width, terminal):
    text = render(["inits"], width, terminal)
    assert_whole(text, width)
    for name in ("he_normal", "torch_default", "lsuv", "orthogonal"):
        assert name in text


@pytest.mark.parametrize("system", ["standard", "256", "truecolor"])
def test_every_band_of_the_heat_map_has_its_own_colour(system):
    """Even a terminal (or CI log) of the 16 standard colours shows each band in its own colour."""
    from rich.console import Console
    from rich.style import Style

    from initdiag.render.sweep import HEAT_BANDS, heat_band

    codes = set()
    console = Console(color_system=system, force_terminal=True)
    for _, style in HEAT_BANDS:
        codes.add(Style.parse(style).render("x", color_system=console._color_system))
    assert len(codes) == len(HEAT_BANDS)
    limit = 10.0
    gains = [1e-9, 0.05, 0.15, 1.0, 6.0, 50, 1e9, float("nan")]
    assert [heat_band(g, limit) for g in gains] == list(range(8))


def test_the_sweep_legend_matches_what_is_printed():
    """Piped (no colour) the legend names the verdict marks each cell carries, and no colours."""
    args = ["sweep", "--width", "16", "--depth", "2,32", "--init", "he,normal:0.01", "--jobs", "1"]
    plain = runner.invoke(app, args, env={"NO_COLOR": "1"}).stdout
    assert "✔ ok, ! warn, ✘ fail" in plain and "colour:" not in plain
    coloured = runner.invoke(app, args, env={"FORCE_COLOR": "1", "COLUMNS": "160"}).stdout
    assert "colour: the forward gain" in ANSI.sub("", coloured)


@pytest.mark.parametrize("width", [200, 120, 80])
@pytest.mark.parametrize(
    "args", [("32,32x3,10", "he"), ("64,64x4,10", "zeros"), ("784,256,256,10", "xavier")]
)
def test_long_tables_laid_out_directly_print_what_rich_prints(monkeypatch, width, args):
    """Above FAST_ROWS rows a table that fits is laid out line by line (rich's Table takes 3 ms a
    row): the same characters, whatever the number of rows."""
    import io

    from rich.console import Console

    import initdiag
    from initdiag.render import tables
    from initdiag.render.probe import probe_table

    result = initdiag.probe(args[0], init=args[1], batch=16)

    def text(fast_rows):
        monkeypatch.setattr(tables, "FAST_ROWS", fast_rows)
        console = Console(width=width, color_system=None, file=io.StringIO(), record=True)
        console.print(probe_table(result, width=width))
        return console.export_text()

    assert text(0) == text(10**9)
