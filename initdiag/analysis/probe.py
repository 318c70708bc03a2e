"""One probe: sample the stack's weights, push a random batch forward and a loss gradient back,
and measure every layer.

Random streams: every trial ``t`` draws its input from ``SeedSequence(seed, spawn_key=(t, 0))``,
its loss target from ``(t, 1)``, row ``i``'s weights and bias from ``(t, 2, i)`` and a dropout
row's mask from ``(t, 3, i)``
(the children ``SeedSequence.spawn`` would make), so the same seed always gives the same numbers and
changing one layer never changes another layer's weights. Weights are sampled on a thread pool,
one Generator per layer (numpy releases the GIL while filling arrays).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import replace

import numpy as np

from ..core.activations import get_activation
from ..core.initializers import LayerContext, compute_fans
from ..core.layers import (
    ActivationLayer,
    BatchNorm,
    Conv2d,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    MaxPool2d,
    Residual,
    ResidualSum,
    run_backward,
    run_forward,
)
from ..core.losses import LOSSES, loss_and_grad, make_target
from ..core.ops import dropout_mask
from ..core.pages import small_pages
from ..core.stats import moments
from ..errors import InitdiagError, gain_limit, integer
from ..network.graph import Block, rows
from ..network.kinds import NORM_KINDS
from ..network.model import ModelSpec
from ..network.settings import ProbeSettings, Thresholds
from ..network.shorthand import as_shorthand, parse_layers
from ..network.stack import StackSpec
from . import token_build
from .blocks import block_records
from .budget import MAX_TRIALS, PROBE_LOWER, TRIALS_HINT, probe_seconds, refuse_long
from .inputs import InputSource, channels_last, get_input, stream
from .judge import judge
from .memory import available_memory, estimate_memory, format_bytes, shared_note
from .plan import _bias_context, _default_bias, _FileBias, _norm_values, _Plan, _plan, row_infos  # noqa: F401
from .recorder import Recorder
from .result import LayerStats, ProbeResult

DTYPES = ("float32", "float64")
_INPUT_STREAM, _TARGET_STREAM, _LAYER_STREAM, _DROPOUT_STREAM = 0, 1, 2, 3
_JACOBIAN_STREAM = 5  # the randomized estimate's probes (4 is train's data)
# below this many weights in all, a thread pool costs more than it saves
_PARALLEL_MIN_WEIGHTS = 1 << 20


# --- the input batch ------------------------------------------------------------------------------


# --- memory ---------------------------------------------------------------------------------------


# --- the run --------------------------------------------------------------------------------------


def _sample_layer(plan: _Plan, seed: int, trial: int, i: int):
    """Weights and bias of row i, and the moments of the weights (computed here, on the pool)."""
    ctx = plan.contexts[i]
    rng = stream(seed, trial, _LAYER_STREAM, i)
    W = plan.inits[i].sample(rng, ctx)
    b = plan.bias_inits[i].sample(rng, _bias_context(ctx)) if plan.bias_inits[i] is not None else None
    return W, b, moments(W)


def _build(plan: _Plan, sampled: dict, settings: ProbeSettings, trial: int) -> list:
    """The layer objects of one trial, nested as the graph's tree (a transformer block's rows are
    one `TransformerBlock`)."""
    rows_, dtype = plan.graph.rows, np.dtype(settings.dtype)
    built: dict[str, object] = {}

    def arrays(index: int) -> dict:
        if plan.draws[index]:
            return sampled.get(index, {})
        if index in sampled:  # a dense row on a token stream: W and its bias
            return {"W": sampled[index][0], "b": sampled[index][1]}
        return {}

    def make(index: int):
        row, act = rows_[index], plan.acts[index]
        layer, name = row.layer, row.name
        per_token = len(row.in_shape) == 2 and row.kind in ("dense", "layernorm")
        if row.kind in (*token_build.TOKEN_KINDS, "sinusoidal_positions", "rmsnorm") or per_token:
            made = token_build.make_layer(row, act, arrays(index), dtype, built)
            built[row.name] = made
            return made
        if row.kind == "dense":
            return Dense(name, sampled[index][0], sampled[index][1], act)
        if row.kind == "conv2d":
            return Conv2d(name, sampled[index][0], sampled[index][1], act, row.stride, row.pads)
        if row.kind == "flatten":
            return Flatten(name)
        if row.kind == "maxpool2d":
            return MaxPool2d(name, layer.get("size"))
        if row.kind == "global_avgpool":
            return GlobalAvgPool(name)
        if row.kind in NORM_KINDS:
            # batchnorm: one gamma per feature / channel; layernorm: one per entry of a sample
            shape = (row.units,) if row.kind == "batchnorm" else _last(row.out_shape)
            cls = BatchNorm if row.kind == "batchnorm" else LayerNorm
            return cls(name, np.ones(shape, dtype), np.zeros(shape, dtype), act, layer.get("eps"))
        if row.kind == "dropout":
            rng = stream(settings.seed, trial, _DROPOUT_STREAM, index)
            mask = dropout_mask(rng, (settings.batch, *_last(row.out_shape)), layer.rate, dtype)
            return Dropout(name, mask)
        if row.kind == "activation":
            return ActivationLayer(name, act)
        raise AssertionError(row.kind)

    def build(tree) -> list:
        nodes = []
        group: list[int] = []  # the rows of the transformer block being collected
        for k, item in enumerate(tree):
            row = rows_[item.sum_row if isinstance(item, Block) else item]
            if row.block is not None:
                group += [*item.branch, item.sum_row] if isinstance(item, Block) else [item]
                following = tree[k + 1] if k + 1 < len(tree) else None
                after = (
                    rows_[following.sum_row if isinstance(following, Block) else following]
                    if following is not None
                    else None
                )
                if after is None or after.block != row.block:
                    block_rows = [rows_[j] for j in group]
                    parts = {j: arrays(j) for j in group}
                    nodes.append(token_build.make_block(block_rows, parts, dtype, plan.graph.n_blocks))
                    group = []
                continue
            if isinstance(item, Block):
                row = rows_[item.sum_row]
                P = sampled[row.index][0] if row.index in sampled else None
                nodes.append(
                    Residual(build(item.branch), ResidualSum(row.name, row.layer.get("scale"), P, row.stride))
                )
            else:
                nodes.append(make(item))
        return nodes

    nodes = build(plan.graph.tree)
    # `build` is recursive, a reference cycle (build -> its cell -> build) that lives until a garbage
    # collection with every closure here: they must not keep the sampled arrays a layer copied (an
    # attention's separate W_q, W_k, W_v, a quarter of a transformer's weights) alive
    sampled = None
    return nodes


def _last(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A sample's shape channels-last: (C, H, W) -> (H, W, C)."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


def _run_trial(
    plan: _Plan, settings: ProbeSettings, source: InputSource, trial: int, pool
) -> tuple[dict, float]:
    """One forward and backward pass; returns per-row raw statistics (arrays over rows)."""
    seed, dtype = settings.seed, np.dtype(settings.dtype)
    weighted = [i for i, ctx in enumerate(plan.contexts) if ctx is not None]
    several = [i for i, d in enumerate(plan.draws) if d]
    if pool is None:
        results = [_sample_layer(plan, seed, trial, i) for i in weighted]
        drawn = [token_build.sample(plan.draws[i], seed, trial, i) for i in several]
    else:
        results = list(pool.map(lambda i: _sample_layer(plan, seed, trial, i), weighted))
        drawn = list(pool.map(lambda i: token_build.sample(plan.draws[i], seed, trial, i), several))
    sampled = {**dict(zip(weighted, results, strict=True)), **dict(zip(several, drawn, strict=True))}
    nodes = _build(plan, sampled, settings, trial)
    moments_of = {i: m for i, (_, _, m) in zip(weighted, results, strict=True)}
    recorder = Recorder(plan, moments_of, keep_outputs=settings.jacobian)  # the Jacobian reads them
    del sampled, results, drawn

    X = source.batch(stream(seed, trial, _INPUT_STREAM), settings.batch, plan.spec.input_shape, dtype)
    h = run_forward(nodes, channels_last(X), recorder)
    if settings.jacobian and trial == 0 and plan.spec.is_dense_chain and recorder.forward_finite:
        recorder.raw["jacobian"] = _jacobian(nodes, seed)
    # the target is drawn in PyTorch's (N, C, H, W) order, so an image output gets the same numbers;
    # a token stream's cross-entropy is over every token (batch * seq rows), as a language model's
    shape = (h.shape[0], h.shape[-1], *h.shape[1:-1]) if h.ndim == 4 else h.shape
    out = h.reshape(-1, h.shape[-1]) if h.ndim == 3 and settings.loss == "xent" else h
    shape = out.shape if out is not h else shape
    target = channels_last(make_target(settings.loss, stream(seed, trial, _TARGET_STREAM), shape, dtype))
    loss, grad = loss_and_grad(settings.loss, out, target)
    grad = grad.reshape(h.shape)
    recorder.raw["output_grad_sq"] = moments(grad).second
    # An overflowed forward pass makes the loss not a number, so no gradient is defined: the
    # backward statistics stay nan rather than report what nan happens to turn into.
    if recorder.forward_finite:
        run_backward(nodes, grad, recorder)
    return recorder.raw, loss


def _jacobian(nodes: list, seed: int) -> dict:
    """The input-output Jacobian's singular values at the first samples of the batch (dense chains)."""
    from .jacobian import SAMPLES, spectrum

    count = min(SAMPLES, len(nodes[0].z))
    slopes = [None if n.act.is_linear else n.act.derivative(n.z[:count], n.a[:count]) for n in nodes]
    return spectrum([n.W for n in nodes], slopes, stream(seed, 0, _JACOBIAN_STREAM))


# --- public entry point ---------------------------------------------------------------------------


def check_settings(settings: ProbeSettings, spec: StackSpec) -> ProbeSettings:
    integer("--batch", settings.batch)
    integer("--seed", settings.seed, 0)
    integer("--trials", settings.trials, 1, MAX_TRIALS, TRIALS_HINT)
    if settings.loss not in LOSSES:
        raise InitdiagError(f"unknown loss '{settings.loss}'; allowed: {', '.join(LOSSES)}")
    if settings.dtype not in DTYPES:
        raise InitdiagError(f"unknown dtype '{settings.dtype}'; allowed: {', '.join(DTYPES)}")
    settings.thresholds.check()
    graph = rows(spec)
    if not any(row.weight_shape is not None or row.tied_to for row in graph.rows):
        raise InitdiagError(
            "nothing to diagnose: the stack has no layer with weights (dense, conv2d, embedding, attention, "
            "mlp, transformer, unembedding)"
        )
    for row in graph.rows:
        if row.kind == "batchnorm" and settings.batch * math.prod(row.out_shape[1:]) < 2:
            raise InitdiagError(
                f"layer {row.name}: batch norm needs a batch of at least 2 (it normalizes each feature "
                f"over the batch, and one value has no variance); got --batch {settings.batch}"
            )
        if row.kind in ("layernorm", "rmsnorm") and _norm_values(row) < 2:
            raise InitdiagError(
                f"layer {row.name}: {row.kind} over a single feature outputs a constant for every input; "
                "normalize a layer of at least 2 units"
            )
    if settings.loss == "xent":
        out = graph.rows[-1].out_shape
        if len(out) == 2 and out[-1] >= 2:  # a token stream: one softmax per token
            return settings
        if len(out) != 1 or out[0] < 2:
            raise InitdiagError(
                f"--loss xent needs at least 2 outputs, one per class in a flat output; the stack "
                f"ends in shape {out} (softmax over one class has no gradient)"
            )
    return settings


def probe(
    spec: StackSpec | str | None = None,
    *,
    act: str | None = None,
    out_act: str = "linear",
    init: str = "he_normal",
    bias_init: str | None = None,
    norm: str | None = None,
    residual: bool = False,
    residual_scale: float | None = None,
    dropout: float | None = None,
    batch: int = 256,
    seed: int = 0,
    trials: int = 1,
    loss: str = "unit",
    input: str = "normal",
    dtype: str = "float32",
    max_gain: float = 10.0,
    thresholds: Thresholds | None = None,
    theory: bool = True,
    jacobian: bool = False,
) -> ProbeResult:
    """Probe a stack and return a `ProbeResult` (nothing is printed).

    *spec* is a `StackSpec`, the ``--layers`` shorthand (``"784,256x8,10"``, first width = input) or
    a sequence of widths (``[784, 256, 10]``);
    with the shorthand, *act*, *out_act*, *init* and *bias_init* set the stack's defaults and
    *norm*, *residual*, *residual_scale* and *dropout* shape it (see `parse_layers`).

    >>> r = probe("784,256,256,10", act="relu", init="he")
    >>> r.summary.verdict
    'ok'
    """
    if spec is None:
        raise InitdiagError("probe needs a stack: a StackSpec or a shorthand like '784,256,10'")
    if not isinstance(spec, StackSpec):
        spec = parse_layers(
            as_shorthand(spec),
            act=act,
            out_act=out_act,
            init=init,
            bias_init=bias_init,
            norm=norm,
            residual=residual,
            residual_scale=residual_scale,
            dropout=dropout,
        )
    spec = spec.resolve()
    if thresholds is None:
        thresholds = Thresholds(gain_limit("--max-gain", max_gain), gain_limit("--max-gain", max_gain))
    source = get_input(input, spec.input_shape, spec.vocab)
    settings = ProbeSettings(batch, seed, trials, loss, source.text, dtype, thresholds, theory, jacobian)
    return run_probe(spec, settings, source)


def run_probe(spec: StackSpec, settings: ProbeSettings, source: InputSource | None = None) -> ProbeResult:
    """Probe a resolved spec (`StackSpec.resolve`) with the given settings; `probe` ends here. A
    `ModelSpec` (a PyTorch model) is probed by `initdiag.adapters.torch_probe`."""
    if isinstance(spec, ModelSpec):
        from ..adapters.torch_probe import run_model

        return run_model(spec, settings)
    if source is None:
        source = get_input(settings.input, spec.input_shape, spec.vocab)
    if source.array is not None:  # a file's rows are the batch
        settings = replace(settings, batch=int(source.array.shape[0]), input=source.text)
    elif spec.takes_tokens:
        settings = replace(settings, input=source.text)
    check_settings(settings, spec)
    plan = _plan(spec, settings.dtype)
    for ctx, init, bias in zip(plan.contexts, plan.inits, plan.bias_inits, strict=True):
        if init is not None:
            init.check(ctx)
        if bias is not None:
            bias.check(_bias_context(ctx))
    for row_draws in plan.draws:
        token_build.check(row_draws)
    need = estimate_memory(
        spec,
        settings.batch,
        settings.dtype,
        orthogonal=any(i is not None and i.name in ("orthogonal", "lsuv") for i in plan.inits)
        or any(d.init.name == "orthogonal" for row_draws in plan.draws for d in row_draws),
        loss=settings.loss,
    )
    have = available_memory()
    if have is not None and need.total > have:
        raise InitdiagError(
            f"this stack needs about {format_bytes(need.total)} (weights and gradients "
            f"{format_bytes(need.weights)}, activations {format_bytes(need.activations)} at batch "
            f"{settings.batch}) but {format_bytes(have)} is available{shared_note()}; use fewer or narrower "
            "layers or a smaller --batch"
        )
    refuse_long(probe_seconds(spec, settings), "this probe", PROBE_LOWER)

    n_weights = sum(math.prod(ctx.shape) for ctx in plan.contexts if ctx is not None)
    n_weights += sum(math.prod(d.param.shape) for row_draws in plan.draws for d in row_draws)
    workers = min(
        sum(ctx is not None for ctx in plan.contexts) + sum(map(bool, plan.draws)), os.cpu_count() or 1
    )
    pool = None
    if workers > 1 and n_weights >= _PARALLEL_MIN_WEIGHTS:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=workers)
    raws, losses = [], []
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(), small_pages():
            warnings.simplefilter("ignore", RuntimeWarning)
            for trial in range(settings.trials):
                raw, loss = _run_trial(plan, settings, source, trial, pool)
                raws.append(raw)
                losses.append(loss)
    finally:
        if pool is not None:
            pool.shutdown()

    layers, summary = judge(plan.graph, row_infos(plan, settings), raws, losses, settings, spec)
    if settings.jacobian:
        summary.jacobian = raws[0].get("jacobian") or {
            "reason": "the Jacobian is computed for dense stacks whose forward pass stays finite"
        }
    if settings.theory:
        output_grad_sq = float(np.mean([r["output_grad_sq"] for r in raws]))
        summary.theory = _theory(plan, source, settings, layers, output_grad_sq)
    blocks = block_records(plan.graph, layers)
    return ProbeResult(spec=spec, settings=settings, layers=layers, summary=summary, blocks=blocks)


def _input_second_moment(source: InputSource, spec: StackSpec, dtype) -> float | None:
    if source.array is not None:
        return moments(source.array.astype(np.float64)).second
    shape = (1, *spec.input_shape)
    ctx = LayerContext("input", shape, compute_fans(shape), get_activation("linear"), np.dtype(dtype))
    variance, mean = source.sampler.variance(ctx), source.sampler.mean(ctx)
    return None if variance is None or mean is None else variance + mean * mean


def _theory(plan: _Plan, source: InputSource, settings: ProbeSettings, layers: list[LayerStats],
            output_grad_sq: float) -> dict:  # fmt: skip
    """Mean-field predictions (`initdiag.theory`) for a dense chain whose weights are i.i.d. with zero
    mean and known variance; fills each layer's theory keys and returns the stack's summary (or the
    reason it does not apply)."""
    from .theory import depth_theory, layer_predictions, stack_theory

    for stats in layers:
        stats.theory_on = True
    if plan.graph.n_blocks or any(row.kind == "attention" for row in plan.graph.rows):
        words = "attention mixes a sample's tokens, which its recursion does not model (the blocks table"
        return {"reason": f"mean-field theory here covers dense stacks; {words} measures the stream)"}
    if not plan.spec.is_dense_chain:
        return {"reason": "mean-field theory here covers dense stacks"}
    inputs = _input_second_moment(source, plan.spec, settings.dtype)
    per_layer = []
    for ctx, init, bias, act in zip(plan.contexts, plan.inits, plan.bias_inits, plan.acts, strict=True):
        variance, mean = init.variance(ctx), init.mean(ctx)
        bias_ctx = _bias_context(ctx)
        b_var, b_mean = bias.variance(bias_ctx), bias.mean(bias_ctx)
        if None in (variance, mean, b_var, b_mean) or mean != 0 or inputs is None:
            what = "data-dependent or unknown" if None in (variance, mean, b_var, b_mean) else "non-zero-mean"
            return {"reason": f"layer {ctx.name}: {what} weights ({init}); the theory needs i.i.d. "
                    "zero-mean weights of known variance"}  # fmt: skip
        fan_in, fan_out = ctx.fans
        per_layer.append((fan_in * variance, b_var + b_mean * b_mean, fan_out / fan_in, act))
    predictions = layer_predictions(per_layer, inputs, output_grad_sq)
    for stats, p in zip(layers, predictions, strict=True):
        stats.theory_preact_var, stats.theory_grad_input_var = p.preact_var, p.grad_input_var
    hidden = max(0, len(per_layer) - 2)  # a hidden layer's sigma_w^2, sigma_b^2 and activation
    out = stack_theory(*per_layer[hidden][:2], per_layer[hidden][3]).to_dict()
    # this stack at this depth (where the summary's backward gain is read), then where deeper ones tend
    start = next((i for i, x in enumerate(layers) if x.gain_judged[1]), 0)
    depth = depth_theory(predictions, [p[2] for p in per_layer], start, [x.name for x in layers])
    out["words"] = f"{depth.pop('depth_words')}; {out['words']}"
    return {**out, **depth}
