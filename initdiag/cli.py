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
from .errors import InitdiagError, command_line_spelling

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


def _new_app() -> typer.Typer:
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


app = _new_app()
# every command's function and registration, so `main` can build an app of just the one it runs:
# typer turns each command's signature into click options at start-up, ~1 ms per ten options
COMMANDS: dict[str, tuple] = {}


def _command(**settings):
    def register(function):
        COMMANDS[function.__name__] = (function, settings)
        return app.command(**settings)(function)

    return register


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


PIPE_WIDTH = 200  # the width of piped output when COLUMNS does not say


def _print_rich(renderable_for_width) -> None:
    """Print a rich renderable: coloured and fitted to a terminal; piped, plain, fitted to COLUMNS
    (default `PIPE_WIDTH`), without trailing padding."""
    from rich.console import Console

    console = Console(highlight=False, emoji=False)  # no emoji codes to replace: rich skips its table
    if console.is_terminal:
        console.print(renderable_for_width(console.width))
        return
    width = _pipe_width()
    sys.stdout.write(_plain(renderable_for_width(width), width))


def _pipe_width() -> int:
    try:
        return max(int(os.environ.get("COLUMNS", PIPE_WIDTH)), 20)
    except ValueError:
        return PIPE_WIDTH


def _plain(renderable, width: int | None = None) -> str:
    from rich.console import Console

    console = Console(highlight=False, emoji=False, width=width or _pipe_width(), color_system=None)
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


# Options shared by probe, compare and sweep: the stack and how it is probed.
ACTS = "relu, leaky_relu[:SLOPE], elu, selu, gelu, silu, softplus, sigmoid, tanh, linear"
INITS = "he, xavier_uniform, normal:0.01, he_uniform:mode=fan_out, orthogonal:gain=auto, lsuv, torch_default"
LayersOpt = Annotated[
    str | None,
    _opt("Widths, input first: 784,256,256,10; repeat with 256x8.", "--layers", "-l", metavar="WIDTHS"),
]
ConfigOpt = Annotated[
    str | None,
    _opt("A spec file (.toml, .yaml, .json); the options below override its values.", "--config", "-c",
         metavar="FILE"),
]  # fmt: skip
OutActOpt = Annotated[
    str | None, _opt("Last layer's activation (default linear).", "--out-act", metavar="NAME[:ARG]")
]
BiasInitOpt = Annotated[
    str | None,
    _opt("Bias initializer (default zeros, but torch_default keeps its own U(±1/sqrt(fan_in)) bias).",
         "--bias-init", metavar="NAME[:ARGS]"),
]  # fmt: skip
NormOpt = Annotated[
    str | None,
    _opt("none (default), batch or layer: a normalization layer after each hidden dense layer, which "
         "takes the activation (Linear -> Norm -> act).", "--norm", metavar="KIND"),
]  # fmt: skip
ResidualOpt = Annotated[
    bool,
    typer.Option("--residual", help="Make each hidden layer that keeps its width a pre-activation residual "
                 "block: x + scale * W act(x)."),
]  # fmt: skip
ResidualScaleOpt = Annotated[
    float | None,
    _opt("The residual branch's factor (default 1), e.g. 0.14 = 1/sqrt(50) for 50 blocks.",
         "--residual-scale", metavar="S"),
]  # fmt: skip
DropoutOpt = Annotated[
    float | None,
    _opt("Inverted dropout with this rate after each hidden layer (train mode).", "--dropout", metavar="P"),
]
BatchOpt = Annotated[int | None, _opt("Batch size of the random input (default 256).", "--batch")]
SeedNoneOpt = Annotated[
    int | None, _opt("Root seed (default 0); every layer and the input get their own stream.", "--seed")
]
TrialsOpt = Annotated[
    int | None, _opt("Repeat with this many seeds; report mean and spread (default 1).", "--trials")
]
LossOpt = Annotated[
    str | None, _opt("unit (default; a random read-out), mse or xent (softmax cross-entropy).", "--loss")
]
InputOpt = Annotated[
    str | None,
    _opt("normal (default), uniform (unit variance), normal:STD, uniform:low=L,high=H, or FILE.npy of shape "
         "(batch, *input shape).", "--input", metavar="SOURCE"),
]  # fmt: skip
DtypeOpt = Annotated[
    str | None, _opt("float32 (default) or float64; statistics are float64 either way.", "--dtype")
]
TheoryOpt = Annotated[
    bool | None,
    typer.Option("--theory/--no-theory", help="Mean-field predictions beside the measurement (default on).",
                 show_default=False),
]  # fmt: skip
JacobianOpt = Annotated[
    bool | None,
    typer.Option("--jacobian", help="The input-output Jacobian's singular values (dense stacks; dynamical "
                 "isometry).", show_default=False),
]  # fmt: skip
KeepInitsOpt = Annotated[
    bool,
    typer.Option("--keep-layer-inits", help="With --config: layers that set their own init in the file keep "
                 "it (by default --init and --bias-init replace every layer's)."),
]  # fmt: skip
MaxGainOpt = Annotated[
    float | None,
    _opt("T (default 10): a layer whose cumulative gain leaves [1/T, T] is vanishing or exploding.",
         "--max-gain"),
]  # fmt: skip


def _stack_options(act, out_act, init, bias_init, norm, residual, residual_scale, dropout,
                   keep_layer_inits=False) -> dict:  # fmt: skip
    norm = None if norm is None else _choice("--norm", norm, ("none", "batch", "layer"))
    return {
        "keep_layer_inits": keep_layer_inits,
        "act": act,
        "out_act": out_act,
        "init": init,
        "bias_init": bias_init,
        "norm": None if norm == "none" else norm,
        "residual": residual,
        "residual_scale": residual_scale,
        "dropout": dropout,
    }


def _probe_options(batch, seed, trials, loss, input, dtype, theory=None, jacobian=None) -> dict:
    return {
        "theory": theory,
        "jacobian": jacobian,
        "batch": batch,
        "seed": seed,
        "trials": trials,
        "loss": None if loss is None else _choice("--loss", loss, ("unit", "mse", "xent")),
        "input": input,
        "dtype": None if dtype is None else _choice("--dtype", dtype, ("float32", "float64")),
    }


def _check_max_gain(max_gain: float | None) -> None:
    if max_gain is not None and max_gain <= 1:
        raise InitdiagError(f"--max-gain must be greater than 1, got {max_gain:g}")


@_command(epilog=f"Example: {PROBE_EXAMPLE}")
def probe(
    layers: LayersOpt = None,
    config: ConfigOpt = None,
    act: Annotated[
        str | None, _opt(f"Hidden activation (default relu): {ACTS}.", "--act", metavar="NAME[:ARG]")
    ] = None,
    out_act: OutActOpt = None,
    init: Annotated[
        str | None,
        _opt(
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

    fmt = _choice("--format", format, render.FORMATS)
    fail_flags = _parse_fail_on(fail_on)
    _check_max_gain(max_gain)
    stack, settings, check = job(
        layers=layers,
        config=config,
        stack_options=_stack_options(
            act, out_act, init, bias_init, norm, residual, residual_scale, dropout, keep_layer_inits
        ),
        probe_options=_probe_options(batch, seed, trials, loss, input, dtype, theory, jacobian),
        max_gain=max_gain,
    )
    if emit_spec is not None:
        from .specfile import dump, to_data  # only here: the module costs 4 ms of start-up

        if fmt != "table":
            raise InitdiagError(
                "--emit-spec prints a spec file instead of probing, so --format has nothing to format; "
                "give one or the other"
            )
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


COMPARE_EXAMPLE = (
    "initdiag compare --layers 784,256x10,10 --act relu --init he,xavier,normal:0.01,torch_default"
)


@_command(epilog=f"Example: {COMPARE_EXAMPLE}")
def compare(
    layers: LayersOpt = None,
    config: ConfigOpt = None,
    act: Annotated[
        str | None,
        _opt(
            f"Hidden activations to compare, comma-separated (default relu): {ACTS}.",
            "--act",
            metavar="NAMES",
        ),
    ] = None,
    init: Annotated[
        str | None,
        _opt(
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
    from . import render
    from .callspec import split_list
    from .compare import compare as run_compare

    fmt = _choice("--format", format, render.FORMATS)
    _check_max_gain(max_gain)
    inits = split_list(init, "--init") if init else []
    acts = split_list(act, "--act") if act else []
    if len(inits) < 2 and len(acts) < 2:
        raise InitdiagError("compare needs at least two candidates: --init he,xavier and/or --act relu,tanh")
    comparison = run_compare(
        layers=layers,
        config=config,
        inits=inits,
        acts=acts,
        stack_options=_stack_options(
            None, out_act, None, bias_init, norm, residual, residual_scale, dropout, keep_layer_inits
        ),
        probe_options=_probe_options(batch, seed, trials, loss, input, dtype, theory),
        max_gain=max_gain,
    )
    if fmt == "table":
        _print_rich(lambda width: render.compare_table(comparison, width=width))
    else:
        sys.stdout.write(render.compare_text(comparison, fmt))


SWEEP_EXAMPLE = (
    "initdiag sweep --width 256 --depth 2,4,8,16,32,64 --act relu --init he,xavier,lecun,normal:0.01"
)


@_command(epilog=f"Example: {SWEEP_EXAMPLE}")
def sweep(
    width: Annotated[int, typer.Option("--width", help="Width of every layer and of the input.")] = 256,
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
        int | None, _opt("Processes to run cells on (default: one per core; 1: one after another).", "--jobs")
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
    from . import render
    from .callspec import split_list
    from .compare import METRICS
    from .compare import sweep as run_sweep

    fmt = _choice("--format", format, render.FORMATS)
    metric = _choice("--metric", metric, METRICS)
    _check_max_gain(max_gain)
    depths = []
    for item in split_list(depth, "--depth"):
        if not item.isdigit() or int(item) < 1:
            raise InitdiagError(f"--depth '{depth}': '{item}' is not a positive integer; e.g. 2,4,8,16")
        depths.append(int(item))
    with _progress() as progress:
        result = run_sweep(
            width=width,
            depths=depths,
            inits=split_list(init, "--init"),
            acts=split_list(act, "--act"),
            metric=metric,
            stack_options=_stack_options(
                None, out_act, None, bias_init, norm, residual, residual_scale, dropout
            ),
            probe_options=_probe_options(batch, seed, trials, loss, input, dtype),
            max_gain=max_gain,
            jobs=jobs,
            progress=progress,
        )
    if fmt == "table":
        _print_rich(lambda width: render.sweep_table(result))
    else:
        sys.stdout.write(render.sweep_text(result, fmt))


TRAIN_EXAMPLE = (
    "initdiag train --dataset circles --layers 2,10,5,1 --act relu --out-act sigmoid "
    "--init zeros,normal:10,normal:0.1,normal:0.333,he,xavier --iters 15000 --lr 0.01"
)


@_command(epilog=f"Example: {TRAIN_EXAMPLE}")
def train(
    dataset: Annotated[
        str, typer.Option("--dataset", help="circles, moons (sigmoid output) or spiral (3 classes, softmax).")
    ] = "circles",
    layers: Annotated[
        str | None,
        _opt("Widths, input first (default 2,10,5,1; spiral 2,100,3).", "--layers", "-l", metavar="WIDTHS"),
    ] = None,
    act: Annotated[
        str, typer.Option("--act", help=f"Hidden activation: {ACTS}.", metavar="NAME[:ARG]")
    ] = "relu",
    out_act: Annotated[
        str | None,
        _opt("The output: sigmoid (binary cross-entropy; circles, moons) or softmax (spiral).", "--out-act"),
    ] = None,
    init: Annotated[
        str,
        typer.Option("--init", help="Initializers to train from, comma-separated.", metavar="NAMES"),
    ] = "zeros,normal:10,normal:0.1,normal:0.333,he,xavier",
    iters: Annotated[int, typer.Option("--iters", help="Full-batch steps.")] = 15000,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 0.01,
    optimizer: Annotated[
        str, typer.Option("--optimizer", help="sgd, momentum (0.9) or adam (0.9, 0.999).")
    ] = "sgd",
    clip: Annotated[float | None, _opt("Clip each run's gradient to this global norm.", "--clip")] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Steps of linear learning-rate warm-up.")] = 0,
    weight_decay: Annotated[
        float, typer.Option("--weight-decay", help="L2: weight_decay * W added to dL/dW (biases exempt).")
    ] = 0.0,
    trials: Annotated[int, typer.Option("--trials", help="Seeds (data and init) per initializer.")] = 1,
    seed: SeedOpt = 0,
    n_train: Annotated[int, typer.Option("--n-train", help="Training points.")] = 300,
    n_test: Annotated[int, typer.Option("--n-test", help="Test points.")] = 100,
    noise: Annotated[
        float | None, _opt("Noise std (default circles 0.05, moons 0.1, spiral 0.2).", "--noise")
    ] = None,
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype", help="float32 (default) or float64 arithmetic; losses are reported in float64."
        ),
    ] = "float32",
    jobs: Annotated[
        int | None,
        _opt(
            "Processes to split the runs over (default: one per core for big jobs; 1: this process).",
            "--jobs",
        ),
    ] = None,
    plot_boundary: Annotated[
        bool, typer.Option("--plot-boundary", help="Draw each trained model's decision boundary.")
    ] = False,
    save_plot: Annotated[
        str | None,
        _opt(
            "Save loss curves and boundaries as a PNG (needs matplotlib: pip install 'initdiag\\[plot]').",
            "--save-plot",
            metavar="FILE.png",
        ),
    ] = None,
    format: FormatOpt = "table",
    debug: DebugOpt = False,
) -> None:
    """Train a small network on a 2-D toy set from each initializer, all at once: losses, accuracies, a loss curve and a verdict in words."""  # noqa: E501
    from . import render
    from .callspec import split_list
    from .train import DATASETS, DEFAULT_LAYERS, OPTIMIZERS, TrainSettings
    from .train import train as run_train
    from .workers import keep_freed_memory

    keep_freed_memory()  # this process is ours

    fmt = _choice("--format", format, render.FORMATS)
    dataset = _choice("--dataset", dataset, DATASETS)
    wanted = "sigmoid" if dataset != "spiral" else "softmax"
    if out_act is not None and out_act.strip().lower() != wanted:
        loss = "binary cross-entropy" if wanted == "sigmoid" else "softmax cross-entropy"
        raise InitdiagError(
            f"--out-act '{out_act}': {dataset} trains a {wanted} output with {loss}; use {wanted}"
        )
    if save_plot is not None:
        _check_plot_path(save_plot)
    settings = TrainSettings(
        dataset=dataset,
        layers=layers or DEFAULT_LAYERS[dataset],
        act=act,
        iters=iters,
        lr=lr,
        optimizer=_choice("--optimizer", optimizer, OPTIMIZERS),
        clip=clip,
        warmup=warmup,
        weight_decay=weight_decay,
        trials=trials,
        seed=seed,
        n_train=n_train,
        n_test=n_test,
        noise=noise,
        dtype=_choice("--dtype", dtype, ("float32", "float64")),
        jobs=jobs,
    )
    report = run_train(split_list(init, "--init"), settings)
    if fmt == "table":
        _print_rich(lambda width: render.train_table(report, boundaries=plot_boundary))
    else:
        sys.stdout.write(render.train_text(report, fmt))
    if save_plot is not None:
        from .plot import save_train_plot

        save_train_plot(report, save_plot)


def _check_plot_path(path: str) -> None:
    """Before training: matplotlib is there and the file can be a PNG."""
    if not path.lower().endswith(".png"):
        raise InitdiagError(f"--save-plot '{path}': write a .png file")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InitdiagError("--save-plot needs matplotlib: pip install 'initdiag[plot]'") from None


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


@_command(epilog="Example: initdiag check sample_configs/ --format junit --output initdiag.xml")
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
    jobs: Annotated[
        int | None,
        _opt("Processes to check specs on (default: one per core; 1: one after another).", "--jobs"),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Probe spec files and gate CI on their thresholds: exit 0 if all pass, 1 if any fails, 2 if any is malformed."""  # noqa: E501
    from . import render
    from .check import run_check

    fmt = _choice("--format", format, render.CHECK_FORMATS)
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


@_command(epilog="Example: initdiag inits --format markdown")
def inits(format: FormatOpt = "table", debug: DebugOpt = False) -> None:
    """Reference card: every initializer with its distribution, fan mode, gain and when to use it; the gain table."""  # noqa: E501
    from . import render

    fmt = _choice("--format", format, render.FORMATS)
    if fmt == "table":
        _print_rich(lambda width: render.inits_table())
    else:
        sys.stdout.write(render.inits_text(fmt))


@_command(epilog="Example: initdiag explain torch_default")
def explain(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="An initializer or alias: he, glorot, torch_default, ...")
    ],
    format: FormatOpt = "table",
    debug: DebugOpt = False,
) -> None:
    """One initializer in full: formula, paper, its PyTorch / Keras / JAX spelling, when to use it, and the traps."""  # noqa: E501
    from . import render

    fmt = _choice("--format", format, render.FORMATS)
    sys.stdout.write(render.explain_text(name, fmt))


@_command(epilog="Example: initdiag schema > initdiag.schema.json")
def schema() -> None:
    """Print the JSON Schema of spec files (for editors and validators)."""
    from .specfile import schema_text

    sys.stdout.write(schema_text())


def main() -> None:
    """Console-script entry point: an app of only the command named, when one is (the full app for
    help, the version and mistakes)."""
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in COMMANDS:
        app()
        return
    function, settings = COMMANDS[name]
    single = _new_app()
    single.callback()(_root)
    single.command(**settings)(function)
    single()
