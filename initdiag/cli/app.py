"""The Typer app, set up once: one-line errors and exit codes, the version option, the registry of
commands (so the console script builds only the one it runs), and printing to a terminal or a pipe."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from .._version import __version__
from ..errors import InitdiagError, command_line_spelling

PROBE_EXAMPLE = "initdiag probe --layers 784,256,256,10 --act relu --init he"


def _error(message: str, code: int) -> None:
    sys.stderr.write(f"initdiag: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


class _OneLineErrors(TyperGroup):
    """Runs the app and turns every error into one line on stderr with the right exit code."""

    def main(self, *args, **kwargs):
        with command_line_spelling():  # errors name --options, not keyword arguments
            return self._main(*args, **kwargs)

    def _main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
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


def new_app() -> typer.Typer:
    return typer.Typer(
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


app = new_app()


# every command's function and registration, so `main` can build an app of just the one it runs:
# typer turns each command's signature into click options at start-up, ~1 ms per ten options
COMMANDS: dict[str, tuple] = {}


def command(**settings):
    def register(function):
        COMMANDS[function.__name__] = (function, settings)
        return app.command(**settings)(function)

    return register


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"initdiag {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Diagnose neural-network weight initialization before training."""


def choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value not in allowed:
        from ..errors import did_you_mean

        hint = did_you_mean(value, allowed)
        raise InitdiagError(f"{option} '{value}' is not one of {', '.join(allowed)}{hint}")
    return value


def parse_fail_on(text: str | None) -> set[str]:
    from ..analysis.result import FLAGS

    if not text:
        return set()
    flags = {part.strip().lower() for part in text.split(",") if part.strip()}
    if "any" in flags:
        return set(FLAGS)
    unknown = sorted(flags - set(FLAGS))
    if unknown:
        raise InitdiagError(f"--fail-on: unknown flag '{unknown[0]}'; allowed: {', '.join(FLAGS)} or any")
    return flags


PIPE_WIDTH = 200  # the width of piped output when COLUMNS does not say


def print_rich(renderable_for_width) -> None:
    """Print a rich renderable: coloured and fitted to a terminal; piped, plain, fitted to COLUMNS
    (default `PIPE_WIDTH`), without trailing padding."""
    from rich.console import Console

    console = Console(highlight=False, emoji=False)  # no emoji codes to replace: rich skips its table
    if console.is_terminal:
        console.print(renderable_for_width(console.width))
        return
    width = pipe_width()
    sys.stdout.write(plain(renderable_for_width(width), width))


def pipe_width() -> int:
    try:
        return max(int(os.environ.get("COLUMNS", PIPE_WIDTH)), 20)
    except ValueError:
        return PIPE_WIDTH


def plain(renderable, width: int | None = None) -> str:
    from rich.console import Console

    console = Console(highlight=False, emoji=False, width=width or pipe_width(), color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n"


def write_file(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise InitdiagError(f"cannot write --output '{path}': {exc.strerror or exc}") from None
