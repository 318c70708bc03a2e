"""``initdiag check``: probe spec files and gate on their thresholds, as a CI step.

Each spec is probed (3 trials unless the file or the command line says otherwise, so that a pass is
stable across seeds) and fails when a flag its ``check.fail_on`` lists appears, or when, against a
``--baseline``, some layer's forward or backward gain moved by more than a factor. A malformed spec
is reported with every problem it has, and the other specs still run.
"""

from __future__ import annotations

import functools
import glob
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InitdiagError
from ..network.job import job
from ..network.parse import FORMATS, SpecError
from ..network.specfile import load_spec
from .result import ProbeResult, format_number

CHECK_TRIALS = 3


@dataclass
class SpecOutcome:
    """What ``check`` found for one spec file: passed or not and why, or what makes it malformed."""

    file: str
    name: str | None = None
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    reason_lines: list[int | None] = field(default_factory=list)  # each reason's layer's line
    worst_layer: str | None = None
    line: int | None = None  # the worst layer's line in the spec file (or the first problem's)
    result: ProbeResult | None = None
    problems: list[str] = field(default_factory=list)  # "file:line: message", when malformed
    seconds: float = 0.0

    @property
    def malformed(self) -> bool:
        return bool(self.problems)

    @property
    def status(self) -> str:
        return "error" if self.malformed else ("pass" if self.passed else "fail")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "name": self.name, "passed": self.passed}
        out["reasons"] = list(self.problems if self.malformed else self.reasons)
        out["worst_layer"] = self.worst_layer
        out["line"] = self.line
        if self.malformed:
            out["error"] = self.problems[0]
        if self.result is not None:
            probe = self.result.to_dict()
            out.update({k: v for k, v in probe.items() if k not in ("schema_version", "initdiag_version")})
        return out


@dataclass
class CheckReport:
    outcomes: list[SpecOutcome]
    trials: int | None = None

    @property
    def exit_code(self) -> int:
        """2 when any spec is malformed, else 1 when any failed, else 0."""
        if any(o.malformed for o in self.outcomes):
            return 2
        return 0 if all(o.passed for o in self.outcomes) else 1

    def counts(self) -> dict[str, int]:
        return {
            "passed": sum(o.status == "pass" for o in self.outcomes),
            "failed": sum(o.status == "fail" for o in self.outcomes),
            "malformed": sum(o.status == "error" for o in self.outcomes),
        }

    def to_dict(self) -> dict[str, Any]:
        from .._version import __version__
        from .result import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "initdiag_version": __version__,
            "results": [o.to_dict() for o in self.outcomes],
            "summary": self.counts(),
        }


def find_specs(patterns: list[str]) -> tuple[list[str], list[SpecOutcome]]:
    """Spec files named by files, directories (every .toml/.yaml/.yml/.json inside, hidden ones
    skipped) and globs, in order, each once; and an error outcome for each pattern that names none."""
    files: list[str] = []
    missing: list[SpecOutcome] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(
                str(p)
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in FORMATS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )  # fmt: skip
            if not found:
                missing.append(
                    SpecOutcome(pattern, problems=[f"{pattern}: no .toml, .yaml or .json spec files in it"])
                )
        elif any(ch in pattern for ch in "*?["):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).suffix.lower() in FORMATS)
            if not found:
                missing.append(SpecOutcome(pattern, problems=[f"{pattern}: no spec files match"]))
        elif path.is_file():
            found = [pattern]
        else:
            missing.append(SpecOutcome(pattern, problems=[f"{pattern}: file not found"]))
            found = []
        files += [f for f in found if f not in files]
    return files, missing


# --- baseline -------------------------------------------------------------------------------------


def load_baseline(path: str) -> dict[str, dict[str, tuple[float, float]]]:
    """Gains by layer for each spec of a saved ``check --format json`` (or ``probe --format json``)
    result, keyed by spec file and by spec name."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InitdiagError(f"--baseline: file not found: '{path}'") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InitdiagError(f"--baseline '{path}' is not a JSON result of initdiag: {exc}") from None
    entries = data.get("results") if isinstance(data, dict) else None
    if entries is None and isinstance(data, dict) and "layers" in data:
        entries = [data]
    if not isinstance(entries, list):
        raise InitdiagError(f"--baseline '{path}' is not a JSON result of initdiag check or probe")
    gains: dict[str, dict[str, tuple[float, float]]] = {}
    for entry in entries:
        layers = {layer["name"]: (_number(layer.get("forward_gain")), _number(layer.get("backward_gain")))
                  for layer in entry.get("layers", [])}  # fmt: skip
        for key in (entry.get("file"), (entry.get("spec") or {}).get("name"), entry.get("name")):
            if key:
                gains.setdefault(key, layers)
    return gains


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def drift(
    result: ProbeResult, baseline: dict[str, tuple[float, float]], factor: float
) -> list[tuple[str, str]]:
    """(layer, sentence) for each layer whose forward or backward gain moved by more than *factor*
    from the baseline (or became, or stopped being, a number). Only the gains the probe judges: a
    scale a norm erases, or the data's gradient, moving is not a regression."""
    moved: list[tuple[str, str]] = []
    for layer in result.layers:
        if layer.name not in baseline:
            continue
        pairs = zip(("forward", "backward"), baseline[layer.name], layer.gain_judged, strict=True)
        for direction, old, judged in pairs:
            if not judged:
                continue
            new = getattr(layer, f"{direction}_gain")
            change = f"layer {layer.name}: {direction} gain moved from {format_number(old)} to "
            change += format_number(new)
            if math.isnan(old) and math.isnan(new):
                continue
            if math.isfinite(old) != math.isfinite(new) or (old > 0) != (new > 0):
                moved.append((layer.name, f"{change} (against the baseline)"))
            elif old > 0 and max(new / old, old / new) > factor:
                ratio = max(new / old, old / new)
                shown = next(f"{ratio:.{d}g}" for d in (3, 4, 6, 9, 17) if float(f"{ratio:.{d}g}") > factor)
                moved.append((layer.name, f"{change} (x{shown} > x{factor:g} against the baseline)"))
    return moved


# --- the gate -----------------------------------------------------------------------------------


def check_spec(
    path: str,
    *,
    trials: int | None = None,
    seed: int | None = None,
    max_gain: float | None = None,
    baseline: dict[str, dict[str, tuple[float, float]]] | None = None,
    baseline_factor: float = 2.0,
) -> SpecOutcome:
    """Probe one spec file and decide whether it passes."""
    from .probe import run_probe

    start = time.perf_counter()
    try:
        spec = load_spec(path)
    except SpecError as exc:
        return SpecOutcome(path, problems=exc.lines, line=exc.first_line)
    except InitdiagError as exc:
        return SpecOutcome(path, problems=[f"{path}: {exc}"])
    stack, settings, check = job(
        spec=spec,
        probe_options={"trials": trials, "seed": seed},
        max_gain=max_gain,
        probe_defaults={"trials": CHECK_TRIALS},
    )
    try:
        result = run_probe(stack, settings)
    except InitdiagError as exc:
        return SpecOutcome(path, stack.name, problems=[f"{path}: {exc}"])
    failing = check.failing(result.summary.flags)
    findings = [f for f in result.summary.findings if f.flag in failing]
    reasons = [(f.layer, f.text) for f in findings]
    if baseline is not None:
        own = baseline.get(path) or baseline.get(stack.name or "")
        if own is not None:
            reasons += drift(result, own, baseline_factor)
    line_of = dict(zip((layer.name for layer in stack.walk()), spec.layer_lines, strict=True))
    return SpecOutcome(
        file=path,
        name=stack.name,
        passed=not reasons,
        reasons=[text for _, text in reasons],
        reason_lines=[line_of.get(layer) for layer, _ in reasons],
        worst_layer=reasons[0][0] if reasons else None,
        line=line_of.get(reasons[0][0]) if reasons else None,
        result=result,
        seconds=time.perf_counter() - start,
    )


def run_check(
    patterns: list[str],
    *,
    trials: int | None = None,
    seed: int | None = None,
    max_gain: float | None = None,
    baseline: str | None = None,
    baseline_factor: float = 2.0,
    jobs: int | None = None,
) -> CheckReport:
    """Check every spec the patterns name; the order of the report is the order found. With several
    specs, they run on *jobs* worker processes (default: one per core; 1: in this process)."""
    if baseline_factor <= 1:
        raise InitdiagError(f"--baseline-factor must be greater than 1, got {baseline_factor:g}")
    if trials is not None and trials < 1:
        raise InitdiagError(f"--trials must be a positive integer, got {trials}")
    if seed is not None and seed < 0:
        raise InitdiagError(f"--seed must be a non-negative integer, got {seed}")
    if max_gain is not None and max_gain <= 1:
        raise InitdiagError(f"--max-gain must be greater than 1, got {max_gain:g}")
    gains = load_baseline(baseline) if baseline else None
    files, missing = find_specs(patterns)
    one = functools.partial(
        check_spec,
        trials=trials,
        seed=seed,
        max_gain=max_gain,
        baseline=gains,
        baseline_factor=baseline_factor,
    )
    from .workers import run_all

    return CheckReport(missing + run_all(one, [(f,) for f in files], jobs), trials)
