"""What to probe: a shorthand or a spec file, with command-line options layered on top, as a
resolved stack and its settings (`job`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import InitdiagError
from .kinds import LayerSpec
from .model import ModelSpec
from .settings import PROBE_DEFAULTS, CheckSettings, ProbeSettings
from .shorthand import as_shorthand, parse_layers
from .stack import StackSpec

_SHORTHAND_OPTIONS = ("norm", "residual", "residual_scale", "dropout")


def _without(layers: tuple[LayerSpec, ...], values: dict[str, None]) -> tuple[LayerSpec, ...]:
    """The layers (and their branches) with the given keys unset, so the stack's defaults apply."""
    return tuple(replace(layer, **values, layers=_without(layer.layers, values)) for layer in layers)


def job(
    *,
    layers: str | None = None,
    config: str | None = None,
    spec: Any = None,
    stack_options: dict[str, Any] | None = None,
    probe_options: dict[str, Any] | None = None,
    max_gain: float | None = None,
    probe_defaults: dict[str, Any] | None = None,
    model: ModelSpec | None = None,
) -> tuple[StackSpec | ModelSpec, ProbeSettings, CheckSettings]:
    """What to probe, from a shorthand or a spec file, with command-line options on top.

    *config* is a spec file's path; *spec* an already loaded `SpecFile` (as ``check`` has).
    Precedence: built-in defaults (*probe_defaults* over `PROBE_DEFAULTS`) < the file < options.
    *stack_options* (act, out_act, init, bias_init) replace the stack's defaults; ``init`` and
    ``bias_init`` also replace the values a file's layers set themselves, unless
    ``keep_layer_inits`` is given and true (a layer's ``act`` is its architecture and is kept);
    norm, residual, residual_scale and dropout shape the shorthand only. Options that are None were
    not given. A *model* (`ModelSpec`, ``--model``), or a spec file that names one, takes ``init``
    and ``bias_init`` only: it has its own layers and activations.
    """
    if model is not None and (layers is not None or config is not None or spec is not None):
        raise InitdiagError("give --model or --layers / --config, not both")
    from_file = config is not None or spec is not None
    if layers is not None:
        layers = as_shorthand(layers)
    if layers and from_file:
        raise InitdiagError("give --layers or --config, not both")
    if not layers and not from_file and model is None:
        raise InitdiagError("a stack is needed: --layers 784,256,10 or --config SPEC.toml")
    stack_options = {k: v for k, v in (stack_options or {}).items() if v is not None and v is not False}
    keep_layer_inits = bool(stack_options.pop("keep_layer_inits", False))
    if keep_layer_inits and not from_file:
        raise InitdiagError(
            "--keep-layer-inits keeps the inits a spec file's layers set; give it with --config"
        )
    shorthand_only = [k for k in _SHORTHAND_OPTIONS if k in stack_options]
    if from_file and shorthand_only:
        option = "--" + shorthand_only[0].replace("_", "-")
        raise InitdiagError(
            f"{option} shapes a --layers shorthand; in a spec file, write the layers "
            "(batchnorm, layernorm, dropout, residual) where you want them"
        )
    defaults = {**PROBE_DEFAULTS, **(probe_defaults or {})}
    if model is not None or (spec is not None and isinstance(spec.stack, ModelSpec)):
        return _model_job(model, spec, stack_options, probe_options, defaults, max_gain)
    if config is not None:
        from .specfile import load_spec  # only when a file is read

        spec = load_spec(config)
        if isinstance(spec.stack, ModelSpec):
            return _model_job(None, spec, stack_options, probe_options, defaults, max_gain)
    if from_file:
        stack, check = replace(spec.stack, **stack_options), spec.check
        if not keep_layer_inits:
            given = {k: None for k in ("init", "bias_init") if k in stack_options}
            stack = replace(stack, layers=_without(stack.layers, given)) if given else stack
        settings = spec.settings(defaults, probe_options)
    else:
        stack, check = parse_layers(layers, **stack_options), CheckSettings()
        given = {k: v for k, v in (probe_options or {}).items() if v is not None}
        settings = ProbeSettings(**{**defaults, **given})
    if max_gain is not None:
        check = replace(
            check, thresholds=replace(check.thresholds, max_forward_gain=max_gain, max_backward_gain=max_gain)
        )
    stack = stack.resolve()
    if stack.takes_tokens and settings.input.strip().lower() in ("normal", "uniform"):
        settings = replace(settings, input="tokens")  # what a stack of token ids draws (`inputs.get_input`)
    return stack, replace(settings, thresholds=check.thresholds), check


def _model_job(model, spec, stack_options, probe_options, defaults, max_gain):
    """A model's probe: --init / --bias-init replace how its Linear and Conv weights are drawn."""
    model = model if model is not None else spec.stack
    other = sorted(k for k in stack_options if k not in ("init", "bias_init", "keep_layer_inits"))
    if other:
        option = "--" + other[0].replace("_", "-")
        raise InitdiagError(f"{option} shapes a spec stack; a model has its own layers and activations")
    model = replace(model, **{k: v for k, v in stack_options.items() if k in ("init", "bias_init")})
    if model.init != "keep":  # canonical, as a stack's: he -> he_normal
        from ..core.init_parser import get_initializer

        model = replace(model, init=str(get_initializer(model.init)))
    check = spec.check if spec is not None else CheckSettings()
    if spec is not None:
        settings = spec.settings(defaults, probe_options)
    else:
        given = {k: v for k, v in (probe_options or {}).items() if v is not None}
        settings = ProbeSettings(**{**defaults, **given})
    if max_gain is not None:
        check = replace(
            check, thresholds=replace(check.thresholds, max_forward_gain=max_gain, max_backward_gain=max_gain)
        )
    return model, replace(settings, thresholds=check.thresholds, theory=False), check
