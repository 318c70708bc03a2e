"""``initdiag coordcheck``: μP's coordinate check (Yang et al. 2022, Tensor Programs V; the ``mup``
package's ``get_coord_data``) with slopes and a verdict.

Train the stack a few steps at several widths, under each parametrization, and record each layer's
output size at every step (0 = init): ``l1`` = mean |x| (as mup records it), its std, and the change
since init, mean |x_t - x_0|, each averaged over seeds. For every layer and step the least-squares
slope of log2(l1) against log2(width), per seed, gives the slope (their mean) and its standard error
(their sd / sqrt(seeds); with one seed, the fit's own). A layer whose width scales is ``stable``
when |slope| <= tolerance (0.1) + 2 se, else it ``grows`` or ``shrinks``; a parametrization is ``ok``
only when every such layer is stable at every step.

The runs are independent: each width's runs (all seeds together, or one task per seed at large
widths) train as one batched computation (`initdiag.analysis.coordtrain`), and the tasks run on the
worker pool of ``sweep``, largest first.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..core.parametrizations import init_scale
from ..errors import InitdiagError, integer
from .coordjudge import LayerCoords, ParamCoords  # noqa: F401  (the public names live here too)
from .coordtransformer import TransformerStack, is_transformer, parse_transformer
from .result import SCHEMA_VERSION

OPTIMIZERS = ("sgd", "momentum", "adam")
LOSSES = ("xent", "mse")
DATA = ("random", "circles", "moons", "spiral")
VERDICTS = ("stable", "grows", "shrinks", "zero", "nonfinite", "fixed")
FLAGS = ("grows", "shrinks", "nonfinite", "zero", "diverged")  # what --fail-on may name
MAX_STEPS = 1000
MAX_SEEDS = 100
MAX_WIDTHS = 32
SPLIT_MADDS = 2e8  # a width whose one seed costs more multiply-adds per step than this: a task per seed
POOL_MADDS = 2e9  # below this many multiply-adds in all, run here (a pool costs ~0.2 s to start)
LOWER = "lower --widths, --steps, --seeds or --batch, or use fewer --param values or narrower --layers"
ADAM_EPSILON = 1e-8


@dataclass
class CoordSettings:
    """What ``initdiag coordcheck`` trains: the stack (``W`` marks the widths that scale), the widths
    W takes, the parametrizations, and how each run is trained and judged."""

    layers: str = "64,W,W,W,10"
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024, 2048])
    params: list[str] = field(default_factory=lambda: ["sp", "mup"])
    act: str = "relu"
    init: str = "he"
    bias_init: str = "zeros"
    optimizer: str = "adam"
    lr: float = 1e-3
    steps: int = 5
    seeds: int = 3
    seed: int = 0
    batch: int = 64
    loss: str = "xent"
    data: str = "random"
    base_width: int | None = None  # default: the narrowest of widths
    tolerance: float = 0.1
    dtype: str = "float32"
    jobs: int | None = None

    def check(self) -> CoordSettings:
        for key, choices in (
            ("optimizer", OPTIMIZERS),
            ("loss", LOSSES),
            ("data", DATA),
            ("dtype", ("float32", "float64")),
        ):
            if getattr(self, key) not in choices:
                raise InitdiagError(f"--{key} '{getattr(self, key)}' is not one of {', '.join(choices)}")
        integer("--steps", self.steps, 1, MAX_STEPS)
        integer("--seeds", self.seeds, 1, MAX_SEEDS)
        integer("--seed", self.seed, 0)
        integer("--batch", self.batch, 1)
        if self.jobs is not None:
            integer("--jobs", self.jobs)
        if not (
            isinstance(self.lr, int | float)
            and not isinstance(self.lr, bool)
            and self.lr > 0
            and math.isfinite(self.lr)
        ):
            raise InitdiagError(f"--lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.tolerance, int | float) and 0 <= self.tolerance < math.inf):
            raise InitdiagError(f"--tolerance must be a number >= 0, got {self.tolerance!r}")
        if not isinstance(self.widths, list | tuple) or len(self.widths) < 2:
            raise InitdiagError("--widths needs at least two widths, e.g. 64,128,256,512")
        for w in self.widths:
            integer("--widths", w)
        if len(set(self.widths)) < len(self.widths):
            raise InitdiagError("--widths lists a width twice")
        if len(self.widths) > MAX_WIDTHS:
            raise InitdiagError(f"--widths: at most {MAX_WIDTHS} widths, got {len(self.widths)}")
        if self.base_width is not None:
            integer("--base-width", self.base_width)
        return self

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        del out["jobs"]  # how, not what: the numbers do not depend on it
        return out


@dataclass
class Stack:
    """The stack with ``W`` resolved: per width token, the fixed width or the multiple of W."""

    tokens: list[tuple[int, bool]]  # (width or multiple, scales)

    def widths(self, n: int) -> list[int]:
        return [k * n if scales else k for k, scales in self.tokens]

    def label(self) -> str:
        return " → ".join((f"{k}W" if k > 1 else "W") if s else str(k) for k, s in self.tokens)

    def scales(self, i: int) -> bool:
        return self.tokens[i][1]

    def layer_infos(self) -> list[tuple[str, str, str]]:
        """(name, shape, role) of each recorded layer: dense1, ``64 → W``, input; ..."""
        from ..core.parametrizations import role_of

        return [
            (f"dense{i + 1}", f"{_token(self.tokens[i])} → {_token(self.tokens[i + 1])}",
             role_of(self.scales(i), self.scales(i + 1)))
            for i in range(len(self.tokens) - 1)
        ]  # fmt: skip


def _token(token: tuple[int, bool]) -> str:
    k, scales = token
    return (f"{k}W" if k > 1 else "W") if scales else str(k)


def parse_stack(text: str) -> Stack | TransformerStack:
    """``64,W,W,W,10`` (``W`` scales with width, ``2W`` twice it, ``Wx3`` repeats): the input and the
    output stay fixed (the data and the classes), at least one hidden width scales. Or a transformer,
    ``transformer:d=W,heads=4,blocks=2,seq=16,vocab=64`` (`coordtransformer.parse_transformer`)."""
    if is_transformer(text):
        return parse_transformer(text)
    shown = str(text).strip()
    tokens: list[tuple[int, bool]] = []
    for raw in shown.split(","):
        item = raw.strip().lower()
        base, sep, count = item.partition("x") if item.count("x") == 1 else (item, "", "")
        repeat = _number(count, shown, item) if sep else 1
        if base.endswith("w"):
            tokens += [(_number(base[:-1], shown, item) if base[:-1] else 1, True)] * repeat
        else:
            tokens += [(_number(base, shown, item), False)] * repeat
    if len(tokens) < 3:
        raise InitdiagError(f"--layers '{shown}': give the input, at least one hidden width W and the output")
    if tokens[0][1] or tokens[-1][1]:
        raise InitdiagError(
            f"--layers '{shown}': the input and output widths are fixed (the data and the classes); "
            "W marks hidden widths, e.g. 64,W,W,10"
        )
    if not any(s for _, s in tokens):
        raise InitdiagError(f"--layers '{shown}': mark the widths that scale with W, e.g. 64,W,W,W,10")
    return Stack(tokens)


def _number(token: str, shown: str, item: str) -> int:
    if not (token.isascii() and token.isdigit()) or int(token) < 1:
        raise InitdiagError(
            f"--layers '{shown}': '{item}' is not a width; write positive integers, W (the width that "
            "scales), 2W, or repeat one as Wx3"
        )
    return int(token)


# --- results --------------------------------------------------------------------------------------


@dataclass
class CoordReport:
    settings: CoordSettings
    stack: str
    widths: list[int]
    base_width: int
    results: list[ParamCoords]

    @property
    def flags(self) -> set[str]:
        return {flag for result in self.results for flag in result.flags}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "initdiag_version": __version__,
            "settings": self.settings.to_dict(),
            "stack": self.stack,
            "widths": list(self.widths),
            "base_width": self.base_width,
            "results": [r.to_dict(self.widths) for r in self.results],
        }


# --- the experiment -------------------------------------------------------------------------------


def coordcheck(settings: CoordSettings) -> CoordReport:
    """Train ``settings.layers`` at every width of ``settings.widths`` under each parametrization,
    ``settings.seeds`` times, on one fixed batch; the records, slopes and verdicts. Bad input and work
    estimated past the time or memory limit are refused before anything is drawn."""
    from ..core.init_parser import get_initializer
    from ..core.parametrizations import get_parametrization
    from .coordtrain import make_data, run_task
    from .workers import run_all

    if not isinstance(settings, CoordSettings):
        raise InitdiagError(f"settings must be a CoordSettings, got {type(settings).__name__}")
    settings.check()
    stack = parse_stack(settings.layers)
    widths = sorted(int(w) for w in settings.widths)
    params = [get_parametrization(text) for text in _names("--param", settings.params)]
    if len({str(p) for p in params}) < len(params):
        raise InitdiagError("--param lists a parametrization twice")
    init, bias_init = get_initializer(settings.init), get_initializer(settings.bias_init)
    for option, initializer in (("--init", init), ("--bias-init", bias_init)):
        if initializer.data_driven or initializer.name == "file":
            raise InitdiagError(
                f"{option} '{initializer}': coordcheck draws new weights at every width, so a data-driven or "
                "file initializer has nothing to scale; use he, xavier, torch_default, normal:0.02, ..."
            )
    base = settings.base_width or widths[0]
    if isinstance(stack, TransformerStack):
        from .coordtransformer import transformer_records

        records = transformer_records(stack, widths, base, params, init, settings)
        return _report(settings, stack, widths, base, params, records)
    out = stack.tokens[-1][0]
    _check_data(settings, stack.tokens[0][0], out)
    layouts = {n: _layout(stack, n, base, params, init, bias_init, settings) for n in widths}
    tasks, places = _tasks(stack, widths, layouts, params, settings)
    workers = _workers(settings, stack, widths, len(params), len(tasks))
    _check_budget(settings, stack, widths, tasks, workers)
    X, Y, _ = make_data(
        settings.data, settings.batch, stack.tokens[0][0], out, settings.loss, settings.seed, None
    )
    options = {
        "steps": settings.steps,
        "dtype": settings.dtype,
        "optimizer": settings.optimizer,
        "loss": settings.loss,
        "seed": settings.seed,
    }
    outcomes = run_all(run_task, [(layout, init, bias_init, (X, Y), options) for layout in tasks], workers)
    P, S, W, L, T = len(params), settings.seeds, len(widths), len(stack.tokens) - 1, settings.steps + 1
    records = np.full((4, P, S, W, L, T), np.nan)
    for (w, runs), (l1, std, delta, loss) in zip(places, outcomes, strict=True):
        for r, (p, s) in enumerate(runs):
            records[0, p, s, w], records[1, p, s, w], records[2, p, s, w] = l1[r], std[r], delta[r]
            records[3, p, s, w, 0] = loss[r]
    return _report(settings, stack, widths, base, params, records)


def _report(
    settings: CoordSettings, stack, widths: list[int], base: int, params: list, records
) -> CoordReport:
    """Slopes and verdicts from the records (4: l1, std, delta, loss; params, seeds, widths, layers,
    steps + 1)."""
    from .coordjudge import judge

    results = [judge(settings, stack, widths, param, records[:, p]) for p, param in enumerate(params)]
    return CoordReport(settings, stack.label(), widths, base, results)


def _names(option: str, values) -> list[str]:
    from .compare import names_list

    names = names_list(option, values)
    if not names:
        raise InitdiagError(f"{option} needs at least one parametrization: sp, mup, ntk, mean_field")
    return names


def _check_data(settings: CoordSettings, d_in: int, out: int) -> None:
    if settings.data == "random":
        return
    from .train import CLASSES

    classes = CLASSES[settings.data]
    if d_in != 2:
        raise InitdiagError(f"--data {settings.data} is 2-D: the input width must be 2, got {d_in}")
    if (out != 1 and out < classes) or (out == 1 and classes > 2):
        raise InitdiagError(
            f"--data {settings.data} has {classes} classes: the output width must be "
            + ("1 (binary cross-entropy) or at least 2" if classes == 2 else f"at least {classes}")
        )


def _layout(stack: Stack, n: int, base: int, params: list, init, bias_init, settings: CoordSettings):
    """Every run's scales, learning rates and epsilons at width *n* (runs r = p * seeds + s)."""
    from ..core.activations import get_activation
    from ..core.initializers import LayerContext, compute_fans
    from ..core.parametrizations import bias_role, role_of
    from .coordtrain import Layout

    widths, base_widths = stack.widths(n), stack.widths(base)
    layers, m = len(widths) - 1, n / base
    acts = [settings.act] * (layers - 1) + ["linear"]
    runs = [(p, s) for p in range(len(params)) for s in range(settings.seeds)]
    shape = (len(runs), layers)
    scale_w, scale_b, lr_w, lr_b = (np.ones(shape) for _ in range(4))
    eps_w, eps_b = np.full(shape, ADAM_EPSILON), np.full(shape, ADAM_EPSILON)
    for i in range(layers):
        act = get_activation(acts[i])

        def ctx(fan_in, fan_out, i=i, act=act):
            return LayerContext(
                f"dense{i + 1}", (fan_in, fan_out), compute_fans((fan_in, fan_out)), act, np.dtype("float64")
            )

        real, at_base = ctx(widths[i], widths[i + 1]), ctx(base_widths[i], base_widths[i + 1])
        init.check(real)
        bias_real, bias_base = (
            real._replace(shape=(widths[i + 1],)),
            at_base._replace(shape=(base_widths[i + 1],)),
        )
        role, brole = role_of(stack.scales(i), stack.scales(i + 1)), bias_role(stack.scales(i + 1))
        for r, (p, _) in enumerate(runs):
            param = params[p]
            if not param.own_init:
                scale_w[r, i] = init_scale(
                    init, real, at_base, param.variance_factor(role, m), "--init", param
                )
                scale_b[r, i] = init_scale(
                    bias_init, bias_real, bias_base, param.variance_factor(brole, m), "--bias-init", param
                )
                if param.zero_readout and role == "output":
                    scale_b[r, i] = 0.0
            lr_w[r, i] = settings.lr * param.lr_factor(role, m, settings.optimizer)
            lr_b[r, i] = settings.lr * param.lr_factor(brole, m, settings.optimizer)
            eps_w[r, i] *= param.eps_factor(role, m)
            eps_b[r, i] *= param.eps_factor(brole, m)
    seeds = [s for _, s in runs]
    return Layout(n, widths, base_widths, acts, seeds, scale_w, scale_b, lr_w, lr_b, eps_w, eps_b), runs


def _tasks(stack: Stack, widths: list[int], layouts: dict, params: list, settings: CoordSettings):
    """The tasks (a `Layout` each), largest first, and where each one's runs go: (width index, runs)."""
    from dataclasses import replace

    from .coordtrain import madds

    tasks = []
    for w, n in enumerate(widths):
        layout, runs = layouts[n]
        cost = settings.batch * madds(layout.widths) * len(params)
        groups = (
            [[s] for s in range(settings.seeds)] if cost >= SPLIT_MADDS else [list(range(settings.seeds))]
        )
        for group in groups:
            keep = [r for r, (_, s) in enumerate(runs) if s in group]
            part = replace(
                layout,
                seeds=[layout.seeds[r] for r in keep],
                **{
                    key: getattr(layout, key)[keep]
                    for key in (
                        "weight_scale",
                        "bias_scale",
                        "weight_lr",
                        "bias_lr",
                        "weight_eps",
                        "bias_eps",
                    )
                },
            )
            tasks.append((cost * len(group), part, (w, [runs[r] for r in keep])))
    tasks.sort(key=lambda task: -task[0])
    return [t[1] for t in tasks], [t[2] for t in tasks]


def _total_madds(settings: CoordSettings, stack: Stack, widths: list[int], n_params: int) -> float:
    from .coordtrain import madds

    per_step = sum(madds(stack.widths(n)) for n in widths) * settings.batch * n_params * settings.seeds
    return 3.0 * per_step * (settings.steps + 1)


def _workers(settings: CoordSettings, stack: Stack, widths: list[int], n_params: int, n_tasks: int) -> int:
    if settings.jobs is not None:
        return min(settings.jobs, n_tasks)
    if _total_madds(settings, stack, widths, n_params) < POOL_MADDS:
        return 1
    return min(os.cpu_count() or 1, n_tasks)


def _check_budget(
    settings: CoordSettings, stack: Stack, widths: list[int], tasks: list, workers: int
) -> None:
    from .budget import refuse_long, train_seconds
    from .coordtrain import task_bytes
    from .probe import available_memory, format_bytes

    seconds = (
        sum(
            train_seconds(t.widths, len(t.seeds), settings.batch, settings.steps + 1, settings.dtype, 1)
            for t in tasks
        )
        / workers
    )
    refuse_long(seconds, f"this coordcheck ({len(widths)} widths up to {widths[-1]:,})", LOWER)
    sizes = sorted(
        (
            task_bytes(
                t.widths, len(t.seeds), len(set(t.seeds)), settings.batch, settings.optimizer, settings.dtype
            )
            for t in tasks
        ),
        reverse=True,
    )
    need, have = sum(sizes[:workers]), available_memory()
    if have is not None and need > have:
        raise InitdiagError(
            f"this coordcheck needs about {format_bytes(need)} ({workers} task{'s' if workers > 1 else ''} "
            f"at once, width {widths[-1]:,}) but {format_bytes(have)} is available; {LOWER}"
        )
