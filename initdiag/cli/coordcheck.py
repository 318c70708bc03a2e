"""initdiag coordcheck: μP's coordinate check, with slopes and a verdict."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import InitdiagError
from .app import choice, command, print_rich
from .options import ACTS, DebugOpt, FormatOpt, SeedOpt, opt, positive_ints

# the options a coordcheck spec's keys stand for (CoordSettings field -> this command's parameter)
_SETTING_OF = {"params": "param"}

COORDCHECK_EXAMPLE = (
    "initdiag coordcheck --layers 64,W,W,W,10 --widths 64,128,256,512,1024,2048 --act relu --param sp,mup "
    "--optimizer adam --lr 1e-3 --steps 5 --seeds 3"
)


@command(epilog=f"Example: {COORDCHECK_EXAMPLE}")
def coordcheck(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        opt(
            "A coordcheck spec file (.toml, .yaml, .json) with a \\[coordcheck] table; the options given "
            "here override its values.",
            "--config",
            "-c",
            metavar="FILE",
        ),
    ] = None,
    layers: Annotated[
        str,
        typer.Option(
            "--layers",
            "-l",
            metavar="WIDTHS",
            help="Widths, input first; W marks the widths that scale (2W twice W, Wx3 repeats).",
        ),
    ] = "64,W,W,W,10",
    widths: Annotated[
        str, typer.Option("--widths", metavar="WIDTHS", help="The values W takes, comma-separated.")
    ] = "64,128,256,512,1024,2048",
    param: Annotated[
        str,
        typer.Option(
            "--param",
            metavar="NAMES",
            help="Parametrizations: sp, mup (mup:readout=normal for a random readout), ntk, mean_field; "
            "initdiag explain NAME prints each rule.",
        ),
    ] = "sp,mup",
    act: Annotated[
        str, typer.Option("--act", help=f"Hidden activation: {ACTS}.", metavar="NAME[:ARG]")
    ] = "relu",
    init: Annotated[
        str,
        typer.Option(
            "--init",
            metavar="NAME[:ARGS]",
            help="The stack's initializer: sp uses it at every width, the others rescale its variance "
            "at the base width.",
        ),
    ] = "he",
    bias_init: Annotated[
        str, typer.Option("--bias-init", metavar="NAME[:ARGS]", help="Bias initializer.")
    ] = "zeros",
    optimizer: Annotated[
        str, typer.Option("--optimizer", help="sgd, momentum (0.9) or adam (0.9, 0.999), as torch.optim.")
    ] = "adam",
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (at the base width).")] = 1e-3,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps after init.")] = 5,
    seeds: Annotated[
        int, typer.Option("--seeds", help="Runs per width and parametrization (init seeds).")
    ] = 3,
    batch: Annotated[int, typer.Option("--batch", help="Size of the one fixed batch.")] = 64,
    loss: Annotated[
        str,
        typer.Option("--loss", help="xent (softmax cross-entropy on the labels) or mse (on one-hot labels)."),
    ] = "xent",
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="random (N(0, 1) inputs, random labels) or a toy set of train: circles, moons, "
            "spiral (input width 2).",
        ),
    ] = "random",
    base_width: Annotated[
        int | None,
        opt("The width where every parametrization is SP (default: the narrowest).", "--base-width"),
    ] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="A layer is stable when |slope| <= this + 2 standard errors.")
    ] = 0.1,
    seed: SeedOpt = 0,
    dtype: Annotated[
        str, typer.Option("--dtype", help="float32 (default) or float64 arithmetic.")
    ] = "float32",
    jobs: Annotated[
        int | None,
        opt("Processes to train on (default: one per core for big jobs; 1: this process).", "--jobs"),
    ] = None,
    fail_on: Annotated[
        str | None,
        opt(
            "Exit 1 if a parametrization has any of these: grows, shrinks, nonfinite, zero, diverged, "
            "or any.",
            "--fail-on",
            metavar="FLAGS",
        ),
    ] = None,
    save_plot: Annotated[
        str | None,
        opt(
            "Save the panels as a PNG (needs matplotlib: pip install 'initdiag\\[plot]').",
            "--save-plot",
            metavar="FILE.png",
        ),
    ] = None,
    format: FormatOpt = "table",
    debug: DebugOpt = False,
) -> None:
    """Train a few steps at several widths under each parametrization (sp, mup, ...): does each layer's size stay flat as width grows? Slopes per layer and step, panels, a verdict."""  # noqa: E501
    from ..analysis.coordcheck import FLAGS, CoordSettings
    from ..analysis.coordcheck import coordcheck as run
    from ..analysis.workers import keep_freed_memory
    from ..core.callspec import split_list
    from ..render import coordcheck as render
    from ..render.common import FORMATS

    keep_freed_memory()  # this process is ours
    fmt = choice("--format", format, FORMATS)
    fail_flags = _fail_on(fail_on, FLAGS)
    if save_plot is not None:
        from .train import _check_plot_path

        _check_plot_path(save_plot)
    values = dict(
        layers=layers,
        widths=positive_ints(widths, "--widths", "64,128,256"),
        params=split_list(param, "--param"),
        act=act,
        init=init,
        bias_init=bias_init,
        optimizer=choice("--optimizer", optimizer, ("sgd", "momentum", "adam")),
        lr=lr,
        steps=steps,
        seeds=seeds,
        seed=seed,
        batch=batch,
        loss=choice("--loss", loss, ("xent", "mse")),
        data=choice("--data", data, ("random", "circles", "moons", "spiral")),
        base_width=base_width,
        tolerance=tolerance,
        dtype=choice("--dtype", dtype, ("float32", "float64")),
        jobs=jobs,
    )
    if config is not None:
        from dataclasses import replace

        from ..analysis.coordspec import load_coord_spec

        spec = load_coord_spec(config)
        given = _given(ctx)
        values = {key: value for key, value in values.items() if _SETTING_OF.get(key, key) in given}
        settings = replace(spec.settings, **values)
        if "fail_on" not in given:
            fail_flags = _fail_on(",".join(spec.fail_on), FLAGS)
    else:
        settings = CoordSettings(**values)
    report = run(settings)
    if fmt == "table":
        print_rich(lambda width: render.coordcheck_table(report))
    else:
        sys.stdout.write(render.coordcheck_text(report, fmt))
    if save_plot is not None:
        render.save_plot(report, save_plot)
    if fail_flags & report.flags:
        raise typer.Exit(1)


def _given(ctx: typer.Context) -> set[str]:
    """The parameters typed on this command line (not left at their defaults)."""
    return {name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", "") != "DEFAULT"}


def _fail_on(text: str | None, flags: tuple[str, ...]) -> set[str]:
    if not text:
        return set()
    asked = {part.strip().lower() for part in text.split(",") if part.strip()}
    if "any" in asked:
        return set(flags)
    unknown = sorted(asked - set(flags))
    if unknown:
        raise InitdiagError(f"--fail-on: unknown flag '{unknown[0]}'; allowed: {', '.join(flags)} or any")
    return asked
