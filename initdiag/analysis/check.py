"""``initdiag check``: probe spec files and gate on their thresholds, as a CI step.

Each spec is probed exactly as ``initdiag probe --config SPEC`` probes it (its ``probe`` section,
``probe.trials`` included, with the same defaults), so the two print the same numbers, and fails when
a flag its ``check.fail_on`` lists appears, or when, against a ``--baseline``, some layer's forward or
backward gain moved by more than a factor. A malformed spec is reported with every problem it has,
and the other specs still run. A directory (or glob) may hold initdiag's own JSON results, such as a
baseline: they are skipped, and said to be.
"""

from __future__ import annotations

import functools
import glob
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InitdiagError, gain_limit, integer
from ..network.job import job
from ..network.parse import FORMATS, SpecError
from ..network.specfile import load_spec
from ..network.stack import StackSpec
from .asked import note_file_batch, spec_batch
from .budget import MAX_TRIALS, TRIALS_HINT, probe_seconds, refuse_long
from .result import ProbeResult, format_number


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
    skipped: list[str] = field(default_factory=list)  # initdiag results found among the specs
    coord_specs: list[str] = field(default_factory=list)  # coordcheck specs found among them

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
            "skipped": list(self.skipped),
            "skipped_coordcheck": list(self.coord_specs),
        }


def is_result(path: str | Path) -> bool:
    """Whether *path* is a JSON document initdiag wrote (the output of probe, check, compare, ...:
    ``schema_version`` with ``results`` or ``layers``), not a spec. A file over 64 MiB is told by
    its first key, as initdiag writes it."""
    if Path(path).suffix.lower() != ".json":
        return False
    try:
        with open(path, "rb") as f:
            if Path(path).stat().st_size > 64 << 20:
                return f.read(64).decode("utf-8", "replace").lstrip("{ \n").startswith('"schema_version"')
            data = json.loads(f.read())
    except (OSError, ValueError, RecursionError):  # not JSON, or nested past what json reads
        return False
    return isinstance(data, dict) and "schema_version" in data and ("results" in data or "layers" in data)


def load_spec_file(path: str):
    """`load_spec`, after telling an initdiag result (a JSON output) from a spec in one line."""
    if is_result(path):
        raise InitdiagError(f"--config '{path}' is an initdiag result (JSON output), not a spec file")
    return _load_spec_or_coord(path)


def _load_spec_or_coord(path: str):
    """`load_spec`; a coordcheck spec (a ``[coordcheck]`` table) is told apart in one line."""
    try:
        return load_spec(path)
    except SpecError:
        if _is_coord_spec(path):
            hint = f"a coordcheck spec, not an architecture spec: run it with initdiag coordcheck -c {path}"
            raise SpecError(path, [(None, hint)]) from None
        raise


def _is_coord_spec(path: str) -> bool:
    """Whether *path* holds a ``[coordcheck]`` table and no stack (`initdiag.analysis.coordspec`)."""
    from ..network.document import read_document

    try:
        with open(path, "rb") as f:
            if b"coordcheck" not in f.read(1 << 20):  # most specs: no need to parse them twice
                return False
        data, _ = read_document(path)
    except (InitdiagError, OSError):
        return False
    return isinstance(data, dict) and "coordcheck" in data and "layers" not in data and "model" not in data


def result_problem(path: str) -> str:
    return (
        f"{path}: an initdiag result (JSON output), not a spec; to compare against it, pass --baseline {path}"
    )


def find_specs(patterns: list[str]) -> tuple[list[str], list[SpecOutcome], list[str], list[str]]:
    """Spec files named by files, directories (every .toml/.yaml/.yml/.json inside, hidden ones
    skipped) and globs, in order, each once; an error outcome for each pattern that names none, or
    that names an initdiag result; the results and the coordcheck specs a directory or glob held
    (skipped)."""
    files: list[str] = []
    missing: list[SpecOutcome] = []
    skipped: list[str] = []
    skipped_coords: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        try:
            if path.is_dir():
                found = sorted(
                    str(p)
                    for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in FORMATS
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )  # fmt: skip
            elif any(ch in pattern for ch in "*?["):
                found = sorted(
                    p for p in glob.glob(pattern, recursive=True) if Path(p).suffix.lower() in FORMATS
                )
            elif path.is_file():
                if is_result(pattern):
                    missing.append(SpecOutcome(pattern, problems=[result_problem(pattern)]))
                    continue
                found = [pattern]
            else:
                missing.append(SpecOutcome(pattern, problems=[f"{pattern}: file not found"]))
                continue
        except OSError as exc:
            missing.append(
                SpecOutcome(pattern, problems=[f"{pattern}: cannot be read: {exc.strerror or exc}"])
            )
            continue
        results = [f for f in found if is_result(f)]
        skipped += [f for f in results if f not in skipped]
        found = [f for f in found if f not in results]
        if found != [pattern]:  # a directory or glob: its coordcheck specs are skipped, and named
            coords = [f for f in found if _is_coord_spec(f)]
            skipped_coords += [f for f in coords if f not in skipped_coords]
            found = [f for f in found if f not in coords]
        if not found:
            where = "in it" if path.is_dir() else "match"
            what = "no .toml, .yaml or .json spec files" if path.is_dir() else "no spec files"
            also = f" (only initdiag results: {', '.join(results)})" if results else ""
            missing.append(SpecOutcome(pattern, problems=[f"{pattern}: {what} {where}{also}"]))
        files += [f for f in found if f not in files]
    return files, missing, skipped, skipped_coords


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
                moved.append(
                    (
                        layer.name,
                        f"{change} (x{ratio_text(ratio, factor)} > x{factor:g} against the baseline)",
                    )
                )
    return moved


def ratio_text(ratio: float, factor: float) -> str:
    """*ratio* (> *factor*) with the fewest significant digits (3 at least) that still read above
    *factor*: ``2.08``, and ``2.000000002`` rather than a ``2`` that would not explain the failure."""
    return next(f"{ratio:.{d}g}" for d in range(3, 18) if float(f"{ratio:.{d}g}") > factor)


# --- the gate -----------------------------------------------------------------------------------


SPEC_LOWER = "lower its probe.trials or probe.batch (or give --trials), or use fewer or narrower layers"
_LAYER_NAMED = re.compile(r"\blayer '?([^\s:',]+)")


def located(message: str, spec) -> str:
    """*message* (an error met while probing a loaded spec) as ``FILE:LINE: message`` when it names
    one of the spec's layers, as every error found while reading the file is; else as it is."""
    found = _LAYER_NAMED.search(message)
    line = None
    if found and isinstance(spec.stack, StackSpec):
        try:
            names = [layer.name for layer in spec.stack.resolve().walk()]
        except InitdiagError:
            names = []
        line = dict(zip(names, spec.layer_lines, strict=False)).get(found.group(1))
    return f"{spec.path}:{line}: {message}" if line else message


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
        spec = _load_spec_or_coord(path)
    except SpecError as exc:
        return SpecOutcome(path, problems=exc.lines, line=exc.first_line)
    except InitdiagError as exc:
        return SpecOutcome(path, problems=[f"{path}: {exc}"])
    try:
        stack, settings, check = job(
            spec=spec, probe_options={"trials": trials, "seed": seed}, max_gain=max_gain
        )
        refuse_long(probe_seconds(stack, settings), "probing this spec", SPEC_LOWER)
        result = note_file_batch(run_probe(stack, settings), spec_batch(spec), "probe.batch")
    except InitdiagError as exc:
        problem = located(str(exc), spec)
        problem = problem if problem.startswith(f"{spec.path}:") else f"{path}: {problem}"
        line = problem.removeprefix(f"{path}:").partition(":")[0]
        return SpecOutcome(
            path, spec.stack.name, problems=[problem], line=int(line) if line.isdigit() else None
        )
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
    """Check every spec the *patterns* name (files, directories, globs; one string is one pattern);
    the order of the report is the order found. With several specs, they run on *jobs* worker
    processes (default: one per core; 1: in this process). A spec estimated to take longer than the
    time limit (`initdiag.analysis.budget`) is reported as malformed, and the others still run."""
    if isinstance(patterns, str | Path):
        patterns = [patterns]
    if not isinstance(patterns, list | tuple) or not all(isinstance(p, str | Path) for p in patterns):
        raise InitdiagError(
            f"patterns must be a list of spec files, directories or globs, got {patterns!r}"[:200]
        )
    if not patterns:
        raise InitdiagError("check needs spec files, directories or globs, e.g. ['architectures/']")
    patterns = [str(p) for p in patterns]
    gain_limit("--baseline-factor", baseline_factor)
    if trials is not None:
        integer("--trials", trials, 1, MAX_TRIALS, TRIALS_HINT)
    if seed is not None:
        integer("--seed", seed, 0)
    if max_gain is not None:
        gain_limit("--max-gain", max_gain)
    if jobs is not None:
        integer("--jobs", jobs)
    gains = load_baseline(baseline) if baseline else None
    files, missing, skipped, coords = find_specs(patterns)
    one = functools.partial(
        check_spec,
        trials=trials,
        seed=seed,
        max_gain=max_gain,
        baseline=gains,
        baseline_factor=baseline_factor,
    )
    from .workers import run_all

    return CheckReport(missing + run_all(one, [(f,) for f in files], jobs), trials, skipped, coords)
