"""The reference commands: inits, explain, schema."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import InitdiagError
from .app import choice, command, print_rich
from .options import DebugOpt, FormatOpt


@command(epilog="Example: initdiag inits --format markdown")
def inits(format: FormatOpt = "table", debug: DebugOpt = False) -> None:
    """Reference card: every initializer with its distribution, fan mode, gain and when to use it; the gain table."""  # noqa: E501
    from ..render import reference as render
    from ..render.common import FORMATS

    fmt = choice("--format", format, FORMATS)
    if fmt == "table":
        print_rich(lambda width: render.inits_table())
    else:
        sys.stdout.write(render.inits_text(fmt))


@command(epilog="Example: initdiag explain torch_default")
def explain(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="An initializer or alias (he, glorot, torch_default, ...), or a parametrization "
            "(sp, mup, ntk, mean_field).",
        ),
    ],
    format: FormatOpt = "table",
    debug: DebugOpt = False,
) -> None:
    """One initializer in full: formula, paper, its PyTorch / Keras / JAX spelling, when to use it, and the traps."""  # noqa: E501
    from ..render import reference as render
    from ..render.common import FORMATS

    fmt = choice("--format", format, FORMATS)
    sys.stdout.write(render.explain_text(name, fmt))


@command(epilog="Example: initdiag schema > initdiag.schema.json")
def schema(
    format: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="json, the one format of a JSON Schema.")
    ] = "json",
    debug: DebugOpt = False,
) -> None:
    """Print the JSON Schema of spec files (for editors and validators)."""
    from ..network.schema import schema_text

    if format.strip().lower() != "json":
        raise InitdiagError(f"--format '{format}': schema prints a JSON Schema, whose one format is json")
    sys.stdout.write(schema_text())
