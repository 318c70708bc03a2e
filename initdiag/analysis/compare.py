"""Many probes at once: `compare` (candidate initializers and/or activations on one stack, side by
side) and `sweep` (a grid of stacks: initializer x depth, or activation x initializer, one cell each).

Each candidate and each cell is exactly the single probe ``initdiag probe`` would run with the same
options and seed, so the numbers agree with it; sweep cells run on a process pool and come back in
grid order, so a parallel sweep equals a serial one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from .._version import __version__
from ..errors import InitdiagError, gain_limit, integer, keyword_names
from ..network.job import job
from ..network.settings import PROBE_DEFAULTS, CheckSettings, ProbeSettings
from ..network.stack import StackSpec
from .asked import file_batch_note, note_file_batch, spec_batch
from .budget import PROBE_LOWER, probe_seconds, refuse_long
from .result import SCHEMA_VERSION, ProbeResult

VERDICT_RANK = {"ok": 0, "warn": 1, "fail": 2}


def badness(gains: list[float], verdict: str) -> tuple[int, float]:
    """The sort key of a candidate, best first: its verdict, then how far its worst gain is from 1
    on the log scale (a gain that is not a number is the worst)."""
    logs = [abs(math.log10(g)) if g > 0 and math.isfinite(g) else math.inf for g in gains]
    return VERDICT_RANK[verdict], max(logs, default=0.0)


def judged_gains(result: ProbeResult) -> list[float]:
    """Every gain the probe judged, forward and backward, at every layer."""
    return [
        gain
        for layer in result.layers
        for gain, judged in zip((layer.forward_gain, layer.backward_gain), layer.gain_judged, strict=True)
        if judged
    ]


class Candidate(NamedTuple):
    """One column group of a comparison: the initializer and activation it sets (None: the stack's
    own) and its label, the values that vary (``he``, ``he · tanh``)."""

    label: str
    init: str | None
    act: str | None


def candidate_grid(inits: list[str], acts: list[str]) -> list[Candidate]:
    """Every initializer with every activation (init-major); a label names what varies."""
    out = []
    for init in inits or [None]:
        for act in acts or [None]:
            parts = [p for p, varies in ((init, len(inits) > 1), (act, len(acts) > 1)) if varies and p]
            out.append(Candidate(" · ".join(parts) or init or act or "stack", init, act))
    return out


@dataclass
class Comparison:
    """Several probes of one stack, one per candidate, with the same settings and seeds."""

    candidates: list[Candidate]
    results: list[ProbeResult]

    @property
    def settings(self) -> ProbeSettings:
        return self.results[0].settings

    def order(self) -> list[int]:
        """Candidate indices, best first: by verdict, then by the worst judged gain of any layer
        (stable: ties keep the order given)."""

        def key(i: int):
            result = self.results[i]
            return badness(judged_gains(result), result.summary.verdict)

        return sorted(range(len(self.results)), key=key)

    def to_dict(self) -> dict[str, Any]:
        results = []
        for cand, result in zip(self.candidates, self.results, strict=True):
            data = result.to_dict()
            del data["schema_version"], data["initdiag_version"]
            candidate = {"label": cand.label, "init": str(result.spec.init), "act": str(result.spec.act)}
            results.append({"candidate": candidate, **data})
        return {
            "schema_version": SCHEMA_VERSION,
            "initdiag_version": __version__,
            "results": results,
            "ranking": [self.candidates[i].label for i in self.order()],
        }


_STACK_OPTIONS = ("act", "out_act", "init", "bias_init", "norm", "residual", "residual_scale", "dropout",
                  "keep_layer_inits")  # fmt: skip


def option_keywords(**renamed: str) -> dict[str, str]:
    """How a Python caller of `compare` or `sweep` names each command-line option: an entry of
    *probe_options* or *stack_options*, or a keyword of its own (*renamed*: ``init="inits"``)."""
    out = {f"--{key.replace('_', '-')}": f"probe_options['{key}']" for key in PROBE_DEFAULTS}
    out |= {f"--{key.replace('_', '-')}": f"stack_options['{key}']" for key in _STACK_OPTIONS}
    return out | {f"--{key.replace('_', '-')}": keyword for key, keyword in renamed.items()}


def names_list(option: str, value: Any) -> list[str]:
    """Names from Python: a list or tuple of strings, or one comma-separated string as the command
    line takes (``"he,xavier"``); anything else is one error line naming *option*."""
    from ..core.callspec import split_list

    if value is None:
        return []
    if isinstance(value, str):
        return split_list(value, option)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InitdiagError(f"{option} must be a list of names, e.g. ['he', 'xavier'], got {value!r}"[:200])


def _max_gain(max_gain: Any) -> float | None:
    return None if max_gain is None else gain_limit("--max-gain", max_gain)


@keyword_names(option_keywords(init="inits", act="acts"))
def compare(
    *,
    layers: str | None = None,
    config: str | None = None,
    inits: list[str] | None = None,
    acts: list[str] | None = None,
    stack_options: dict[str, Any] | None = None,
    probe_options: dict[str, Any] | None = None,
    max_gain: float | None = None,
    model=None,
) -> Comparison:
    """Probe one stack (shorthand or spec file) once per candidate: every initializer in *inits*
    with every activation in *acts* (an empty list keeps the stack's own); at least two candidates,
    as on the command line (one is a probe). Work estimated past the time limit is refused before
    any probe runs (`initdiag.analysis.budget`)."""
    from .probe import run_probe

    inits, acts = names_list("--init", inits), names_list("--act", acts)
    if len(inits) < 2 and len(acts) < 2:
        raise InitdiagError("compare needs at least two candidates: --init he,xavier and/or --act relu,tanh")
    max_gain = _max_gain(max_gain)
    candidates = candidate_grid(inits, acts)
    spec = None
    if config is not None:  # read the file once; each candidate layers its options over it
        from .check import load_spec_file

        spec = load_spec_file(config)
    planned = []
    for cand in candidates:
        options = {**(stack_options or {}), "init": cand.init, "act": cand.act}
        planned.append(job(layers=layers, spec=spec, stack_options=options, model=model,
                           probe_options=probe_options, max_gain=max_gain))  # fmt: skip
    seconds = sum(probe_seconds(stack, settings) for stack, settings, _ in planned)
    refuse_long(
        seconds, f"comparing {len(candidates)} candidates", PROBE_LOWER + ", or compare fewer candidates"
    )
    try:
        results = [run_probe(stack, settings) for stack, settings, _ in planned]
    except InitdiagError as exc:  # an error of a spec's layer names the spec's line
        if spec is None:
            raise
        from .check import located

        raise InitdiagError(located(str(exc), spec), exc.keywords) from None
    given = (probe_options or {}).get("batch")
    for result in results:
        note_file_batch(
            result, *((given, "--batch") if given is not None else (spec_batch(spec), "probe.batch"))
        )
    return Comparison(candidates, results)


# --- sweep ----------------------------------------------------------------------------------------

SWEEP_AXES = ("init", "act", "depth", "width")
METRICS = ("forward", "backward")
SWEEP_LOWER = (
    "use fewer or smaller depths, fewer --init or --act values, a smaller --width, or lower --trials"
)


class SweepCell(NamedTuple):
    """One run of a sweep: the values that made it and its end-to-end numbers."""

    values: dict[str, Any]  # init, act, depth, width
    forward_gain: float
    backward_gain: float
    loss: float
    verdict: str
    flags: list[str]
    sd: dict[str, float]
    reasons: tuple[str, ...] = ()  # why its verdict (a warn has no flag: a gain close to its limit)

    def gain(self, metric: str) -> float:
        return self.forward_gain if metric == "forward" else self.backward_gain

    def to_dict(self) -> dict[str, Any]:
        out = {**self.values, "forward_gain": self.forward_gain, "backward_gain": self.backward_gain,
               "loss": self.loss, "verdict": self.verdict, "flags": list(self.flags),
               "reasons": list(self.reasons)}  # fmt: skip
        out.update({f"{key}_sd": value for key, value in self.sd.items()})
        return out


@dataclass
class Sweep:
    """A grid of cells: ``rows`` and ``columns`` are the values along each axis (dicts over
    `SWEEP_AXES`), ``cells[r][c]`` the run at row r, column c."""

    width: int
    metric: str
    row_keys: tuple[str, ...]
    column_key: str
    rows: list[dict[str, Any]]
    columns: list[dict[str, Any]]
    cells: list[list[SweepCell]]
    settings: ProbeSettings
    check: CheckSettings = field(default_factory=CheckSettings)
    notes: list[str] = field(default_factory=list)  # what qualifies every cell (an input file's batch)
    widths: list[int] = field(default_factory=list)  # several: an axis (``width`` is the first)

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "schema_version": SCHEMA_VERSION,
            "initdiag_version": __version__,
            "width": self.width,
            "widths": list(self.widths or [self.width]),
            "metric": self.metric,
            "rows": list(self.row_keys),
            "columns": self.column_key,
            "settings": {
                "batch": s.batch,
                "seed": s.seed,
                "trials": s.trials,
                "loss": s.loss,
                "input": s.input,
                "dtype": s.dtype,
                "max_forward_gain": s.thresholds.max_forward_gain,
                "max_backward_gain": s.thresholds.max_backward_gain,
            },
            "cells": [cell.to_dict() for row in self.cells for cell in row],
            "notes": list(self.notes),
        }


def _run_cell(stack: StackSpec, settings: ProbeSettings) -> tuple:
    """One cell's probe, reduced to what a sweep keeps (runs in a worker process)."""
    from .probe import run_probe

    sm = run_probe(stack, settings).summary
    return (
        sm.forward_gain,
        sm.backward_gain,
        sm.loss,
        sm.verdict,
        list(sm.flags),
        dict(sm.sd),
        tuple(sm.reasons),
    )


@keyword_names(option_keywords(depth="depths", init="inits", act="acts"))
def sweep(
    *,
    width: int | list[int],
    depths: list[int],
    inits: list[str],
    acts: list[str],
    metric: str = "forward",
    stack_options: dict[str, Any] | None = None,
    probe_options: dict[str, Any] | None = None,
    max_gain: float | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Sweep:
    """Probe ``width,width x depth`` (a dense chain of *depth* layers on *width* inputs) for every
    depth, initializer and activation. Columns are the depths when there are several, else the
    initializers, else the activations; rows the other values that vary. Cells run on *jobs*
    processes (default: the machine's cores; 1 runs them here, one after another) and come back in
    grid order; *progress(done, total)* is called as they finish."""
    from ..network.stack import MAX_ROWS

    if metric not in METRICS:
        raise InitdiagError(f"--metric '{metric}' is not one of {', '.join(METRICS)}")
    widths = [integer("--width", w) for w in (width if isinstance(width, list | tuple) else [width])]
    if not widths or len(set(widths)) < len(widths):
        raise InitdiagError("--width must list positive integers, each once, e.g. 64,128,256")
    if not isinstance(depths, list | tuple) or not depths:
        raise InitdiagError(
            f"--depth must be a list of positive integers, e.g. [2, 4, 8], got {depths!r}"[:200]
        )
    for d in depths:
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise InitdiagError(f"--depth must be positive integers, e.g. 2,4,8; got {d!r}")
        if d > MAX_ROWS:
            raise InitdiagError(f"--depth {d:,} is more layers than initdiag takes ({MAX_ROWS:,})")
    depths = [int(d) for d in depths]
    if len(set(depths)) < len(depths):
        raise InitdiagError("--depth lists a depth twice")
    if jobs is not None:
        integer("--jobs", jobs)
    max_gain = _max_gain(max_gain)
    inits, acts = names_list("--init", inits) or ["he_normal"], names_list("--act", acts) or ["relu"]
    values = {"init": inits, "act": acts, "depth": list(depths), "width": widths}
    column_key = next((k for k in ("width", "depth", "init", "act") if len(values[k]) > 1), "depth")
    row_keys = tuple(k for k in SWEEP_AXES if k != column_key and len(values[k]) > 1)

    def combos(keys):
        grid = [{}]
        for key in keys:
            grid = [{**g, key: v} for g in grid for v in values[key]]
        return grid

    rows, columns = combos(row_keys), combos((column_key,))
    jobs_list = []
    check = CheckSettings()
    for row in rows:
        for column in columns:
            cell = {key: values[key][0] for key in SWEEP_AXES} | row | column
            options = {**(stack_options or {}), "init": cell["init"], "act": cell["act"]}
            layers = f"{cell['width']},{cell['width']}x{cell['depth']}"
            stack, settings, check = job(layers=layers, stack_options=options, probe_options=probe_options,
                                         max_gain=max_gain)  # fmt: skip
            cell["init"], cell["act"] = str(stack.init), str(stack.act)
            jobs_list.append((cell, stack, settings))
    from .workers import run_all

    workers = min(jobs or os.cpu_count() or 1, len(jobs_list))
    seconds = sum(probe_seconds(stack, settings) for _, stack, settings in jobs_list) / workers
    refuse_long(seconds, f"this sweep of {len(jobs_list)} cells", SWEEP_LOWER)
    outcomes = run_all(_run_cell, [(stack, settings) for _, stack, settings in jobs_list], jobs, progress)
    flat = [SweepCell(cell, *outcome) for (cell, _, _), outcome in zip(jobs_list, outcomes, strict=True)]
    grid = [flat[r * len(columns) : (r + 1) * len(columns)] for r in range(len(rows))]
    settings, notes = replace(jobs_list[0][2]), []
    if str(settings.input).lower().endswith(".npy"):  # the file's rows are every cell's batch
        from .inputs import get_input

        if len(widths) > 1:
            raise InitdiagError("--input FILE.npy holds one width of data; sweep one --width with it")
        settings = replace(settings, batch=len(get_input(settings.input, widths[0]).array))
        notes = [n for n in [file_batch_note(settings, (probe_options or {}).get("batch"))] if n]
    return Sweep(widths[0], metric, row_keys, column_key, rows, columns, grid, settings, check, notes, widths)
