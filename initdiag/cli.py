"""The command line: parse options, call the library, render, exit. The only module that exits.

Exit codes: 0 done; 1 ``--fail-on`` matched (and, later, a failing ``check``); 2 bad input (one line
on stderr, never a traceback unless ``--debug``); 3 an internal error (a bug; ``--debug`` shows it).
"""

from __future__ import annotations

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


def _emit(result, fmt: str) -> None:
    from .render import probe_table, render_text

    if fmt != "table":
        sys.stdout.write(render_text(result, fmt))
        return
    from rich.console import Console

    console = Console(highlight=False)
    if console.is_terminal:
        console.print(probe_table(result, width=console.width))
        return
    # piped: no colour, room for every column, no trailing padding
    console = Console(highlight=False, width=int(os.environ.get("COLUMNS", 200)))
    with console.capture() as captured:
        console.print(probe_table(result))
    sys.stdout.write("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")


@app.command(epilog=f"Example: {PROBE_EXAMPLE}")
def probe(
    layers: Annotated[
        str,
        typer.Option(
            "--layers",
            "-l",
            metavar="WIDTHS",
            help="Widths, input first: 784,256,256,10; repeat with 256x8.",
            show_default=False,
        ),
    ],
    act: Annotated[
        str,
        typer.Option(
            metavar="NAME[:ARG]",
            help="Hidden activation: relu, leaky_relu[:SLOPE], elu, selu, gelu, silu, "
            "softplus, sigmoid, tanh, linear.",
        ),
    ] = "relu",
    out_act: Annotated[
        str, typer.Option("--out-act", metavar="NAME[:ARG]", help="Last layer's activation.")
    ] = "linear",
    init: Annotated[
        str,
        typer.Option(
            metavar="NAME[:ARGS]",
            help="Weight initializer NAME[:ARGS], e.g. he, xavier_uniform, "
            "normal:0.01, he_uniform:mode=fan_out, orthogonal:gain=auto, lsuv, "
            "file:W.npz.",
        ),
    ] = "he_normal",
    bias_init: Annotated[
        str | None,
        typer.Option(
            "--bias-init",
            metavar="NAME[:ARGS]",
            help="Bias initializer (default: zeros, but torch_default "
            "keeps its own U(±1/sqrt(fan_in)) bias).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[int, typer.Option(help="Batch size of the random input.")] = 256,
    seed: SeedOpt = 0,
    trials: Annotated[int, typer.Option(help="Repeat with this many seeds; report mean and spread.")] = 1,
    loss: Annotated[
        str, typer.Option(help="unit (random read-out), mse or xent (softmax cross-entropy).")
    ] = "unit",
    input: Annotated[
        str,
        typer.Option(
            "--input",
            metavar="SOURCE",
            help="normal, uniform (unit variance), normal:STD, "
            "uniform:low=L,high=H, or FILE.npy of shape (batch, input width).",
        ),
    ] = "normal",
    dtype: Annotated[
        str, typer.Option(help="float32 or float64 (statistics are float64 either way).")
    ] = "float32",
    max_gain: Annotated[
        float,
        typer.Option(
            "--max-gain", help="T: a layer whose cumulative gain leaves [1/T, T] is vanishing or exploding."
        ),
    ] = 10.0,
    format: FormatOpt = "table",
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            metavar="FLAGS",
            help="Exit 1 if any of these comma-separated flags appears: "
            "vanishing, exploding, dead, saturated, symmetric, nonfinite, "
            "or any.",
            show_default=False,
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Probe one stack with one initializer: a per-layer table of activation and gradient statistics, then a one-line verdict."""  # noqa: E501
    from . import render
    from .probing import probe as run
    from .spec import Thresholds

    fmt = _choice("--format", format, render.FORMATS)
    fail_flags = _parse_fail_on(fail_on)
    if max_gain <= 1:
        raise InitdiagError(f"--max-gain must be greater than 1, got {max_gain:g}")
    result = run(
        layers,
        act=act,
        out_act=out_act,
        init=init,
        bias_init=bias_init,
        batch=batch,
        seed=seed,
        trials=trials,
        loss=_choice("--loss", loss, ("unit", "mse", "xent")),
        input=input,
        dtype=_choice("--dtype", dtype, ("float32", "float64")),
        thresholds=Thresholds(max_forward_gain=max_gain, max_backward_gain=max_gain),
    )
    _emit(result, fmt)
    if fail_flags & set(result.summary.flags):
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()
