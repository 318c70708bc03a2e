"""Where a probe could not do what it was asked, a note that says so (``summary.notes``), so that an
option given on purpose is never ignored in silence."""

from __future__ import annotations

from typing import Any

from .result import ProbeResult


def note_file_batch(result: ProbeResult, asked: Any, where: str = "--batch") -> ProbeResult:
    """With ``--input FILE.npy`` the file's rows are the batch: when a batch was asked for (*asked*,
    from *where*: ``--batch`` or a spec's ``probe.batch``) and differs, a note says it was not used.
    The settings (and JSON) hold the batch used."""
    note = file_batch_note(result.settings, asked, where)
    if note:
        result.summary.notes.append(note)
    return result


def file_batch_note(settings: Any, asked: Any, where: str = "--batch") -> str | None:
    """The note of `note_file_batch` for *settings* that hold the batch used (None: no note)."""
    used, source = settings.batch, str(settings.input)
    if asked is None or asked == used or not source.lower().endswith(".npy"):
        return None
    return f"{where} {asked} not used: the {used} rows of the input file {source} are the batch"


def spec_batch(spec: Any) -> Any:
    """The batch a loaded spec file asks for in its ``probe`` section (None when it does not)."""
    return None if spec is None else (getattr(spec, "probe", None) or {}).get("batch")
