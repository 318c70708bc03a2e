"""``initdiag train``: the classic experiment. Train the same small network from several
initializations on a 2-D toy set and compare how they learn (the deeplearning.ai "Initialization"
exercise; Glorot & Bengio 2010; He et al. 2015).

Every run (initializer x trial) trains at once as one batched computation: each layer's weights are
stacked along a leading run axis, (runs, fan_out, fan_in + 1) with the bias as the last column, and
every step is a batched matrix product per layer on buffers allocated once; big jobs split the runs
over a few processes. 60 runs cost about 6 one-run times (benchmarks/train.py). Full-batch gradient
descent (or momentum, Adam) on binary cross-entropy of a sigmoid output (``circles``, ``moons``) or
softmax cross-entropy (``spiral``, 3 classes). Trial ``t`` draws its data from
``SeedSequence(seed, spawn_key=(t, 4))`` and layer ``l``'s weights from ``(t, 2, l)``, the same for
every initializer, so initializers are compared on the same points and the same random numbers.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..core.activations import Activation, get_activation
from ..errors import InitdiagError, integer, keyword_names
from .batched import Network, Optimizer, Workspace, loss_and_grad, predict, targets
from .budget import MAX_TRIALS, TRIALS_HINT, refuse_long, train_seconds
from .result import SCHEMA_VERSION
from .result import format_number as fmt
from .toy_data import NOISE, Dataset, make_dataset

DATASETS = ("circles", "moons", "spiral")
OPTIMIZERS = ("sgd", "momentum", "adam")
DEFAULT_LAYERS = {"circles": "2,10,5,1", "moons": "2,10,5,1", "spiral": "2,100,3"}
CLASSES = {"circles": 2, "moons": 2, "spiral": 3}
CLASSIC_INITS = "zeros,normal:10,normal:0.1,normal:0.333,he,xavier"
_DATA_STREAM = 4
PROCESS_MIN_STEPS = 500_000_000  # runs x samples x units x iterations: ~0.7 s of work on one core
CURVE_POINTS = 100  # loss values recorded along the way
TRAIN_LOWER = "lower --iters, --trials or --n-train, or train fewer initializers or narrower --layers"
DIVERGED_GROWTH = 1.1  # a final loss more than 10% above the initial one: training made it worse


# --- datasets -------------------------------------------------------------------------------------


# --- settings and results -------------------------------------------------------------------------


@dataclass
class TrainSettings:
    """What ``initdiag train`` does: the data, the network, and how it is optimized."""

    dataset: str = "circles"
    layers: str = "2,10,5,1"
    act: str = "relu"
    iters: int = 15000
    lr: float = 0.01
    optimizer: str = "sgd"
    clip: float | None = None  # max global gradient norm per run
    warmup: int = 0  # steps of linear learning-rate warm-up
    weight_decay: float = 0.0  # L2: weight_decay * W added to dL/dW (biases exempt), as torch.optim
    trials: int = 1
    seed: int = 0
    n_train: int = 300
    n_test: int = 100
    noise: float | None = None  # default per dataset (NOISE)
    dtype: str = "float32"  # the training arithmetic; losses are reported in float64
    jobs: int | None = None  # processes the runs are split over (default: one per core for big jobs)

    def check(self) -> TrainSettings:
        if self.dataset not in DATASETS:
            raise InitdiagError(f"--dataset '{self.dataset}' is not one of {', '.join(DATASETS)}")
        if self.optimizer not in OPTIMIZERS:
            raise InitdiagError(f"--optimizer '{self.optimizer}' is not one of {', '.join(OPTIMIZERS)}")
        for key, low in (("iters", 1), ("n_train", 2), ("n_test", 1), ("seed", 0), ("warmup", 0)):
            integer(f"--{key.replace('_', '-')}", getattr(self, key), low)
        integer("--trials", self.trials, 1, MAX_TRIALS, TRIALS_HINT)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InitdiagError(f"--lr must be a positive number, got {self.lr:g}")
        if self.clip is not None and not self.clip > 0:
            raise InitdiagError(f"--clip must be a positive number, got {self.clip:g}")
        if not self.weight_decay >= 0:
            raise InitdiagError(f"--weight-decay must be >= 0, got {self.weight_decay:g}")
        if self.dtype not in ("float32", "float64"):
            raise InitdiagError(f"--dtype '{self.dtype}' is not one of float32, float64")
        if self.jobs is not None:
            integer("--jobs", self.jobs)
        if self.noise is not None and not self.noise >= 0:
            raise InitdiagError(f"--noise must be >= 0, got {self.noise:g}")
        return self

    @property
    def noise_std(self) -> float:
        return NOISE[self.dataset] if self.noise is None else self.noise

    def to_dict(self) -> dict[str, Any]:
        out = {**self.__dict__, "noise": self.noise_std}
        del out["jobs"]  # how, not what: the numbers do not depend on it
        return out


@dataclass
class TrainResult:
    """One initializer's runs: per trial the numbers, and their mean and spread."""

    init: str
    label: str
    initial_loss: np.ndarray  # (trials,)
    final_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    loss_curve: np.ndarray  # (trials, points)
    curve_iters: np.ndarray  # (points,) the iteration of each point (0 = before training)
    symmetric: np.ndarray  # (trials,) bool: some hidden layer's units still identical
    verdict: str = ""
    models: list = field(default_factory=list, repr=False)  # per trial: [(W, b), ...] after training

    @staticmethod
    def _mean(x: np.ndarray) -> float:
        return float(np.mean(x))

    @staticmethod
    def _sd(x: np.ndarray) -> float:
        return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"init": self.init, "label": self.label}
        for key in ("initial_loss", "final_loss", "train_accuracy", "test_accuracy"):
            values = getattr(self, key)
            out[key] = self._mean(values)
            if len(values) > 1:
                out[f"{key}_sd"] = self._sd(values)
        out["verdict"] = self.verdict
        out["symmetric"] = bool(np.all(self.symmetric))
        out["loss_curve"] = [float(v) for v in np.mean(self.loss_curve, axis=0)]
        out["loss_curve_iters"] = [int(i) for i in self.curve_iters]
        return out


@dataclass
class TrainReport:
    settings: TrainSettings
    results: list[TrainResult]
    data: list[Dataset] = field(default_factory=list, repr=False)  # per trial

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "initdiag_version": __version__,
            "settings": self.settings.to_dict(),
            "results": [r.to_dict() for r in self.results],
        }


# --- the batched network ---------------------------------------------------------------------------


# --- the experiment -------------------------------------------------------------------------------


def _widths(settings: TrainSettings) -> list[int]:
    from ..network.shorthand import parse_widths

    widths = parse_widths(settings.layers)
    classes = CLASSES[settings.dataset]
    want = 1 if classes == 2 else classes
    if widths[0] != 2:
        raise InitdiagError(
            f"--layers '{settings.layers}': the toy sets are 2-D, so the input width must be 2"
        )
    if widths[-1] != want:
        what = "one sigmoid output" if classes == 2 else f"{classes} outputs (softmax over the classes)"
        raise InitdiagError(
            f"--layers '{settings.layers}': {settings.dataset} needs {what}, so the last width must be {want}"
        )
    return widths


def _sample(inits: list, widths: list[int], act: Activation, trial_seeds: list[int], seed: int):
    """Stacked weights and biases, run r = (init i, trial t) at r = i * trials + t; lsuv runs marked."""
    from ..core.initializers import LayerContext, compute_fans
    from .inputs import stream
    from .probe import _default_bias

    trials = len(trial_seeds)
    linear = get_activation("linear")
    Ws, bs = [], []
    for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        shape = (fan_in, fan_out)
        layer_act = linear if layer == len(widths) - 2 else act
        ctx = LayerContext(f"dense{layer + 1}", shape, compute_fans(shape), layer_act, np.dtype("float64"))
        W = np.empty((len(inits) * trials, fan_out, fan_in))
        b = np.empty((len(inits) * trials, fan_out, 1))
        for i, init in enumerate(inits):
            init.check(ctx)
            bias = _default_bias(init)
            for t in range(trials):
                rng = stream(seed, t, 2, layer)
                W[i * trials + t] = init.sample(rng, ctx).T  # drawn (fan_in, fan_out) as everywhere
                b[i * trials + t, :, 0] = bias.sample(rng, ctx._replace(shape=(fan_out,)))
        Ws.append(W)
        bs.append(b)
    return Ws, bs


def _lsuv(net: Network, X: np.ndarray, runs: np.ndarray, tol: float, max_iter: int) -> None:
    """Mishkin & Matas 2015 on the training data: each layer of the marked runs, in order, rescaled
    until its pre-activation variance is within *tol* of 1."""
    h = X
    for i, W in enumerate(net.Ws):
        for _ in range(max_iter):
            z = W @ h + net.bs[i]
            var = z[runs].var(axis=(1, 2))
            if np.all(np.abs(var - 1) < tol) or not np.all(np.isfinite(var) & (var > 0)):
                break
            W[runs] /= np.sqrt(var)[:, None, None]
        z = W @ h + net.bs[i]
        h = z if i == len(net.Ws) - 1 else net.act(z)


@keyword_names({"--init": "inits"})
def train(inits: list[str], settings: TrainSettings) -> TrainReport:
    """Train the network of *settings* from each initializer in *inits* (a list, or one
    comma-separated string as ``--init`` takes), ``settings.trials`` times each (the same data and
    random numbers for every initializer within a trial), all at once. Work estimated past the time
    limit (`initdiag.analysis.budget`) is refused before anything is trained."""
    from ..core.init_parser import get_initializer
    from .compare import names_list

    if not isinstance(settings, TrainSettings):
        raise InitdiagError(f"settings must be a TrainSettings, got {type(settings).__name__}")
    settings.check()
    inits = names_list("--init", inits)
    if not inits:
        raise InitdiagError("train needs at least one initializer: --init he,xavier")
    widths = _widths(settings)
    act = get_activation(settings.act)
    parsed = [get_initializer(text) for text in inits]
    classes = CLASSES[settings.dataset]
    trials = settings.trials
    runs = len(parsed) * trials
    _check_memory(settings, widths, runs, orthogonal=any(p.name in ("orthogonal", "lsuv") for p in parsed))
    workers = settings.jobs or min(os.cpu_count() or 1, runs)
    seconds = train_seconds(
        widths, runs, max(settings.n_train, settings.n_test), settings.iters, settings.dtype, workers
    )
    what = f"training {runs} run{'s' if runs > 1 else ''} of {settings.layers} for {settings.iters:,} steps"
    refuse_long(seconds, what, TRAIN_LOWER)
    data = [
        make_dataset(
            settings.dataset, settings.n_train, settings.n_test, settings.noise_std, _data_rng(settings, t)
        )
        for t in range(trials)
    ]
    # run r = init i, trial t sits at r = i * trials + t and trains on trial t's data
    dtype = np.dtype(settings.dtype)
    X = np.stack([data[r % trials].X_train.T for r in range(runs)]).astype(dtype)  # (R, 2, N)
    Y = np.stack([targets(data[r % trials].y_train, classes) for r in range(runs)]).astype(dtype)
    Ws, bs = _sample(parsed, widths, act, list(range(trials)), settings.seed)
    net = Network([W.astype(dtype) for W in Ws], [b.astype(dtype) for b in bs], act)  # drawn in float64
    del Ws, bs
    lsuv_runs = np.array([parsed[r // trials].data_driven for r in range(runs)])
    if lsuv_runs.any():
        init = next(p for p in parsed if p.data_driven)
        _lsuv(net, X, lsuv_runs, init.tol, init.max_iter)

    checkpoints = sorted({0, *np.linspace(0, settings.iters, CURVE_POINTS + 1).astype(int).tolist()})
    # runs are independent: in chunks on a few processes when the job is big enough to pay for them
    steps = runs * settings.n_train * sum(widths[1:]) * settings.iters
    jobs = settings.jobs or min(os.cpu_count() or 1, max(1, steps // PROCESS_MIN_STEPS))
    chunks = [c for c in np.array_split(np.arange(runs), min(jobs, runs)) if len(c)]
    parts = [slice(c[0], c[-1] + 1) for c in chunks]
    tasks = [
        ([p[part] for p in net.params], X[part], Y[part], settings, classes, checkpoints) for part in parts
    ]
    from .workers import run_all

    curve = np.empty((runs, len(checkpoints)))
    logits = np.empty_like(Y)
    for part, (params, part_curve, part_logits) in zip(
        parts, run_all(_fit_runs, tasks, len(parts)), strict=True
    ):
        for p, trained in zip(net.params, params, strict=True):
            p[part] = trained  # from a worker; in this process, the same memory
        curve[part], logits[part] = part_curve, part_logits
    with np.errstate(all="ignore"):
        train_acc = (
            predict(logits, classes) == np.stack([data[r % trials].y_train for r in range(runs)])
        ).mean(1)
        X_test = np.stack([data[r % trials].X_test.T for r in range(runs)])
        y_test = np.stack([data[r % trials].y_test for r in range(runs)])
        test_acc = (predict(net.forward(X_test)[0], classes) == y_test).mean(axis=1)
    symmetric = _symmetric(net.params)
    results = []
    for i, (text, init) in enumerate(zip(inits, parsed, strict=True)):
        own = slice(i * trials, (i + 1) * trials)
        result = TrainResult(
            init=str(init),
            label=text,
            initial_loss=curve[own, 0],
            final_loss=curve[own, -1],
            train_accuracy=train_acc[own],
            test_accuracy=test_acc[own],
            loss_curve=curve[own],
            curve_iters=np.array(checkpoints),
            symmetric=symmetric[own],
            models=[[(p[r, :, :-1].T.copy(), p[r, :, -1].copy()) for p in net.params]
                    for r in range(i * trials, (i + 1) * trials)],
        )  # fmt: skip
        result.verdict = verdict(result, classes)
        results.append(result)
    return TrainReport(settings, results, data)


def estimate_memory(settings: TrainSettings, widths: list[int], runs: int, orthogonal: bool = False):
    """Peak bytes `train` needs for *runs* runs of *widths*, before anything is allocated:
    (weights, activations). Weights: the float64 draw, the parameters, their gradients, the
    optimizer's state, an update's temporary and a worker's pickled copy; activations: a step's
    buffers for every run (the inputs with their row of ones, z, relu's zeros and masks) and the
    loss's float64 temporaries, at the larger of the train and test sets; plus 10% slack."""
    item = np.dtype(settings.dtype).itemsize
    layers = list(itertools.pairwise(widths))
    params = sum((fan_in + 1) * fan_out for fan_in, fan_out in layers)
    states = {"sgd": 0, "momentum": 1, "adam": 2}[settings.optimizer]
    weights = runs * params * (8 + item * (5 + states))
    if orthogonal:  # QR of the largest matrix in float64
        weights += 3 * 8 * max(fan_in * fan_out for fan_in, fan_out in layers)
    per_sample = sum(fan_in + 1 + fan_out for fan_in, fan_out in layers) * item
    per_sample += sum(widths[1:-1]) * (item + 1)  # relu's zeros and masks (other activations' temporaries)
    per_sample += 4 * widths[-1] * 8 + 2 * 8  # the loss, the data
    activations = runs * max(settings.n_train, settings.n_test) * per_sample
    return int(1.1 * weights), int(1.1 * activations) + (8 << 20)


def _check_memory(settings: TrainSettings, widths: list[int], runs: int, orthogonal: bool) -> None:
    from .probe import available_memory, format_bytes

    weights, activations = estimate_memory(settings, widths, runs, orthogonal)
    have = available_memory()
    if have is not None and weights + activations > have:
        raise InitdiagError(
            f"training {runs} runs of {settings.layers} needs about {format_bytes(weights + activations)} "
            f"(weights, gradients and optimizer state {format_bytes(weights)}, activations "
            f"{format_bytes(activations)} at {max(settings.n_train, settings.n_test)} samples) but "
            f"{format_bytes(have)} is available; use fewer initializers or --trials, narrower --layers "
            "or a smaller --n-train"
        )


def _data_rng(settings: TrainSettings, trial: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(trial, _DATA_STREAM)))


def _fit_runs(params: list[np.ndarray], X, Y, settings: TrainSettings, classes: int, checkpoints: list[int]):
    """Train the runs whose parameters are *params* (module level, so that a worker process can
    run it): the trained parameters, the loss of each run at each checkpoint, the final logits."""
    net = Network.of(params, get_activation(settings.act))
    curve, logits = _fit(net, X, Y, settings, classes, checkpoints)
    return net.params, curve, logits


def _fit(net: Network, X, Y, settings: TrainSettings, classes: int, checkpoints: list[int]):
    """Train *net* in place; the loss of each run at each checkpoint and the final logits."""
    optimizer = Optimizer(settings, net.params)
    curve = np.empty((len(X), len(checkpoints)))
    k = 0
    work = Workspace(net, X)
    decay = net.params[0].dtype.type(settings.weight_decay)
    with np.errstate(all="ignore"):
        for step in range(settings.iters + 1):
            logits, _ = net.forward(work=work)
            record = k < len(checkpoints) and step == checkpoints[k]
            loss, dlogits = loss_and_grad(logits, Y, classes, value=record)
            if record:
                curve[:, k] = loss
                k += 1
            if step == settings.iters:
                return curve, logits
            grads = net.backward(dlogits, work)
            if decay:  # on the weights, not the biases
                for g, p in zip(grads, net.params, strict=True):
                    g[:, :, :-1] += decay * p[:, :, :-1]
            optimizer.step(grads, step + 1)
    raise AssertionError("unreachable")


def _symmetric(params: list[np.ndarray]) -> np.ndarray:
    """(R,) whether some hidden layer of each run still has all its units identical: the same
    incoming weights and bias (a row of ``params[l]``; relative tolerance 1e-9 of the layer's scale)."""
    out = np.zeros(len(params[0]), dtype=bool)
    for units in params[:-1]:  # (R, units, fan_in + 1)
        if units.shape[1] < 2:
            continue
        spread = np.abs(units - units[:, :1, :]).max(axis=(1, 2))
        scale = np.abs(units).max(axis=(1, 2))
        out |= spread <= 1e-9 * np.maximum(scale, 1e-300)
    return out


def verdict(result: TrainResult, classes: int) -> str:
    """The outcome in words, from the means over trials."""
    chance = 1.0 / classes
    initial, final = float(np.mean(result.initial_loss)), float(np.mean(result.final_loss))
    test = float(np.mean(result.test_accuracy))
    if not math.isfinite(final):
        return "diverged: the loss is not a number"
    if final > DIVERGED_GROWTH * initial:
        return f"diverged: loss {fmt(initial)} -> {fmt(final)}, {test:.0%} test"
    if np.all(result.symmetric):
        return f"never broke symmetry: hidden units stay identical ({test:.0%} test)"
    if test >= 0.9:
        return f"learned: {test:.0%} test accuracy"
    curve = np.mean(result.loss_curve, axis=0)
    tail = curve[-len(curve) // 10 - 1]  # the loss 10% of the way before the end
    if final < 0.99 * tail:
        return f"still learning slowly: loss {fmt(initial)} -> {fmt(final)}, {test:.0%} test"
    if final > 0.95 * initial or test <= chance + 0.05:
        return f"stalled: loss {fmt(initial)} -> {fmt(final)}, {test:.0%} test"
    return f"stuck at {test:.0%} test accuracy"
