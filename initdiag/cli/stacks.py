"""The commands that probe stacks: probe (one), compare (several side by side), sweep (a grid)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import InitdiagError
from .app import PROBE_EXAMPLE, choice, command, parse_fail_on, print_rich
from .options import (
    ACTS,
    INITS,
    BatchOpt,
    BiasInitOpt,
    ConfigOpt,
    DebugOpt,
    DeviceOpt,
    DropoutOpt,
    DtypeOpt,
    FormatOpt,
    InputOpt,
    InputShapeOpt,
    JacobianOpt,
    KeepInitsOpt,
    LayersOpt,
    LossOpt,
    MaxGainOpt,
    ModelArgOpt,
    ModelOpt,
    NormOpt,
    OutActOpt,
    ResidualOpt,
    ResidualScaleOpt,
    SeedNoneOpt,
    TheoryOpt,
    TrialsOpt,
    check_max_gain,
    model_spec,
    opt,
    positive_ints,
    probe_options,
    stack_options,
)


@command(epilog=f"Example: {PROBE_EXAMPLE}")
def probe(
    layers: LayersOpt = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    input_shape: InputShapeOpt = None,
    device: DeviceOpt = None,
    act: Annotated[
        str | None, opt(f"Hidden activation (default relu): {ACTS}.", "--act", metavar="NAME[:ARG]")
    ] = None,
    out_act: OutActOpt = None,
    init: Annotated[
        str | None,
        opt(
            f"Weight initializer NAME[:ARGS] (default he_normal), e.g. {INITS}, file:W.npz.",
            "--init",
            metavar="NAME[:ARGS]",
        ),
    ] = None,
    bias_init: BiasInitOpt = None,
    norm: NormOpt = None,
    residual: ResidualOpt = False,
    residual_scale: ResidualScaleOpt = None,
    dropout: DropoutOpt = None,
    keep_layer_inits: KeepInitsOpt = False,
    batch: BatchOpt = None,
    seed: SeedNoneOpt = None,
    trials: TrialsOpt = None,
    loss: LossOpt = None,
    input: InputOpt = None,
    dtype: DtypeOpt = None,
    theory: TheoryOpt = None,
    jacobian: JacobianOpt = None,
    max_gain: MaxGainOpt = None,
    format: FormatOpt = "table",
    fail_on: Annotated[
        str | None,
        opt(
            "Exit 1 if any of these comma-separated flags appears: vanishing, exploding, dead, saturated, "
            "symmetric, nonfinite, or any.",
            "--fail-on",
            metavar="FLAGS",
        ),
    ] = None,
    emit_spec: Annotated[
        str | None,
        opt(
            "Print the spec file these options describe, as toml, yaml or json, instead of probing.",
            "--emit-spec",
            metavar="FORMAT",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Probe one stack with one initializer: a per-layer table of activation and gradient statistics, then a one-line verdict."""  # noqa: E501
    from ..analysis.asked import note_file_batch, spec_batch
    from ..analysis.probe import run_probe
    from ..network.job import job
    from ..render import probe as render
    from ..render.common import FORMATS

    fmt = choice("--format", format, FORMATS)
    fail_flags = parse_fail_on(fail_on)
    check_max_gain(max_gain)
    spec = None
    if config is not None and layers is None and model is None:  # its probe.batch is asked, as --batch
        from ..analysis.check import load_spec_file

        spec, config = load_spec_file(config), None
    stack, settings, check = job(
        layers=layers,
        config=config,
        spec=spec,
        stack_options=stack_options(
            act, out_act, init, bias_init, norm, residual, residual_scale, dropout, keep_layer_inits
        ),
        probe_options=probe_options(batch, seed, trials, loss, input, dtype, theory, jacobian, device),
        max_gain=max_gain,
        model=model_spec(model, model_arg, input_shape, init),
    )
    if emit_spec is not None:
        from ..network.specfile import dump, to_data  # only here: the module costs 4 ms of start-up

        if fmt != "table":
            raise InitdiagError(
                "--emit-spec prints a spec file instead of probing, so --format has nothing to format; "
                "give one or the other"
            )
        spec_fmt = choice("--emit-spec", emit_spec, ("toml", "yaml", "json"))
        sys.stdout.write(dump(to_data(stack, settings, check), spec_fmt))
        return
    try:
        result = run_probe(stack, settings)
    except InitdiagError as exc:  # an error of a spec's layer names the spec's line
        if spec is None:
            raise
        from ..analysis.check import located

        raise InitdiagError(located(str(exc), spec)) from None
    if batch is not None:
        note_file_batch(result, batch)
    else:
        note_file_batch(result, spec_batch(spec), "probe.batch")
    if fmt == "table":
        print_rich(lambda width: render.probe_table(result, width=width))
    else:
        sys.stdout.write(render.render_text(result, fmt))
    if fail_flags & set(result.summary.flags):
        raise typer.Exit(1)


COMPARE_EXAMPLE = (
    "initdiag compare --layers 784,256x10,10 --act relu --init he,xavier,normal:0.01,torch_default"
)


@command(epilog=f"Example: {COMPARE_EXAMPLE}")
def compare(
    layers: LayersOpt = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    input_shape: InputShapeOpt = None,
    device: DeviceOpt = None,
    act: Annotated[
        str | None,
        opt(
            f"Hidden activations to compare, comma-separated (default relu): {ACTS}.",
            "--act",
            metavar="NAMES",
        ),
    ] = None,
    init: Annotated[
        str | None,
        opt(
            f"Initializers to compare, comma-separated (default he_normal), e.g. {INITS}.",
            "--init",
            metavar="NAMES",
        ),
    ] = None,
    out_act: OutActOpt = None,
    bias_init: BiasInitOpt = None,
    norm: NormOpt = None,
    residual: ResidualOpt = False,
    residual_scale: ResidualScaleOpt = None,
    dropout: DropoutOpt = None,
    keep_layer_inits: KeepInitsOpt = False,
    batch: BatchOpt = None,
    seed: SeedNoneOpt = None,
    trials: TrialsOpt = None,
    loss: LossOpt = None,
    input: InputOpt = None,
    dtype: DtypeOpt = None,
    theory: TheoryOpt = None,
    max_gain: MaxGainOpt = None,
    format: FormatOpt = "table",
    debug: DebugOpt = False,
) -> None:
    """Compare initializers and/or activations on one stack: std per layer side by side, a summary best first, and a depth profile."""  # noqa: E501
    from ..analysis.compare import compare as run_compare
    from ..core.callspec import split_list
    from ..render import compare as render
    from ..render.common import FORMATS

    fmt = choice("--format", format, FORMATS)
    check_max_gain(max_gain)
    comparison = run_compare(
        layers=layers,
        config=config,
        inits=split_list(init, "--init") if init else [],
        acts=split_list(act, "--act") if act else [],
        stack_options=stack_options(
            None, out_act, None, bias_init, norm, residual, residual_scale, dropout, keep_layer_inits
        ),
        probe_options=probe_options(batch, seed, trials, loss, input, dtype, theory, device=device),
        max_gain=max_gain,
        model=model_spec(model, model_arg, input_shape, None),
    )
    if fmt == "table":
        print_rich(lambda width: render.compare_table(comparison, width=width))
    else:
        sys.stdout.write(render.compare_text(comparison, fmt))


SWEEP_EXAMPLE = (
    "initdiag sweep --width 256 --depth 2,4,8,16,32,64 --act relu --init he,xavier,lecun,normal:0.01"
)


@command(epilog=f"Example: {SWEEP_EXAMPLE}")
def sweep(
    width: Annotated[
        str,
        typer.Option(
            "--width",
            metavar="WIDTHS",
            help="Width of every layer and of the input; several "
            "(64,128,256): a column per width, the init-only view of coordcheck.",
        ),
    ] = "256",
    depth: Annotated[
        str,
        typer.Option("--depth", help="Depths (numbers of dense layers), comma-separated.", metavar="DEPTHS"),
    ] = "2,4,8,16,32,64",
    act: Annotated[
        str, typer.Option("--act", help=f"Hidden activations, comma-separated: {ACTS}.", metavar="NAMES")
    ] = "relu",
    init: Annotated[
        str, typer.Option("--init", help=f"Initializers, comma-separated, e.g. {INITS}.", metavar="NAMES")
    ] = "he_normal",
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            help="forward: the end-to-end forward gain; backward: the gradient's.",
            metavar="METRIC",
        ),
    ] = "forward",
    jobs: Annotated[
        int | None, opt("Processes to run cells on (default: one per core; 1: one after another).", "--jobs")
    ] = None,
    out_act: OutActOpt = None,
    bias_init: BiasInitOpt = None,
    norm: NormOpt = None,
    residual: ResidualOpt = False,
    residual_scale: ResidualScaleOpt = None,
    dropout: DropoutOpt = None,
    batch: BatchOpt = None,
    seed: SeedNoneOpt = None,
    trials: TrialsOpt = None,
    loss: LossOpt = None,
    input: InputOpt = None,
    dtype: DtypeOpt = None,
    max_gain: MaxGainOpt = None,
    format: FormatOpt = "table",
    debug: DebugOpt = False,
) -> None:
    """Sweep a grid (initializer x depth, or activation x initializer): a heat map of the end-to-end gain, one cell per probe."""  # noqa: E501
    from ..analysis.compare import METRICS
    from ..analysis.compare import sweep as run_sweep
    from ..core.callspec import split_list
    from ..render import sweep as render
    from ..render.common import FORMATS

    fmt = choice("--format", format, FORMATS)
    metric = choice("--metric", metric, METRICS)
    check_max_gain(max_gain)
    depths = positive_ints(depth, "--depth", "2,4,8,16")
    widths = positive_ints(width, "--width", "64,128,256")
    with _progress() as progress:
        result = run_sweep(
            width=widths if len(widths) > 1 else widths[0],
            depths=depths,
            inits=split_list(init, "--init"),
            acts=split_list(act, "--act"),
            metric=metric,
            stack_options=stack_options(
                None, out_act, None, bias_init, norm, residual, residual_scale, dropout
            ),
            probe_options=probe_options(batch, seed, trials, loss, input, dtype),
            max_gain=max_gain,
            jobs=jobs,
            progress=progress,
        )
    if fmt == "table":
        print_rich(lambda width: render.sweep_table(result))
    else:
        sys.stdout.write(render.sweep_text(result, fmt))


class _progress:
    """A rich progress bar on stderr for a sweep of more than a few cells, when stderr is a terminal
    (a log or a pipe gets nothing); used as ``progress(done, total)``."""

    MIN_CELLS = 5

    def __enter__(self):
        self._bar = None
        return self

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if total < self.MIN_CELLS or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress("sweep", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=True)  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task("sweep", total=total)
        self._bar.update(self._task, completed=done)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        return False
