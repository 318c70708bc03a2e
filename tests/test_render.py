"""Rendering helpers: number formatting, the log-scale gain track, JSON safety, narrow terminals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich.console import Console
from typer.testing import CliRunner

import initdiag
from initdiag.cli import app
from initdiag.render.common import fmt, json_safe
from initdiag.render.probe import BAR_CELLS, gain_bar, probe_table


def test_fmt():
    assert fmt(0.0) == "0"
    assert fmt(1.41421) == "1.41"
    assert fmt(0.000617) == "0.000617"
    assert fmt(2.13e-9) == "2.13e-9"
    assert fmt(1.34e8) == "1.34e+8"
    assert fmt(math.inf) == "inf" and fmt(-math.inf) == "-inf" and fmt(math.nan) == "nan"


def test_gain_bar_is_log_scale_half_a_decade_per_cell():
    centre = BAR_CELLS // 2
    assert gain_bar(1.0, 10)[1] == centre
    assert gain_bar(10.0, 10)[1] == centre + 2
    assert gain_bar(0.1, 10)[1] == centre - 2
    assert gain_bar(10**0.5, 10)[1] == centre + 1
    bar, pos = gain_bar(1e9, 10)
    assert pos == BAR_CELLS - 1 and bar.endswith("▶")
    bar, pos = gain_bar(0.0, 10)
    assert pos == 0 and bar.startswith("◀")
    bar, pos = gain_bar(math.nan, 10)
    assert pos is None and "●" not in bar
    # the healthy band [1/T, T] is drawn solid, the rest dotted
    assert gain_bar(1.0, 10)[0] == "····──●──····"


def test_json_safe():
    assert json_safe({"a": [np.float32(1.5), math.nan, -math.inf, np.int64(3)]}) == {
        "a": [1.5, None, None, 3]
    }


def test_narrow_terminal_hides_minor_columns_not_the_flags():
    result = initdiag.probe("64,32,8", init="zeros")
    console = Console(width=80, force_terminal=True, color_system=None)
    with console.capture() as captured:
        console.print(probe_table(result, width=80))
    text = captured.get()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "symmetric" in text and "∂x std" in text
    assert "hidden to fit the terminal: z mean, a mean" in " ".join(text.split())
    assert "…" not in text


def test_colours_are_distinct_per_flag():
    from initdiag.render.common import FLAG_STYLES

    assert len(set(FLAG_STYLES.values())) == len(FLAG_STYLES)
    result = initdiag.probe("256,256x60,10", init="normal:1")
    console = Console(width=250, force_terminal=True, color_system="truecolor")
    with console.capture() as captured:
        console.print(probe_table(result))
    text = captured.get()
    assert "\x1b[" in text  # coloured on a terminal


def test_user_text_is_printed_as_typed_not_read_as_markup(tmp_path):
    """A spec's name (and any label a user typed) goes to rich as Text: "[bold]" or ":fire:" in it
    is printed, not interpreted, also on a console that reads markup and emoji codes (a notebook's)."""
    from dataclasses import replace

    name = "net :fire: [v2] [bold]x"
    spec = tmp_path / "named.toml"
    sample = Path(__file__).parent.parent / "sample_configs" / "mlp_he.toml"
    spec.write_text(sample.read_text().replace('name = "mlp-he"', f'name = "{name}"', 1))
    result = CliRunner().invoke(app, ["probe", "--config", str(spec)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"{name} · 784 → ")
    probed = initdiag.probe("8,4,2")
    probed = replace(probed, spec=replace(probed.spec, name=name))
    console = Console(width=200, force_terminal=True, color_system=None)  # markup and emoji on
    with console.capture() as captured:
        console.print(probe_table(probed))
    assert captured.get().startswith(name)
