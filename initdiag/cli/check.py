"""initdiag check: the CI gate."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .app import choice, command, plain, print_rich, write_file
from .options import DebugOpt, opt


@command(epilog="Example: initdiag check sample_configs/ --format junit --output initdiag.xml")
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
        opt("Write the --format output to FILE; the table still prints.", "--output", "-o", metavar="FILE"),
    ] = None,
    baseline: Annotated[
        str | None,
        opt(
            "A saved 'check --format json' result: fail when a layer's forward or backward gain moved more "
            "than --baseline-factor.",
            "--baseline",
            metavar="FILE",
        ),
    ] = None,
    baseline_factor: Annotated[
        float, typer.Option("--baseline-factor", help="How far a gain may move from the baseline.")
    ] = 2.0,
    trials: Annotated[
        int | None, opt("Seeds per spec (default: the spec's probe.trials, else 1, as probe --config).")
    ] = None,
    seed: Annotated[int | None, opt("Root seed (default: the spec's probe.seed, else 0).")] = None,
    max_gain: Annotated[
        float | None, opt("Override every spec's max forward and backward gain.", "--max-gain")
    ] = None,
    jobs: Annotated[
        int | None,
        opt("Processes to check specs on (default: one per core; 1: one after another).", "--jobs"),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Probe spec files and gate CI on their thresholds: exit 0 if all pass, 1 if any fails, 2 if any is malformed."""  # noqa: E501
    from ..analysis.check import run_check
    from ..render import check as render

    fmt = choice("--format", format, render.CHECK_FORMATS)
    report = run_check(
        specs,
        trials=trials,
        seed=seed,
        max_gain=max_gain,
        baseline=baseline,
        baseline_factor=baseline_factor,
        jobs=jobs,
    )
    if output is not None:
        write_file(
            output, plain(render.check_table(report)) if fmt == "table" else render.check_text(report, fmt)
        )
    if fmt == "table" or output is not None:
        print_rich(lambda width: render.check_table(report))
    else:
        sys.stdout.write(render.check_text(report, fmt))
        for outcome in report.outcomes:  # in logs, malformed specs show even when stdout is parsed
            for problem in outcome.problems:
                sys.stderr.write(f"initdiag: error: {problem}\n")
        note = render.skipped_note(report)
        if note:
            sys.stderr.write(f"initdiag: note: {note}\n")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for annotation in render.github_annotations(report):
            sys.stdout.write(annotation + "\n")
    raise typer.Exit(report.exit_code)
