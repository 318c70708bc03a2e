"""The README's examples are real: every ``$ ...`` line of a console block is run and its output
compared (a line ``...`` stands for any number of omitted lines); the Python block is a doctest."""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def console_blocks() -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as a list of (command, expected output lines)."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line.rstrip())
        blocks.append(steps)
    return blocks


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line equality where an expected line '...' matches any run of lines."""
    parts: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == "...":
            parts.append([])
        else:
            parts[-1].append(line)
    if len(parts) == 1:
        return expected == actual
    head, *middle, tail = parts
    if actual[: len(head)] != head or (tail and actual[len(actual) - len(tail) :] != tail):
        return False
    rest = actual[len(head) : len(actual) - len(tail)]
    for part in middle:
        for start in range(len(rest) - len(part) + 1):
            if rest[start : start + len(part)] == part:
                rest = rest[start + len(part) :]
                break
        else:
            return False
    return True


def shell_command(command: str) -> str:
    """Run `initdiag` and `python` as this interpreter's, whatever is on PATH."""
    python = f'"{sys.executable}"'
    command = re.sub(r"(^|\s)initdiag ", rf"\1{python} -m initdiag ", command)
    return re.sub(r"^python ", f"{python} ", command)


BLOCKS = console_blocks()


def test_the_readme_has_console_examples():
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=[b[0][0][:60] for b in BLOCKS])
def test_console_example(block, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "INITDIAG_MAX_MEMORY")}
    for command, expected in block:
        done = subprocess.run(
            shell_command(command), shell=True, cwd=tmp_path, env=env, capture_output=True, text=True
        )
        actual = [line.rstrip() for line in (done.stdout + done.stderr).splitlines()]
        while expected and not expected[-1]:
            expected = expected[:-1]
        assert matches(expected, actual), (
            f"$ {command}\n--- README:\n" + "\n".join(expected) + ("\n--- actual:\n" + "\n".join(actual))
        )


def test_python_examples():
    failures, tried = doctest.testfile(
        str(README), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert tried >= 8 and failures == 0


def _refresh(expected: list[str], actual: list[str]) -> list[str]:
    """New expected lines from the actual output, keeping an excerpt's shape: the same number of
    head and tail lines, and in the middle the rows whose first word (a layer name) it quoted."""
    if not any(line.strip() == "..." for line in expected):
        return actual
    parts: list[list[str]] = [[]]
    for line in expected:
        (parts.append([]) if line.strip() == "..." else parts[-1].append(line))
    head, *middle, tail = parts
    out = actual[: len(head)]
    for part in middle:
        out.append(" ...")
        for line in part:
            key = line.split()[0] if line.split() else ""
            out.append(next((a for a in actual if a.split() and a.split()[0] == key), line))
    out.append(" ...")
    return out + (actual[len(actual) - len(tail) :] if tail else [])


def update_readme() -> None:
    """Rewrite every console block of README.md with the real output of its commands."""
    import tempfile

    text = README.read_text()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "INITDIAG_MAX_MEMORY")}

    def rewrite(match: re.Match) -> str:
        lines: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            steps: list[tuple[str, list[str]]] = []
            for line in match.group(1).splitlines():
                if line.startswith("$ "):
                    steps.append((line[2:], []))
                elif steps:
                    steps[-1][1].append(line.rstrip())
            for command, expected in steps:
                done = subprocess.run(
                    shell_command(command), shell=True, cwd=tmp, env=env, capture_output=True, text=True
                )
                actual = [line.rstrip() for line in (done.stdout + done.stderr).splitlines()]
                while expected and not expected[-1]:
                    expected = expected[:-1]
                lines += [f"$ {command}", *_refresh(expected, actual)]
        return "```console\n" + "\n".join(lines) + "\n```"

    README.write_text(re.sub(r"```console\n(.*?)```", rewrite, text, flags=re.S))


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update_readme()
    else:
        print("usage: python tests/test_readme.py --update   (rewrites README.md's console examples)")
