"""The options several commands share, declared once: the stack, how it is probed, formats."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InitdiagError, gain_limit
from .app import choice

# Options shared by every command.
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Root seed; every layer and the input get their own stream.")
]


FormatOpt = Annotated[
    str, typer.Option("--format", "-f", metavar="FORMAT", help="table, json, csv or markdown.")
]


DebugOpt = Annotated[bool, typer.Option("--debug", help="Show a traceback on errors.")]


def opt(help: str, *names: str, metavar: str | None = None):
    """An option whose default is "not given" (None), so a spec file's value can stand."""
    return typer.Option(*names, help=help, metavar=metavar, show_default=False)


# Options shared by probe, compare and sweep: the stack and how it is probed.
ACTS = "relu, leaky_relu[:SLOPE], elu, selu, gelu, silu, softplus, sigmoid, tanh, linear"


INITS = "he, xavier_uniform, normal:0.01, he_uniform:mode=fan_out, orthogonal:gain=auto, lsuv, torch_default"


LayersOpt = Annotated[
    str | None,
    opt("Widths, input first: 784,256,256,10; repeat with 256x8.", "--layers", "-l", metavar="WIDTHS"),
]


ConfigOpt = Annotated[
    str | None,
    opt("A spec file (.toml, .yaml, .json); the options below override its values.", "--config", "-c",
         metavar="FILE"),
]  # fmt: skip


OutActOpt = Annotated[
    str | None, opt("Last layer's activation (default linear).", "--out-act", metavar="NAME[:ARG]")
]


BiasInitOpt = Annotated[
    str | None,
    opt("Bias initializer (default zeros, but torch_default keeps its own U(±1/sqrt(fan_in)) bias).",
         "--bias-init", metavar="NAME[:ARGS]"),
]  # fmt: skip


NormOpt = Annotated[
    str | None,
    opt("none (default), batch or layer: a normalization layer after each hidden dense layer, which "
         "takes the activation (Linear -> Norm -> act).", "--norm", metavar="KIND"),
]  # fmt: skip


ResidualOpt = Annotated[
    bool,
    typer.Option("--residual", help="Make each hidden layer that keeps its width a pre-activation residual "
                 "block: x + scale * W act(x)."),
]  # fmt: skip


ResidualScaleOpt = Annotated[
    float | None,
    opt("The residual branch's factor (default 1), e.g. 0.14 = 1/sqrt(50) for 50 blocks.",
         "--residual-scale", metavar="S"),
]  # fmt: skip


DropoutOpt = Annotated[
    float | None,
    opt("Inverted dropout with this rate after each hidden layer (train mode).", "--dropout", metavar="P"),
]


BatchOpt = Annotated[int | None, opt("Batch size of the random input (default 256).", "--batch")]


SeedNoneOpt = Annotated[
    int | None, opt("Root seed (default 0); every layer and the input get their own stream.", "--seed")
]


TrialsOpt = Annotated[
    int | None, opt("Repeat with this many seeds; report mean and spread (default 1).", "--trials")
]


LossOpt = Annotated[
    str | None, opt("unit (default; a random read-out), mse or xent (softmax cross-entropy).", "--loss")
]


InputOpt = Annotated[
    str | None,
    opt("normal (default), uniform (unit variance), normal:STD, uniform:low=L,high=H, or FILE.npy of shape "
         "(batch, *input shape).", "--input", metavar="SOURCE"),
]  # fmt: skip


DtypeOpt = Annotated[
    str | None, opt("float32 (default) or float64; statistics are float64 either way.", "--dtype")
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


ModelOpt = Annotated[
    str | None,
    opt("A PyTorch model instead of --layers: PATH.py:FACTORY or package.module:FACTORY (a class or "
        "function returning an nn.Module; needs initdiag\\[torch]).", "--model", metavar="REF"),
]  # fmt: skip
ModelArgOpt = Annotated[
    list[str] | None,
    opt("key=value passed to the model's factory (repeatable).", "--model-arg", metavar="KEY=VALUE"),
]
InputShapeOpt = Annotated[
    str | None,
    opt("The model's input: one sample's shape, 3x32x32 (floats), or seq=128,vocab=50257 (token ids).",
        "--input-shape", metavar="SHAPE"),
]  # fmt: skip
DeviceOpt = Annotated[
    str | None, opt("Where the model runs: cpu (default), cuda or mps.", "--device", metavar="DEVICE")
]
KeepInitsOpt = Annotated[
    bool,
    typer.Option("--keep-layer-inits", help="With --config: layers that set their own init in the file keep "
                 "it (by default --init and --bias-init replace every layer's)."),
]  # fmt: skip


MaxGainOpt = Annotated[
    float | None,
    opt("T (default 10): a layer whose cumulative gain leaves [1/T, T] is vanishing or exploding.",
         "--max-gain"),
]  # fmt: skip


def stack_options(act, out_act, init, bias_init, norm, residual, residual_scale, dropout,
                   keep_layer_inits=False) -> dict:  # fmt: skip
    norm = None if norm is None else choice("--norm", norm, ("none", "batch", "layer"))
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


def probe_options(batch, seed, trials, loss, input, dtype, theory=None, jacobian=None, device=None) -> dict:
    return {
        "device": device,
        "theory": theory,
        "jacobian": jacobian,
        "batch": batch,
        "seed": seed,
        "trials": trials,
        "loss": None if loss is None else choice("--loss", loss, ("unit", "mse", "xent")),
        "input": input,
        "dtype": None if dtype is None else choice("--dtype", dtype, ("float32", "float64")),
    }


def model_spec(model, model_arg, input_shape, init):
    """The `ModelSpec` of --model (None without it); --input-shape and --model-arg belong to it."""
    if model is None:
        if input_shape is not None or model_arg:
            which = "--input-shape" if input_shape is not None else "--model-arg"
            raise InitdiagError(f"{which} goes with --model")
        return None
    from ..network.model import ModelSpec, parse_input_shape, parse_model_args

    if input_shape is None:
        raise InitdiagError("--model needs --input-shape, e.g. 3x32x32 or seq=128,vocab=50257")
    return ModelSpec(model, parse_input_shape(input_shape), parse_model_args(model_arg), init or "keep")


def positive_ints(text: str, option: str, example: str) -> list[int]:
    """``64,128,256`` as ints; one error line naming *option* for an item that is not a positive
    integer (``"²".isdigit()`` is True, hence the ASCII check)."""
    from ..core.callspec import split_list

    out = []
    for item in split_list(text, option):
        if not (item.isascii() and item.isdigit()) or int(item) < 1:
            raise InitdiagError(f"{option} '{text}': '{item}' is not a positive integer; e.g. {example}")
        out.append(int(item))
    return out


def check_max_gain(max_gain: float | None) -> None:
    if max_gain is not None:
        gain_limit("--max-gain", max_gain)
