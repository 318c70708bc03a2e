"""initdiag train: the classic experiment."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import InitdiagError
from .app import choice, command, print_rich
from .options import ACTS, DebugOpt, FormatOpt, SeedOpt, opt

TRAIN_EXAMPLE = (
    "initdiag train --dataset circles --layers 2,10,5,1 --act relu --out-act sigmoid "
    "--init zeros,normal:10,normal:0.1,normal:0.333,he,xavier --iters 15000 --lr 0.01"
)


@command(epilog=f"Example: {TRAIN_EXAMPLE}")
def train(
    dataset: Annotated[
        str, typer.Option("--dataset", help="circles, moons (sigmoid output) or spiral (3 classes, softmax).")
    ] = "circles",
    layers: Annotated[
        str | None,
        opt("Widths, input first (default 2,10,5,1; spiral 2,100,3).", "--layers", "-l", metavar="WIDTHS"),
    ] = None,
    act: Annotated[
        str, typer.Option("--act", help=f"Hidden activation: {ACTS}.", metavar="NAME[:ARG]")
    ] = "relu",
    out_act: Annotated[
        str | None,
        opt("The output: sigmoid (binary cross-entropy; circles, moons) or softmax (spiral).", "--out-act"),
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
    clip: Annotated[float | None, opt("Clip each run's gradient to this global norm.", "--clip")] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Steps of linear learning-rate warm-up.")] = 0,
    weight_decay: Annotated[
        float, typer.Option("--weight-decay", help="L2: weight_decay * W added to dL/dW (biases exempt).")
    ] = 0.0,
    trials: Annotated[int, typer.Option("--trials", help="Seeds (data and init) per initializer.")] = 1,
    seed: SeedOpt = 0,
    n_train: Annotated[int, typer.Option("--n-train", help="Training points.")] = 300,
    n_test: Annotated[int, typer.Option("--n-test", help="Test points.")] = 100,
    noise: Annotated[
        float | None, opt("Noise std (default circles 0.05, moons 0.1, spiral 0.2).", "--noise")
    ] = None,
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype", help="float32 (default) or float64 arithmetic; losses are reported in float64."
        ),
    ] = "float32",
    jobs: Annotated[
        int | None,
        opt(
            "Processes to split the runs over (default: one per core for big jobs; 1: this process).",
            "--jobs",
        ),
    ] = None,
    plot_boundary: Annotated[
        bool, typer.Option("--plot-boundary", help="Draw each trained model's decision boundary.")
    ] = False,
    save_plot: Annotated[
        str | None,
        opt(
            "Save loss curves and boundaries as a PNG (needs matplotlib: pip install 'initdiag\\[plot]').",
            "--save-plot",
            metavar="FILE.png",
        ),
    ] = None,
    format: FormatOpt = "table",
    debug: DebugOpt = False,
) -> None:
    """Train a small network on a 2-D toy set from each initializer, all at once: losses, accuracies, a loss curve and a verdict in words."""  # noqa: E501
    from ..analysis.train import DATASETS, DEFAULT_LAYERS, OPTIMIZERS, TrainSettings
    from ..analysis.train import train as run_train
    from ..analysis.workers import keep_freed_memory
    from ..core.callspec import split_list
    from ..render import train as render
    from ..render.common import FORMATS

    keep_freed_memory()  # this process is ours

    fmt = choice("--format", format, FORMATS)
    dataset = choice("--dataset", dataset, DATASETS)
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
        optimizer=choice("--optimizer", optimizer, OPTIMIZERS),
        clip=clip,
        warmup=warmup,
        weight_decay=weight_decay,
        trials=trials,
        seed=seed,
        n_train=n_train,
        n_test=n_test,
        noise=noise,
        dtype=choice("--dtype", dtype, ("float32", "float64")),
        jobs=jobs,
    )
    report = run_train(split_list(init, "--init"), settings)
    if fmt == "table":
        print_rich(lambda width: render.train_table(report, boundaries=plot_boundary))
    else:
        sys.stdout.write(render.train_text(report, fmt))
    if save_plot is not None:
        from ..render.plot import save_train_plot

        save_train_plot(report, save_plot)


def _check_plot_path(path: str) -> None:
    """Before training: matplotlib is there and the file can be a PNG."""
    if not path.lower().endswith(".png"):
        raise InitdiagError(f"--save-plot '{path}': write a .png file")
    import os

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InitdiagError(f"--save-plot '{path}': the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InitdiagError(f"--save-plot '{path}': the folder {folder} is not writable")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InitdiagError("--save-plot needs matplotlib: pip install 'initdiag[plot]'") from None
