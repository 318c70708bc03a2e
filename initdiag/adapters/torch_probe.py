"""A probe of a PyTorch module: the same batch, loss, statistics, gains, flags and verdict as a probe
of a spec stack, measured with hooks on the module's own forward and backward pass.

Rows are the module's leaves (modules without children, and `nn.MultiheadAttention` as a whole), one
per call, in the order they run; names come from ``named_modules()`` (``layer1.0.conv1``) and a
second call of the same module is ``name#2``. Hooks see modules, not functions: what ``forward``
does with ``torch.relu(x)`` or ``x + y`` appears only in the next module's input. In-place
activations are run out of place while probing (full backward hooks need it); the numbers are the
same.

``init="keep"`` probes the weights the constructor made (torch's generator seeded from the probe's
seed, stream key 6, so they are the same every run); any initdiag initializer re-draws the weights
of every Linear and Conv layer (and their biases) from initdiag's own streams, so a module built from
a spec (`initdiag.adapters.torch_build`) gives the numbers of a spec probe.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np

from ..analysis.inputs import stream
from ..analysis.result import ProbeResult
from ..core.activations import get_activation
from ..core.init_parser import get_bias_initializer, get_initializer
from ..core.initializers import FromFile, LayerContext, compute_fans
from ..core.losses import LOSSES
from ..core.stats import dead_fraction, distinct_columns, moments, saturated_fraction
from ..errors import InitdiagError, one_line
from ..network.model import InputShape, ModelSpec, parse_input_shape
from ..network.settings import ProbeSettings, Thresholds
from .torch_forward import (
    Gap,
    Measured,
    Unseen,
    not_the_data,
    source_of,
    sources_of,
    unowned_note,
    unseen_note,
)
from .torch_load import require_torch
from .torch_modules import activation_of, kind_of, leaves
from .torch_outputs import Output, flatten, nothing_to_probe, outputs_note, probe_loss, split
from .torch_rows import WEIGHTED, RowData, TrialData, model_result

_INPUT, _TARGET, _LAYER, _MODEL_SEED = 0, 1, 2, 6  # stream keys, as a spec probe's (6: the constructor)


def _units_last(array: np.ndarray, channels_first: bool) -> np.ndarray:
    """(samples, units): the channels of a channels-first (N, C, ...) tensor, else its last axis
    (the features of (N, D) and of a sequence's (N, seq, D))."""
    if channels_first and array.ndim >= 3:
        array = np.moveaxis(array, 1, -1)
    return array.reshape(-1, array.shape[-1]) if array.ndim >= 2 else array.reshape(-1, 1)


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().to("cpu").numpy()


def _first_tensor(value):
    torch = require_torch()
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


def probe_module(
    model: Any,
    input_shape: Any,
    *,
    init: str = "keep",
    bias_init: str | None = None,
    batch: int = 32,
    seed: int = 0,
    trials: int = 1,
    loss: str = "unit",
    dtype: str = "float32",
    device: str = "cpu",
    thresholds: Thresholds | None = None,
    max_gain: float = 10.0,
    spec: ModelSpec | None = None,
    rebuild=None,
    row_streams: dict[str, int] | None = None,
) -> ProbeResult:
    """Probe a PyTorch module and return the `ProbeResult` a spec probe returns (nothing printed).

    *model* is an ``nn.Module`` (or a zero-argument callable returning one, rebuilt per trial with
    torch's generator seeded); *input_shape* ``"3x32x32"`` or ``"seq=128,vocab=50257"``. *init*
    ``"keep"`` probes the module's own weights; an initdiag initializer (``"he"``) re-draws every
    Linear/Conv weight and bias from initdiag's streams (*row_streams* maps module names to the
    stream keys of a spec's rows, for parity with a spec probe).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    >>> r = probe_module(net, "64", init="he", batch=16)
    >>> [row.name for row in r.layers], r.summary.verdict
    (['0', '1', '2'], 'ok')
    """
    torch = require_torch()
    shape = parse_input_shape(input_shape)
    if thresholds is None:
        thresholds = Thresholds(max_forward_gain=max_gain, max_backward_gain=max_gain)
    settings = ProbeSettings(batch, seed, trials, loss, "normal", dtype, thresholds, False, False)
    _check(settings, shape)
    weight_init = None if init == "keep" else get_initializer(init)
    if weight_init is not None and weight_init.data_driven:
        raise InitdiagError(f"--init {weight_init}: LSUV needs initdiag's own layers; a model cannot use it")
    bias = None if bias_init is None else get_bias_initializer(bias_init)
    spec = spec or ModelSpec(type(model).__name__ if isinstance(model, torch.nn.Module) else "model", shape,
                             init=str(weight_init) if weight_init else "keep")  # fmt: skip
    if rebuild is None and not isinstance(model, torch.nn.Module):
        rebuild, model = model, None

    trials_data, losses, notes = [], [], []
    for trial in range(trials):
        if rebuild is not None:
            derived = int(np.random.SeedSequence(seed, spawn_key=(trial, _MODEL_SEED)).generate_state(1)[0])
            torch.manual_seed(derived)
            model = rebuild()
        model.to(device=device, dtype=getattr(torch, dtype))
        model.train()
        if weight_init is not None:
            _redraw(model, weight_init, bias, seed, trial, dtype, row_streams or {})
        torch.manual_seed(int(np.random.SeedSequence(seed, spawn_key=(trial, 3)).generate_state(1)[0]))
        # the weights' .grad is the probe's own: none accumulated from an earlier probe or the user's
        # training, and the user's left as it was
        held = [(p, p.grad) for p in model.parameters()]
        for p, _ in held:
            p.grad = None
        try:
            measured = _run(model, shape, settings, trial, device, spec)
        finally:
            for p, grad in held:
                p.grad = grad
        trials_data.append(measured)
        losses.append(measured.loss)
        if trial == 0:
            notes = _notes(model, measured, settings)
    spec = dataclasses.replace(spec, outputs=trials_data[0].outputs)
    result = model_result(trials_data, losses, settings, spec, weight_init)
    result.summary.notes += notes
    not_the_data(result, [u.row for u in trials_data[0].unseen if u.after == "the data"])
    return result


def _notes(model, measured: TrialData, settings: ProbeSettings) -> list[str]:
    """The notes of the first trial: the model's outputs, the code forward() runs where no hook
    looks, and the parameters no module owns."""
    notes = [outputs_note(measured.used, measured.skipped, settings.loss),
             unseen_note(measured.unseen, measured.gaps)]  # fmt: skip
    notes.append(unowned_note(model))
    return [note for note in notes if note]


def _check(settings: ProbeSettings, shape: InputShape) -> None:
    if not isinstance(settings.batch, int) or settings.batch < 1:
        raise InitdiagError(f"--batch must be a positive integer, got {settings.batch}")
    if not isinstance(settings.trials, int) or settings.trials < 1:
        raise InitdiagError(f"--trials must be a positive integer, got {settings.trials}")
    if settings.loss not in LOSSES:
        raise InitdiagError(f"unknown loss '{settings.loss}'; allowed: {', '.join(LOSSES)}")
    if settings.dtype not in ("float32", "float64"):
        raise InitdiagError(f"unknown dtype '{settings.dtype}'; allowed: float32, float64")
    settings.thresholds.check()


def _redraw(model, init, bias, seed: int, trial: int, dtype: str, row_streams: dict[str, int]) -> None:
    """Every Linear / Conv weight (and bias) re-drawn with an initdiag initializer from the layer's
    own stream, in initdiag's layout: a dense weight is drawn (fan_in, fan_out) and stored transposed,
    as torch keeps (out, in). The activation a gain=auto uses is the next leaf's, when it is one."""
    torch = require_torch()
    found = leaves(model)
    for ordinal, (name, module) in enumerate(found):
        kind = kind_of(module)
        if kind not in WEIGHTED:
            continue
        after = activation_of(found[ordinal + 1][1]) if ordinal + 1 < len(found) else None
        act = after or get_activation("linear")
        weight = module.weight
        ours = (weight.shape[1], weight.shape[0]) if kind == "dense" else tuple(weight.shape)
        ctx = LayerContext(name, ours, compute_fans(ours), act, np.dtype(dtype))
        init.check(ctx)
        rng = stream(seed, trial, _LAYER, row_streams.get(name, ordinal))
        drawn = init.sample(rng, ctx)
        with torch.no_grad():
            weight.copy_(torch.as_tensor(drawn.T if kind == "dense" else drawn))
            if module.bias is not None:
                bias_init = (
                    bias
                    if bias is not None
                    else (None if isinstance(init, FromFile) else init.default_bias())
                )
                if bias_init is not None:
                    b = bias_init.sample(rng, ctx._replace(shape=(module.bias.shape[0],)))
                    module.bias.copy_(torch.as_tensor(b))


def _run(model, shape: InputShape, settings: ProbeSettings, trial: int, device: str, spec: ModelSpec):
    """One forward and backward pass with hooks on every leaf; per call of a leaf, its statistics."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # a model's own warnings, numpy's on inf/nan: none leaks out
        return _run_quietly(model, shape, settings, trial, device, spec)


def _run_quietly(model, shape: InputShape, settings: ProbeSettings, trial: int, device: str, spec: ModelSpec):
    torch = require_torch()
    found = leaves(model)
    for _, module in found:
        if getattr(module, "inplace", False):
            module.inplace = False  # full backward hooks refuse in-place outputs
    order: list[RowData] = []
    calls: dict[str, int] = {}
    running: list[str] = []
    layout = {"channels_first": shape.kind == "floats" and len(shape.shape) >= 2}
    handles = []
    # the tensors the hooks saw made: an input that is none of them (or one changed in place since)
    # was computed by forward() itself, where no hook looks; one that is needs no second measurement
    produced, gradients = Measured(), Measured(keep=8)
    makers: dict[int, tuple] = {}  # id(grad_fn) of a row's output -> (grad_fn, row): what forward() read
    unseen: list[Unseen] = []
    gaps: list[Gap] = []

    def pre(name, ordinal):
        def hook(module, args):
            running.append(name)

        return hook

    def forward(name, ordinal):
        def hook(module, args, output):
            running.pop()
            calls[name] = calls.get(name, 0) + 1
            label = name if calls[name] == 1 else f"{name}#{calls[name]}"
            row = RowData(label, module, kind_of(module), ordinal)
            row.act = activation_of(module) if row.kind == "activation" else None
            x, y = _first_tensor(args), _first_tensor(output)
            row.in_shape = tuple(x.shape[1:]) if x is not None else ()
            row.out_shape = tuple(y.shape[1:]) if y is not None else ()
            # a convolution's output is channels-first; a dense layer, an embedding or attention
            # makes features last again; the rows after inherit it
            if row.kind.startswith("conv"):
                layout["channels_first"] = True
            elif row.kind in ("dense", "embedding", "attention", "flatten"):
                layout["channels_first"] = False
            row.channels_first = layout["channels_first"]
            floating = x is not None and x.is_floating_point()
            known = produced.get(x) if floating else None
            row.values = _forward_stats(row, x, y, known)
            if floating and known is None:
                before = order[-1] if order else None
                unseen.append(
                    Unseen(label, before.name if before else "the data",
                           before.values["output_sq"] if before else data_sq, row.values["input_sq"])
                )  # fmt: skip
                source = source_of(x, makers)
                if (
                    source is not None
                    and source.out_shape
                    and math.prod(row.in_shape) < math.prod(source.out_shape)
                ):
                    gaps.append(Gap(source, row))  # a pooling forward() does: fewer values than were made
            if y is not None and y.is_floating_point():
                produced.add(y, row.values.pop("_output_moments"))
                if y.grad_fn is not None:
                    makers[id(y.grad_fn)] = (y.grad_fn, row)
            order.append(row)

        return hook

    def backward(name):
        def hook(module, grad_input, grad_output):
            row = next(
                (r for r in reversed(order) if r.module is module and "grad_input_sq" not in r.values), None
            )
            if row is None:
                return
            gx, gy = _first_tensor(grad_input), _first_tensor(grad_output)
            if gx is not None:
                m = moments(_numpy(gx))
                row.values["grad_input_var"], row.values["grad_input_sq"] = m.var, m.second
                gradients.add(gx, m)
            else:
                row.values["grad_input_var"], row.values["grad_input_sq"] = None, math.nan
            if gy is not None:
                # in a chain, dL/dy of this module is dL/dx of the next, measured a moment ago
                known = gradients.get(gy) or moments(_numpy(gy))
                row.values["grad_output_sq"] = known.second
                act = activation_of(module)
                if act is not None and not act.piecewise_linear and "_z" in row.values:
                    z = row.values["_z"]
                    row.values["saturated_fraction"] = saturated_fraction(
                        act.derivative(z, act(z)), act.max_derivative
                    )

        return hook

    for ordinal, (name, module) in enumerate(found):
        handles.append(module.register_forward_pre_hook(pre(name, ordinal)))
        handles.append(module.register_forward_hook(forward(name, ordinal)))
        handles.append(module.register_full_backward_hook(backward(name)))
    try:
        x = _input(shape, settings, trial, device)
        data_sq = None
        if x.is_floating_point():
            data = moments(_numpy(x))
            produced.add(x, data)
            data_sq = data.second
        try:
            returned = model(x)
        except Exception as exc:
            where = f" in module {running[-1]}" if running else ""
            raise InitdiagError(
                f"--model '{one_line(spec.model)}' does not take input {shape} (batch {settings.batch})"
                f"{where}: {type(exc).__name__}: {one_line(str(exc), 160)}"
            ) from None
        outputs = flatten(returned)
        used, skipped = split(outputs)
        if not used:
            raise nothing_to_probe(spec.model, returned, outputs)
        # the rows that made each output (the backward gains' reference); the classes of a
        # convolution's output (for xent) are on axis 1
        heads: dict[int, RowData] = {}
        for k, out in enumerate(used):
            makers_of = sources_of(out.value, makers)[0]
            heads.update((id(row), row) for row in makers_of)
            last = makers_of[-1].channels_first if makers_of else layout["channels_first"]
            used[k] = Output(out.name, out.value, last)
        produced.clear()  # the forward pass is over: hold nothing autograd does not
        makers.clear()
        loss = probe_loss(used, settings.loss, settings.seed, trial, settings.batch, settings.dtype)
        finite = bool(torch.isfinite(loss))
        if finite:
            loss.backward()
        loss_value = float(loss.detach()) if finite else math.nan
    finally:
        for handle in handles:
            handle.remove()
        produced.clear()
        gradients.clear()
        makers.clear()
    for row in order:
        _weight_stats(row, finite)
        if not finite:  # no backward pass: every gradient is not a number, as a spec probe's
            row.values["grad_input_sq"] = row.values["grad_output_sq"] = math.nan
            row.values["grad_input_var"] = math.nan if "input_sq" in row.values else None  # token ids: none
        row.values.pop("_z", None)
        row.values.pop("_output_moments", None)
    shapes = tuple((o.name, tuple(o.value.shape[1:])) for o in used)
    return TrialData(order, loss_value, unseen, gaps, data_sq, shapes, used, skipped, list(heads.values()))


def _input(shape: InputShape, settings: ProbeSettings, trial: int, device: str):
    """The batch of a spec probe: N(0, 1) floats (or uniform token ids) from the input stream."""
    torch = require_torch()
    rng = stream(settings.seed, trial, _INPUT)
    if shape.kind == "tokens":
        ids = rng.integers(0, shape.vocab, size=(settings.batch, *shape.shape))
        return torch.as_tensor(ids, device=device)
    data = rng.standard_normal((settings.batch, *shape.shape)).astype(settings.dtype)
    return torch.as_tensor(data, device=device).requires_grad_(True)


def _forward_stats(row: RowData, x, y, known=None) -> dict:
    """Statistics of one call's output (and input, for an activation row); *known* is the input's
    `Moments` when it was measured before (the output of a module that ran earlier)."""
    values: dict[str, Any] = {}
    act = row.act
    z_tensor = x if row.kind == "activation" and x is not None else y
    if z_tensor is None or not z_tensor.is_floating_point():
        z_tensor = y
    z = _numpy(z_tensor)
    a = _numpy(y) if y is not None else z
    zm = known if z_tensor is x and known is not None else moments(z)
    am = zm if z_tensor is y else moments(a)
    values.update(preact_mean=zm.mean, preact_var=zm.var, preact_sq=zm.second, act_mean=am.mean,
                  act_var=am.var, dead_fraction=0.0, saturated_fraction=0.0, distinct_units=None)  # fmt: skip
    values["output_sq"], values["_output_moments"] = am.second, am
    if x is not None and x.is_floating_point():
        if known is None:
            known = zm if z_tensor is x else moments(_numpy(x))
        values["input_sq"] = known.second
    finite = math.isfinite(zm.second) and math.isfinite(am.second)
    if finite and act is not None and act.relu_family:
        values["dead_fraction"] = _dead_fraction(z, row.channels_first)
    if finite and row.kind in WEIGHTED:  # counted on x @ W: units with equal weights are one unit
        bias = getattr(row.module, "bias", None)
        values["bias_spread"] = float(np.ptp(_numpy(bias))) if bias is not None and bias.numel() else 0.0
        values["distinct_units"] = _distinct_units(row, x, a, values["bias_spread"] > 0)
    if act is not None and not act.piecewise_linear:
        values["_z"] = z
    return values


def _dead_fraction(z: np.ndarray, channels_first: bool) -> float:
    """Share of units (channels, or features on the last axis) that are <= 0 for every sample and
    position, without reshaping the array into a copy."""
    if z.ndim < 2:
        return dead_fraction(z.reshape(-1, 1))
    unit_axis = 1 if channels_first and z.ndim >= 3 else z.ndim - 1
    alive = np.any(z > 0, axis=tuple(i for i in range(z.ndim) if i != unit_axis))
    return 1.0 - np.count_nonzero(alive) / alive.size


def _distinct_units(row: RowData, x, output: np.ndarray, bias_varies: bool) -> int:
    """Distinct units of a Linear / Conv on x @ W, before its bias, so that units whose incoming
    weights are equal count once. The output's count is that count unless the biases differ across
    units that share their weights; only then is x @ W computed again (subtracting the bias from the
    output would not give equal units equal numbers after rounding)."""
    module = row.module
    if bias_varies and x is not None:
        weight = _numpy(module.weight).reshape(module.weight.shape[0], -1)
        if distinct_columns(weight.T) < weight.shape[0]:
            torch = require_torch()
            with torch.no_grad():
                if isinstance(module, torch.nn.Linear):
                    output = _numpy(torch.nn.functional.linear(x, module.weight))
                else:
                    output = _numpy(module._conv_forward(x, module.weight, None))
    if output.ndim >= 2 and output.shape[0] > 1:
        # the first sample's positions (or the first samples) tell the units apart, as a rule: the
        # whole batch is laid out (a copy, for channels-first outputs) only when they do not
        first = _units_last(output[: max(1, -(-64 // max(1, row.positions)))], row.channels_first)
        units = first.shape[1]
        if first.shape[0] >= 2 and distinct_columns(first) == units:
            return units
    return distinct_columns(_units_last(output, row.channels_first))


def _weight_stats(row: RowData, finite: bool = True) -> None:
    """The module's weight (``weight``, or an attention's ``in_proj_weight``) and its gradient (not a
    number when the loss was not: no backward pass ran)."""
    module, values = row.module, row.values
    weight = getattr(module, "weight", None)
    if weight is None:
        weight = getattr(module, "in_proj_weight", None)
    if weight is None or not hasattr(weight, "grad"):
        values.update(weight_std=None, grad_weight_var=None, grad_weight_ratio=None, grad_weight_sq=math.nan)
        return
    wm = moments(_numpy(weight))
    values["weight_std"], values["weight_rms"] = wm.std, math.sqrt(wm.second)
    grad = weight.grad
    if not finite:
        values.update(grad_weight_var=math.nan, grad_weight_ratio=math.nan, grad_weight_sq=math.nan)
        return
    if grad is None:
        values.update(grad_weight_var=0.0, grad_weight_ratio=0.0, grad_weight_sq=0.0)
        return
    gm = moments(_numpy(grad))
    values["grad_weight_var"], values["grad_weight_sq"] = gm.var, gm.second
    values["grad_weight_ratio"] = math.sqrt(gm.second) / math.sqrt(wm.second) if wm.second else math.nan


def run_model(spec: ModelSpec, settings: ProbeSettings) -> ProbeResult:
    """Probe the model a `ModelSpec` names, with a spec probe's settings: its factory found, the
    memory it needs estimated from a dry run on the meta device (and refused before anything is
    allocated when it will not fit), then built afresh for every trial."""
    from ..analysis.memory import available_memory, format_bytes
    from .torch_load import build, check_device, estimate_bytes, load_factory

    torch = require_torch()
    device = check_device(settings.device)
    factory = load_factory(spec)
    need, how = estimate_bytes(spec, factory, settings.batch, settings.dtype)
    have = available_memory() if device == "cpu" else None
    if device == "cuda":
        have = torch.cuda.mem_get_info()[0]
    if have is not None and need > have:
        raise InitdiagError(
            f"--model '{one_line(spec.model)}' needs about {format_bytes(need)} at batch {settings.batch} "
            f"(from {how}) but {format_bytes(have)} is available on {device}; use a smaller --batch"
        )
    return probe_module(
        lambda: build(spec, factory),
        spec.input_shape,
        init=spec.init,
        bias_init=spec.bias_init,
        batch=settings.batch,
        seed=settings.seed,
        trials=settings.trials,
        loss=settings.loss,
        dtype=settings.dtype,
        device=device,
        thresholds=settings.thresholds,
        spec=spec,
    )
