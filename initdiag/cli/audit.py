"""initdiag audit: the weights a model starts from, tensor by tensor."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import InitdiagError
from .app import choice, command, plain, print_rich, write_file
from .options import DebugOpt, FormatOpt, ModelArgOpt, ModelOpt, opt

AUDIT_EXAMPLE = "initdiag audit model.safetensors"


def _fail_on(text: str | None) -> set[str]:
    from ..analysis.audit import AUDIT_FLAGS

    if not text:
        return set()
    flags = {part.strip().lower() for part in text.split(",") if part.strip()}
    if "any" in flags:
        return set(AUDIT_FLAGS)
    unknown = sorted(flags - set(AUDIT_FLAGS))
    if unknown:
        raise InitdiagError(
            f"--fail-on: unknown flag '{unknown[0]}'; allowed: {', '.join(AUDIT_FLAGS)} or any"
        )
    return flags


@command(epilog=f"Example: {AUDIT_EXAMPLE}  (or: initdiag audit --model models.py:make_net)")
def audit(
    path: Annotated[
        str | None,
        typer.Argument(
            metavar="[WEIGHTS]",
            help="A state dict: .pt/.pth/.bin/.ckpt (torch.load with weights_only=True), .safetensors, "
            ".npz or .npy.",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    seed: Annotated[int, opt("Seeds torch's generator before --model is built (as probe --init keep).")] = 0,
    layout: Annotated[
        str,
        opt(
            "Weight layout: torch ((out, in, *kernel)) or keras ((*kernel, in, out), also JAX/Flax).",
            "--layout",
            metavar="LAYOUT",
        ),
    ] = "torch",
    format: FormatOpt = "table",
    output: Annotated[
        str | None,
        opt("Write the --format output to FILE; the table still prints.", "--output", "-o", metavar="FILE"),
    ] = None,
    fail_on: Annotated[
        str | None,
        opt(
            "Exit 1 if any of these comma-separated flags appears: nonfinite, symmetric, constant, logits, "
            "norm, sibling, block, spectrum, or any.",
            "--fail-on",
            metavar="FLAGS",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Audit the weights a model starts from: per tensor its fans, mean, std, the init rule it matches, and flags (norm gains not 1, a block unlike its siblings, an output layer's logit scale, spectral outliers)."""  # noqa: E501
    from ..analysis.audit import LAYOUTS
    from ..render import audit as render
    from ..render.common import FORMATS

    fmt = choice("--format", format, FORMATS)
    layout = choice("--layout", layout, LAYOUTS)
    fail_flags = _fail_on(fail_on)
    if (path is None) == (model is None):
        raise InitdiagError("give a weights file or --model (one of them); e.g. " + AUDIT_EXAMPLE)
    if model is None and model_arg:
        raise InitdiagError("--model-arg goes with --model")
    if model is not None:
        from ..adapters.torch_audit import audit_model_spec
        from ..network.model import ModelSpec, parse_model_args

        result = audit_model_spec(ModelSpec(model, None, parse_model_args(model_arg)), seed, layout)
    else:
        from ..adapters.weights import audit_file

        result = audit_file(path, layout=layout)
    if output is not None:
        write_file(
            output, plain(render.audit_table(result)) if fmt == "table" else render.audit_text(result, fmt)
        )
    if fmt == "table" or output is not None:
        print_rich(lambda width: render.audit_table(result))
    else:
        sys.stdout.write(render.audit_text(result, fmt))
    if fail_flags & set(result.summary.flags):
        raise typer.Exit(1)
