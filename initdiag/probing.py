"""One probe: sample the stack's weights, push a random batch forward and a loss gradient back,
and measure every layer.

Random streams: every trial ``t`` draws its input from ``SeedSequence(seed, spawn_key=(t, 0))``,
its loss target from ``(t, 1)`` and layer ``i``'s weights and bias from ``(t, 2, i)``
(the children ``SeedSequence.spawn`` would make), so the same seed always gives the same numbers and
changing one layer never changes another layer's weights. Weights are sampled on a thread pool,
one Generator per layer (numpy releases the GIL while filling arrays).
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from .activations import Activation, get_activation
from .errors import InitdiagError
from .files import load_npy
from .initializers import (
    FromFile,
    Initializer,
    LayerContext,
    Normal,
    Uniform,
    compute_fans,
    get_bias_initializer,
    get_initializer,
)
from .layers import Dense
from .losses import LOSSES, loss_and_grad, make_target
from .result import (
    FLAGS,
    MEASURED_KEYS,
    STAT_KEYS,
    WARN_FRACTION,
    LayerStats,
    ProbeResult,
    Reason,
    Summary,
    format_number,
)
from .spec import ProbeSettings, StackSpec, Thresholds, parse_layers
from .stats import dead_fraction, distinct_columns, moments, saturated_fraction

DTYPES = ("float32", "float64")
_INPUT_STREAM, _TARGET_STREAM, _LAYER_STREAM = 0, 1, 2
# below this many weights in all, a thread pool costs more than it saves
_PARALLEL_MIN_WEIGHTS = 1 << 20


def stream(seed: int, trial: int, *key: int) -> np.random.Generator:
    """The Generator for one purpose of one trial (see the module doc)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(trial, *key)))


# --- the input batch ------------------------------------------------------------------------------


@dataclass
class InputSource:
    """``normal`` (N(0, 1)), ``uniform`` (U(-sqrt 3, sqrt 3), also unit variance), any
    ``normal:...`` / ``uniform:...`` the initializer grammar accepts, or a ``.npy`` file."""

    text: str
    sampler: Initializer | None = None
    array: np.ndarray | None = None

    def batch(self, rng: np.random.Generator, batch: int, width: int, dtype) -> np.ndarray:
        if self.array is not None:
            return self.array.astype(dtype, copy=False)
        ctx = LayerContext(
            "input", (batch, width), compute_fans((batch, width)), get_activation("linear"), np.dtype(dtype)
        )
        return self.sampler.sample(rng, ctx)


def get_input(text: str, width: int) -> InputSource:
    text = str(text).strip()
    if text.lower().endswith(".npy"):
        return InputSource(text, array=_load_npy(text, width))
    name = text.split(":", 1)[0].strip().lower()
    if name not in ("normal", "uniform"):
        raise InitdiagError(
            f"--input '{text}': use normal, uniform, normal:STD, uniform:low=L,high=H or a FILE.npy"
        )
    if ":" not in text:
        sampler = Normal("normal", 1.0) if name == "normal" else Uniform(-math.sqrt(3), math.sqrt(3))
        return InputSource(name, sampler)
    sampler = get_initializer(text)
    return InputSource(str(sampler), sampler)


def _load_npy(path: str, width: int) -> np.ndarray:
    array = load_npy(path)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise InitdiagError(f"'{path}' must hold one numeric array of shape (batch, {width})")
    if array.ndim != 2 or array.shape[1] != width or array.shape[0] < 1:
        raise InitdiagError(
            f"'{path}' has shape {array.shape} but the stack takes (batch, {width}), batch >= 1"
        )
    return array


# --- memory ---------------------------------------------------------------------------------------


class MemoryEstimate(NamedTuple):
    weights: int  # W and dW (and the float64 QR work space of orthogonal init)
    activations: int  # the cached x, z, a of every layer, plus transients
    total: int


def estimate_memory(
    widths: tuple[int, ...], batch: int, dtype: str, orthogonal: bool = False
) -> MemoryEstimate:
    """Peak bytes one trial of a dense stack needs, before anything is allocated."""
    item = np.dtype(dtype).itemsize
    pairs = list(itertools.pairwise(widths))
    params = sum(i * o + o for i, o in pairs)
    largest = max(i * o for i, o in pairs)
    weights = 2 * params * item + (3 * largest * 8 if orthogonal else 0)
    widest = max(widths)
    cached = batch * (widths[0] + 2 * sum(widths[1:])) * item
    # dz, dact, dx; float64 chunks of the statistics and of each sampling thread's draw
    transient = 3 * batch * widest * item + 8 * (1 << 20) * (1 + (os.cpu_count() or 1))
    activations = cached + transient
    return MemoryEstimate(weights, activations, weights + activations)


def available_memory() -> int | None:
    """Bytes we may use: ``INITDIAG_MAX_MEMORY`` (e.g. ``2GiB``) if set, else MemAvailable."""
    limit = os.environ.get("INITDIAG_MAX_MEMORY")
    if limit:
        return parse_bytes(limit)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def parse_bytes(text: str) -> int:
    units = {
        "": 1,
        "b": 1,
        "kb": 10**3,
        "mb": 10**6,
        "gb": 10**9,
        "tb": 10**12,
        "kib": 2**10,
        "mib": 2**20,
        "gib": 2**30,
        "tib": 2**40,
    }
    s = text.strip().lower()
    number = s.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = s[len(number) :].strip()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise InitdiagError(f"INITDIAG_MAX_MEMORY='{text}' is not a size like 512MB or 2GiB")
    return int(value * units[unit])


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


# --- the run --------------------------------------------------------------------------------------


class _Plan(NamedTuple):
    """A resolved stack ready to sample: per layer its context, initializers and activation."""

    spec: StackSpec
    contexts: tuple[LayerContext, ...]
    inits: tuple[Initializer, ...]
    bias_inits: tuple[Initializer, ...]


def _plan(spec: StackSpec, dtype: str) -> _Plan:
    widths = spec.widths
    contexts, inits, bias_inits = [], [], []
    for layer, fan_in in zip(spec.layers, widths[:-1], strict=True):
        shape = (fan_in, layer.units)
        act: Activation = get_activation(layer.act)
        ctx = LayerContext(layer.name, shape, compute_fans(shape), act, np.dtype(dtype))
        init = get_initializer(layer.init)
        bias = get_bias_initializer(layer.bias_init) if layer.bias_init is not None else _default_bias(init)
        contexts.append(ctx)
        inits.append(init)
        bias_inits.append(bias)
    return _Plan(spec, tuple(contexts), tuple(inits), tuple(bias_inits))


@dataclass(repr=False)
class _FileBias(Initializer):
    """The bias of a ``file:`` layer: ``NAME.bias`` from the same archive, else zeros."""

    source: FromFile
    name: str = "file-bias"

    def sample(self, rng, ctx):
        weight_ctx = ctx._replace(shape=(ctx.fans.fan_in, ctx.fans.fan_out))
        bias = self.source.bias(weight_ctx)
        return np.zeros(ctx.shape, dtype=ctx.dtype) if bias is None else bias

    def __str__(self):
        return f"{self.source}[bias or zeros]"


def _default_bias(init: Initializer) -> Initializer:
    return _FileBias(init) if isinstance(init, FromFile) else init.default_bias()


def _sample_layer(plan: _Plan, seed: int, trial: int, i: int):
    """Weights and bias of layer i, and the moments of the weights (computed here, on the pool)."""
    ctx = plan.contexts[i]
    rng = stream(seed, trial, _LAYER_STREAM, i)
    W = plan.inits[i].sample(rng, ctx)
    b = plan.bias_inits[i].sample(rng, ctx._replace(shape=(ctx.shape[1],)))
    return W, b, moments(W)


def _lsuv(layers: list[Dense], plan: _Plan, X: np.ndarray, weight_moments: list) -> None:
    """Mishkin & Matas 2015: rescale each lsuv layer, in order, to unit pre-activation variance."""
    h = X
    for i, layer in enumerate(layers):
        init = plan.inits[i]
        if init.data_driven:
            for _ in range(init.max_iter):
                var = moments(layer.transform(h)).var
                if not math.isfinite(var) or var == 0 or abs(var - 1.0) < init.tol:
                    break
                layer.W *= layer.W.dtype.type(1.0 / math.sqrt(var))
            weight_moments[i] = moments(layer.W)
        h = layer.forward(h)


def _run_trial(
    plan: _Plan, settings: ProbeSettings, source: InputSource, trial: int, pool
) -> tuple[dict, float]:
    """One forward and backward pass; returns per-layer raw statistics (arrays over layers)."""
    n = len(plan.contexts)
    seed, dtype = settings.seed, np.dtype(settings.dtype)
    if pool is None:
        sampled = [_sample_layer(plan, seed, trial, i) for i in range(n)]
    else:
        sampled = list(pool.map(lambda i: _sample_layer(plan, seed, trial, i), range(n)))
    layers = [Dense(ctx.name, W, b, ctx.act) for ctx, (W, b, _) in zip(plan.contexts, sampled, strict=True)]
    weight_moments = [m for _, _, m in sampled]
    del sampled

    X = source.batch(stream(seed, trial, _INPUT_STREAM), settings.batch, plan.spec.widths[0], dtype)
    if any(init.data_driven for init in plan.inits):
        _lsuv(layers, plan, X, weight_moments)

    raw = {key: np.full(n, np.nan) for key in (*STAT_KEYS, "preact_sq", "grad_input_sq")}
    forward_finite = True
    h = X
    for i, layer in enumerate(layers):
        h = layer.forward(h)
        z, a = layer.z, layer.a
        zm = moments(z)
        am = zm if a is z else moments(a)
        raw["weight_std"][i] = weight_moments[i].std
        raw["preact_mean"][i], raw["preact_var"][i], raw["preact_sq"][i] = zm
        raw["act_mean"][i], raw["act_var"][i] = am.mean, am.var
        if layer.act.piecewise_linear:  # no saturation by definition: its flat side is "dead"
            raw["saturated_fraction"][i] = 0.0
        if math.isfinite(zm.second) and math.isfinite(am.second):
            raw["dead_fraction"][i] = dead_fraction(z) if layer.act.relu_family else 0.0
            raw["distinct_units"][i] = distinct_columns(z)
        else:  # overflowed: counting dead or equal units of inf/nan means nothing
            forward_finite = False
    target = make_target(settings.loss, stream(seed, trial, _TARGET_STREAM), h.shape, dtype)
    loss, grad = loss_and_grad(settings.loss, h, target)

    # An overflowed forward pass makes the loss not a number, so no gradient is defined: the
    # backward statistics stay nan rather than report what nan happens to turn into.
    for i in range(n - 1, -1, -1) if forward_finite else ():
        layer = layers[i]
        grad = layer.backward(grad)
        wm, dxm, dwm = weight_moments[i], moments(grad), moments(layer.dW)
        raw["grad_input_var"][i], raw["grad_input_sq"][i] = dxm.var, dxm.second
        raw["grad_weight_var"][i] = dwm.var
        raw["grad_weight_ratio"][i] = _ratio(math.sqrt(dwm.second), math.sqrt(wm.second))
        if not layer.act.piecewise_linear:
            raw["saturated_fraction"][i] = saturated_fraction(layer.dact, layer.act.max_derivative)
        layer.x = layer.z = layer.a = layer.dact = layer.dW = None  # free what is no longer needed
    raw["forward_gain"] = np.array([_ratio(s, raw["preact_sq"][0]) for s in raw["preact_sq"]])
    raw["backward_gain"] = np.array([_ratio(s, raw["grad_input_sq"][-1]) for s in raw["grad_input_sq"]])
    return raw, loss


def _ratio(num: float, den: float) -> float:
    """num/den, or nan when the reference is zero (undefined, which is not an overflow)."""
    return math.nan if den == 0 else num / den


# --- verdict --------------------------------------------------------------------------------------


def _layer_flags(stats: LayerStats, t: Thresholds) -> list[str]:
    flags = set()
    if not all(math.isfinite(getattr(stats, key)) for key in MEASURED_KEYS):
        flags.add("nonfinite")
    for gain, limit in ((stats.forward_gain, t.max_forward_gain), (stats.backward_gain, t.max_backward_gain)):
        if gain < 1.0 / limit:
            flags.add("vanishing")
        elif gain > limit:
            flags.add("exploding")
    if stats.dead_fraction > t.max_dead_fraction:
        flags.add("dead")
    if stats.saturated_fraction > t.max_saturated_fraction:
        flags.add("saturated")
    if stats.distinct_units < stats.fan_out:
        flags.add("symmetric")
    return [f for f in FLAGS if f in flags]


class _Finding(NamedTuple):
    """One kind of problem at one layer; `_reasons` keeps the worst layer of each kind."""

    kind: str  # groups findings: one sentence per kind
    flag: str  # the flag it is (or, for warn, is close to)
    severity: int  # order of the sentences: 0 first
    badness: float  # within a kind, the worst layer is the one reported
    layer: str
    sentence: str


def _findings(layers: list[LayerStats], t: Thresholds, warn: bool) -> list[_Finding]:
    """Every problem (or, with *warn*, every drift toward one) at every layer."""
    found: list[_Finding] = []
    overflow = next((x for x in layers if not math.isfinite(x.preact_var + x.act_var)), None)
    for s in layers:
        if not warn and "nonfinite" in s.flags:
            if overflow is not None:
                sentence = (
                    f"layer {overflow.name}: the forward pass overflows (inf/nan), so the loss and "
                    "every gradient are not numbers"
                )
                found.append(_Finding("nonfinite", "nonfinite", 0, 1.0, overflow.name, sentence))
            else:
                found.append(
                    _Finding(
                        "nonfinite",
                        "nonfinite",
                        0,
                        1.0,
                        s.name,
                        f"layer {s.name}: the backward pass overflows (inf/nan)",
                    )
                )
        for direction, limit in (("forward", t.max_forward_gain), ("backward", t.max_backward_gain)):
            g = getattr(s, f"{direction}_gain")
            if math.isnan(g) or g < 0:
                continue
            log_ratio = math.inf if g == 0 or math.isinf(g) else abs(math.log(g)) / math.log(limit)
            toward = "exploding" if g > 1 else "vanishing"
            bound = f"{limit:g}" if g > 1 else f"1/{limit:g}"
            gain = f"layer {s.name}: {direction} gain {format_number(g)}"
            if not warn and log_ratio > 1:
                sentence = f"{gain} {'>' if g > 1 else '<'} {bound} ({toward})"
                found.append(_Finding(f"{direction} {toward}", toward, 1, log_ratio, s.name, sentence))
            elif warn and WARN_FRACTION < log_ratio <= 1:
                sentence = f"{gain} is close to {toward} (limit {bound})"
                found.append(_Finding(f"{direction} {toward}", toward, 1, log_ratio, s.name, sentence))
        for key, flag, what, limit, severity in (
            ("dead_fraction", "dead", "of units dead", t.max_dead_fraction, 2),
            ("saturated_fraction", "saturated", "of activations saturated", t.max_saturated_fraction, 4),
        ):
            share = getattr(s, key)
            if (not warn and share > limit) or (warn and limit / 2 < share <= limit):
                sentence = f"layer {s.name}: {share:.0%} {what}" + ("" if warn else f" (> {limit:.0%})")
                found.append(_Finding(key, flag, severity, share, s.name, sentence))
        if not warn and "symmetric" in s.flags:
            units = f"{s.distinct_units:.4g} distinct unit{'s' if s.distinct_units != 1 else ''}"
            found.append(
                _Finding(
                    "symmetric",
                    "symmetric",
                    3,
                    1 - s.distinct_units / s.fan_out,
                    s.name,
                    f"layer {s.name}: {units} of {s.fan_out} (symmetric)",
                )
            )
    return found


def _reasons(layers: list[LayerStats], t: Thresholds) -> tuple[list[Reason], bool]:
    """Why the verdict is what it is: one sentence per kind of problem, naming its worst layer and
    how many more layers share it; the most severe first. Without problems, the same for drifts
    toward one (the warn band). Returns (reasons, whether only drifting)."""
    for warn in (False, True):
        by_kind: dict[str, list[_Finding]] = {}
        for finding in _findings(layers, t, warn):
            by_kind.setdefault(finding.kind, []).append(finding)
        if by_kind:
            worst = []
            for findings in by_kind.values():
                top = max(findings, key=lambda f: f.badness)
                layers_hit = {f.layer for f in findings}
                more = len(layers_hit) - 1
                if more and top.kind != "nonfinite":
                    top = top._replace(
                        sentence=f"{top.sentence}; {more} more layer{'s' if more > 1 else ''} too"
                    )
                worst.append(top)
            worst.sort(key=lambda f: (f.severity, -f.badness))
            return [Reason(f.flag, f.layer, f.sentence) for f in worst], warn
    return [], False


def _summarize(layers: list[LayerStats], losses: list[float], t: Thresholds, trials: int) -> Summary:
    flags = [f for f in FLAGS if any(f in s.flags for s in layers)]
    findings, drifting = _reasons(layers, t)
    verdict = "fail" if flags else ("warn" if drifting else "ok")
    sd = {}
    if trials > 1:
        sd = {
            "forward_gain": layers[-1].sd.get("forward_gain", math.nan),
            "backward_gain": layers[0].sd.get("backward_gain", math.nan),
            "loss": float(np.std(losses, ddof=1)),
        }
    return Summary(
        forward_gain=layers[-1].forward_gain,
        backward_gain=layers[0].backward_gain,
        loss=float(np.mean(losses)),
        verdict=verdict,
        flags=flags,
        findings=findings,
        worst_layer=findings[0].layer if findings else None,
        sd=sd,
    )


# --- public entry point ---------------------------------------------------------------------------


def check_settings(settings: ProbeSettings, spec: StackSpec) -> ProbeSettings:
    if not isinstance(settings.batch, int) or settings.batch < 1:
        raise InitdiagError(f"--batch must be a positive integer, got {settings.batch}")
    if not isinstance(settings.trials, int) or settings.trials < 1:
        raise InitdiagError(f"--trials must be a positive integer, got {settings.trials}")
    if not isinstance(settings.seed, int) or settings.seed < 0:
        raise InitdiagError(f"--seed must be a non-negative integer, got {settings.seed}")
    if settings.loss not in LOSSES:
        raise InitdiagError(f"unknown loss '{settings.loss}'; allowed: {', '.join(LOSSES)}")
    if settings.dtype not in DTYPES:
        raise InitdiagError(f"unknown dtype '{settings.dtype}'; allowed: {', '.join(DTYPES)}")
    settings.thresholds.check()
    if settings.loss == "xent" and spec.layers[-1].units < 2:
        raise InitdiagError("--loss xent needs at least 2 outputs (softmax over one class has no gradient)")
    return settings


def probe(
    spec: StackSpec | str | None = None,
    *,
    act: str = "relu",
    out_act: str = "linear",
    init: str = "he_normal",
    bias_init: str | None = None,
    batch: int = 256,
    seed: int = 0,
    trials: int = 1,
    loss: str = "unit",
    input: str = "normal",
    dtype: str = "float32",
    max_gain: float = 10.0,
    thresholds: Thresholds | None = None,
) -> ProbeResult:
    """Probe a stack and return a `ProbeResult` (nothing is printed).

    *spec* is a `StackSpec` or the ``--layers`` shorthand (``"784,256x8,10"``, first width = input);
    with the shorthand, *act*, *out_act*, *init* and *bias_init* set the stack's defaults.

    >>> r = probe("784,256,256,10", act="relu", init="he")
    >>> r.summary.verdict
    'ok'
    """
    if spec is None:
        raise InitdiagError("probe needs a stack: a StackSpec or a shorthand like '784,256,10'")
    if isinstance(spec, str):
        spec = parse_layers(spec, act=act, out_act=out_act, init=init, bias_init=bias_init)
    spec = spec.resolve()
    if thresholds is None:
        thresholds = Thresholds(max_forward_gain=max_gain, max_backward_gain=max_gain)
    source = get_input(input, spec.widths[0])
    settings = ProbeSettings(batch, seed, trials, loss, source.text, dtype, thresholds)
    return run_probe(spec, settings, source)


def run_probe(spec: StackSpec, settings: ProbeSettings, source: InputSource | None = None) -> ProbeResult:
    """Probe a resolved spec (`StackSpec.resolve`) with the given settings; `probe` ends here."""
    if source is None:
        source = get_input(settings.input, spec.widths[0])
    if source.array is not None:  # a file's rows are the batch
        settings = replace(settings, batch=int(source.array.shape[0]), input=source.text)
    check_settings(settings, spec)
    plan = _plan(spec, settings.dtype)
    for ctx, init, bias in zip(plan.contexts, plan.inits, plan.bias_inits, strict=True):
        init.check(ctx)
        bias.check(ctx)
    need = estimate_memory(
        spec.widths,
        settings.batch,
        settings.dtype,
        orthogonal=any(i.name in ("orthogonal", "lsuv") for i in plan.inits),
    )
    have = available_memory()
    if have is not None and need.total > have:
        raise InitdiagError(
            f"this stack needs about {format_bytes(need.total)} (weights and gradients "
            f"{format_bytes(need.weights)}, activations {format_bytes(need.activations)} at batch "
            f"{settings.batch}) but {format_bytes(have)} is available; use fewer or narrower layers "
            "or a smaller --batch"
        )

    n_weights = sum(math.prod(ctx.shape) for ctx in plan.contexts)
    workers = min(len(plan.contexts), os.cpu_count() or 1)
    pool = None
    if workers > 1 and n_weights >= _PARALLEL_MIN_WEIGHTS:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=workers)
    raws, losses = [], []
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for trial in range(settings.trials):
                raw, loss = _run_trial(plan, settings, source, trial, pool)
                raws.append(raw)
                losses.append(loss)
    finally:
        if pool is not None:
            pool.shutdown()

    with np.errstate(all="ignore"):
        stacked = {key: np.array([r[key] for r in raws]) for key in STAT_KEYS}
        means = {key: stacked[key].mean(axis=0) for key in STAT_KEYS}
        sds = {key: stacked[key].std(axis=0, ddof=1) for key in STAT_KEYS} if settings.trials > 1 else {}
    layers = []
    for i, (layer, ctx, init, bias) in enumerate(
        zip(spec.layers, plan.contexts, plan.inits, plan.bias_inits, strict=True)
    ):
        stats = LayerStats(
            name=layer.name,
            kind=layer.kind,
            fan_in=ctx.fans.fan_in,
            fan_out=ctx.fans.fan_out,
            act=layer.act,
            init=str(init),
            bias_init=str(bias),
            **{key: float(means[key][i]) for key in STAT_KEYS},
            sd={key: float(sds[key][i]) for key in sds},
        )
        stats.flags = _layer_flags(stats, settings.thresholds)
        layers.append(stats)
    summary = _summarize(layers, losses, settings.thresholds, settings.trials)
    return ProbeResult(spec=spec, settings=settings, layers=layers, summary=summary)
