"""Reading a spec file from disk: the bytes, their limits and their encoding, then `parse.parse_text`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InitdiagError
from .parse import MAX_BYTES, SourceMap, SpecError, parse_text, spec_format


def read_document(path: str | Path) -> tuple[Any, SourceMap]:
    """(data, source map) of the spec file at *path*: a missing, unreadable, oversized or non-UTF-8
    file is one clear error (with its line where it has one), as a malformed document is."""
    path = str(path)
    fmt = spec_format(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InitdiagError(f"file not found: '{path}'") from None
    except (OSError, ValueError) as exc:
        raise SpecError(path, [(None, f"cannot be read: {getattr(exc, 'strerror', None) or exc}")]) from None
    if len(raw) > MAX_BYTES:
        raise SpecError(
            path,
            [(None, f"larger than {MAX_BYTES >> 20} MiB, too large for a spec file (runs of equal layers "
                    "can be one entry with repeat)")],
        )  # fmt: skip
    try:
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text reads
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problem = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise SpecError(path, [(line, problem)]) from None
    return parse_text(text, fmt, path)
