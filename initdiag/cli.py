"""The command line: parse options, call the library, render, exit. The only module that exits.

Exit codes: 0 done; 1 ``--fail-on`` matched (and, later, a failing ``check``); 2 bad input (one line
on stderr, never a traceback unless ``--debug``); 3 an internal error (a bug; ``--debug`` shows it).
"""

import os
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from ._version import __version__
from .errors import InitdiagError

PROBE_EXAMPLE = "initdiag probe --layers 784,256,256,10 --act relu --init he"


def _error(message: str, code: int) -> None:
    sys.stderr.write(f"initdiag: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


class _OneLineErrors(TyperGroup):
    """Runs the app and turns every error into one line on stderr with the right exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        try:
            rv = super().main(
                args=argv, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
        except InitdiagError as exc:
            if debug:
                raise
            _error(str(exc), 2)
        except MemoryError:
            if debug:
                raise
            _error("out of memory; use fewer or narrower layers or a smaller --batch", 2)
        except Exception as exc:
            if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click usage errors
                if type(exc).__name__ == "NoArgsIsHelpError":
                    sys.stdout.write(exc.format_message() + "\n")
                    sys.exit(0)
                message = " ".join(exc.format_message().split())
                command = getattr(getattr(exc, "ctx", None), "command_path", "initdiag")
                _error(f"{message} (see '{command} --help')", exc.exit_code)
            if type(exc).__name__ == "Abort":
                _error("aborted", 1)
            if debug:
                raise
            _error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", 3)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    name="initdiag",
    help="Diagnose neural-network weight initialization before training.\n\n"
    f"Example: [bold]{PROBE_EXAMPLE}[/bold]",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"initdiag {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Diagnose neural-network weight initialization before training."""


# Options shared by every command.
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Root seed; every layer and the input get their own stream.")
]
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", metavar="FORMAT", help="table, json, csv or markdown.")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")]


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value not in allowed:
        from .errors import did_you_mean

        hint = did_you_mean(value, allowed)
        raise InitdiagError(f"{option} '{value}' is not one of {', '.join(allowed)}{hint}")
    return value


def _parse_fail_on(text: str | None) -> set[str]:
    from .result import FLAGS

    if not text:
        return set()
    flags = {part.strip().lower() for part in text.split(",") if part.strip()}
    if "any" in flags:
        return set(FLAGS)
    unknown = sorted(flags - set(FLAGS))
    if unknown:
        raise InitdiagError(f"--fail-on: unknown flag '{unknown[0]}'; allowed: {', '.join(FLAGS)} or any")
    return flags


def _print_rich(renderable_for_width) -> None:
    """Print a rich renderable: coloured and fitted on a terminal; piped, plain, wide enough for
    every column and without trailing padding."""
    from rich.console import Console

    console = Console(highlight=False)
    if console.is_terminal:
        console.print(renderable_for_width(console.width))
        return
    sys.stdout.write(_plain(renderable_for_width(None)))


def _plain(renderable) -> str:
    from rich.console import Console

    console = Console(highlight=False, width=int(os.environ.get("COLUMNS", 200)), color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n"


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise InitdiagError(f"cannot write --output '{path}': {exc.strerror or exc}") from None


def _opt(help: str, *names: str, metavar: str | None = None):
    """An option whose default is "not given" (None), so a spec file's value can stand."""
    return typer.Option(*names, help=help, metavar=metavar, show_default=False)


@app.command(epilog=f"Example: {PROBE_EXAMPLE}")
def probe(
    layers: Annotated[
        str | None,
        _opt("Widths, input first: 784,256,256,10; repeat with 256x8.", "--layers", "-l", metavar="WIDTHS"),
    ] = None,
    config: Annotated[
        str | None,
        _opt(
            "A spec file (.toml, .yaml, .json); the options below override its values.",
            "--config",
            "-c",
            metavar="FILE",
        ),
    ] = None,
    act: Annotated[
        str | None,
        _opt(
            "Hidden activation (default relu): relu, leaky_relu[:SLOPE], elu, selu, gelu, silu, softplus, "
            "sigmoid, tanh, linear.",
            metavar="NAME[:ARG]",
        ),
    ] = None,
    out_act: Annotated[
        str | None, _opt("Last layer's activation (default linear).", "--out-act", metavar="NAME[:ARG]")
    ] = None,
    init: Annotated[
        str | None,
        _opt(
            "Weight initializer NAME[:ARGS] (default he_normal), e.g. he, xavier_uniform, normal:0.01, "
            "he_uniform:mode=fan_out, orthogonal:gain=auto, lsuv, file:W.npz.",
            metavar="NAME[:ARGS]",
        ),
    ] = None,
    bias_init: Annotated[
        str | None,
        _opt(
            "Bias initializer (default zeros, but torch_default keeps its own U(±1/sqrt(fan_in)) bias).",
            "--bias-init",
            metavar="NAME[:ARGS]",
        ),
    ] = None,
    norm: Annotated[
        str | None,
        _opt(
            "none (default), batch or layer: a normalization layer after each hidden dense layer, which "
            "takes the activation (Linear -> Norm -> act).",
            "--norm",
            metavar="KIND",
        ),
    ] = None,
    residual: Annotated[
        bool,
        typer.Option(
            "--residual",
            help="Make each hidden layer that keeps its width a pre-activation residual block: "
            "x + scale * W act(x).",
        ),
    ] = False,
    residual_scale: Annotated[
        float | None,
        _opt(
            "The residual branch's factor (default 1), e.g. 0.14 = 1/sqrt(50) for 50 blocks.",
            "--residual-scale",
            metavar="S",
        ),
    ] = None,
    dropout: Annotated[
        float | None,
        _opt(
            "Inverted dropout with this rate after each hidden layer (train mode).", "--dropout", metavar="P"
        ),
    ] = None,
    batch: Annotated[int | None, _opt("Batch size of the random input (default 256).")] = None,
    seed: Annotated[
        int | None, _opt("Root seed (default 0); every layer and the input get their own stream.")
    ] = None,
    trials: Annotated[
        int | None, _opt("Repeat with this many seeds; report mean and spread (default 1).")
    ] = None,
    loss: Annotated[
        str | None, _opt("unit (default; a random read-out), mse or xent (softmax cross-entropy).")
    ] = None,
    input: Annotated[
        str | None,
        _opt(
            "normal (default), uniform (unit variance), normal:STD, uniform:low=L,high=H, or FILE.npy of "
            "shape (batch, *input shape).",
            "--input",
            metavar="SOURCE",
        ),
    ] = None,
    dtype: Annotated[
        str | None, _opt("float32 (default) or float64; statistics are float64 either way.")
    ] = None,
    max_gain: Annotated[
        float | None,
        _opt(
            "T (default 10): a layer whose cumulative gain leaves [1/T, T] is vanishing or exploding.",
            "--max-gain",
        ),
    ] = None,
    format: FormatOpt = "table",
    fail_on: Annotated[
        str | None,
        _opt(
            "Exit 1 if any of these comma-separated flags appears: vanishing, exploding, dead, saturated, "
            "symmetric, nonfinite, or any.",
            "--fail-on",
            metavar="FLAGS",
        ),
    ] = None,
    emit_spec: Annotated[
        str | None,
        _opt(
            "Print the spec file these options describe, as toml, yaml or json, instead of probing.",
            "--emit-spec",
            metavar="FORMAT",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Probe one stack with one initializer: a per-layer table of activation and gradient statistics, then a one-line verdict."""  # noqa: E501
    from . import render
    from .probing import run_probe
    from .spec import job
    from .specfile import dump, to_data

    fmt = _choice("--format", format, render.FORMATS)
    fail_flags = _parse_fail_on(fail_on)
    if max_gain is not None and max_gain <= 1:
        raise InitdiagError(f"--max-gain must be greater than 1, got {max_gain:g}")
    stack, settings, check = job(
        layers=layers,
        config=config,
        stack_options={
            "act": act,
            "out_act": out_act,
            "init": init,
            "bias_init": bias_init,
            "norm": None
            if norm is None
            else _choice("--norm", norm, ("none", "batch", "layer")).replace("none", "") or None,
            "residual": residual,
            "residual_scale": residual_scale,
            "dropout": dropout,
        },
        probe_options={
            "batch": batch,
            "seed": seed,
            "trials": trials,
            "loss": None if loss is None else _choice("--loss", loss, ("unit", "mse", "xent")),
            "input": input,
            "dtype": None if dtype is None else _choice("--dtype", dtype, ("float32", "float64")),
        },
        max_gain=max_gain,
    )
    if emit_spec is not None:
        spec_fmt = _choice("--emit-spec", emit_spec, ("toml", "yaml", "json"))
        sys.stdout.write(dump(to_data(stack, settings, check), spec_fmt))
        return
    result = run_probe(stack, settings)
    if fmt == "table":
        _print_rich(lambda width: render.probe_table(result, width=width))
    else:
        sys.stdout.write(render.render_text(result, fmt))
    if fail_flags & set(result.summary.flags):
        raise typer.Exit(1)


@app.command(epilog="Example: initdiag check sample_configs/ --format junit --output initdiag.xml")
def check(
    specs: Annotated[
        list[str],
        typer.Argument(metavar="SPEC...", help="Spec files, directories or globs.", show_default=False),
    ],
    format: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="table, json, csv, markdown or junit.")
    ] = "table",
    output: Annotated[
        str | None,
        _opt("Write the --format output to FILE; the table still prints.", "--output", "-o", metavar="FILE"),
    ] = None,
    baseline: Annotated[
        str | None,
        _opt(
            "A saved 'check --format json' result: fail when a layer's forward or backward gain moved more "
            "than --baseline-factor.",
            "--baseline",
            metavar="FILE",
        ),
    ] = None,
    baseline_factor: Annotated[
        float, typer.Option("--baseline-factor", help="How far a gain may move from the baseline.")
    ] = 2.0,
    trials: Annotated[int | None, _opt("Seeds per spec (default: the spec's probe.trials, else 3).")] = None,
    seed: Annotated[int | None, _opt("Root seed (default: the spec's probe.seed, else 0).")] = None,
    max_gain: Annotated[
        float | None, _opt("Override every spec's max forward and backward gain.", "--max-gain")
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Probe spec files and gate CI on their thresholds: exit 0 if all pass, 1 if any fails, 2 if any is malformed."""  # noqa: E501
    from . import render
    from .check import run_check

    fmt = _choice("--format", format, render.CHECK_FORMATS)
    report = run_check(
        specs, trials=trials, seed=seed, max_gain=max_gain, baseline=baseline, baseline_factor=baseline_factor
    )
    if output is not None:
        _write(
            output, _plain(render.check_table(report)) if fmt == "table" else render.check_text(report, fmt)
        )
    if fmt == "table" or output is not None:
        _print_rich(lambda width: render.check_table(report))
    else:
        sys.stdout.write(render.check_text(report, fmt))
        for outcome in report.outcomes:  # in logs, malformed specs show even when stdout is parsed
            for problem in outcome.problems:
                sys.stderr.write(f"initdiag: error: {problem}\n")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for annotation in render.github_annotations(report):
            sys.stdout.write(annotation + "\n")
    raise typer.Exit(report.exit_code)


@app.command(epilog="Example: initdiag schema > initdiag.schema.json")
def schema() -> None:
    """Print the JSON Schema of spec files (for editors and validators)."""
    from .specfile import schema_text

    sys.stdout.write(schema_text())


def main() -> None:
    """Console-script entry point."""
    app()
