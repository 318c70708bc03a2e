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


CONSOLE = re.compile(r"```console\n(.*?)```", flags=re.S)


def parse_block(body: str) -> list[tuple[str, list[str]]]:
    """A console block as (command, expected output lines) pairs, trailing blank lines dropped."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line.rstrip())
    for _, expected in steps:
        while expected and not expected[-1]:
            expected.pop()
    return steps


def console_blocks() -> list[list[tuple[str, list[str]]]]:
    return [parse_block(body) for body in CONSOLE.findall(README.read_text())]


def workdir(path: Path) -> Path:
    """A scratch directory for one console block, where sample_configs/ is at hand."""
    (path / "sample_configs").symlink_to(README.parent / "sample_configs")
    return path


def run_command(command: str, cwd) -> list[str]:
    """A README command's stdout and stderr lines, without the terminal width, memory limit or CI
    environment of the machine running the tests."""
    drop = ("COLUMNS", "INITDIAG_MAX_MEMORY", "GITHUB_ACTIONS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    done = subprocess.run(
        shell_command(command), shell=True, cwd=cwd, env=env, capture_output=True, text=True
    )
    return [line.rstrip() for line in (done.stdout + done.stderr).splitlines()]


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
    cwd = workdir(tmp_path)
    for command, expected in block:
        actual = run_command(command, cwd)
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

    def rewrite(match: re.Match) -> str:
        lines: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            cwd = workdir(Path(tmp))
            for command, expected in parse_block(match.group(1)):
                lines += [f"$ {command}", *_refresh(expected, run_command(command, cwd))]
        return "```console\n" + "\n".join(lines) + "\n```"

    README.write_text(CONSOLE.sub(rewrite, text))


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update_readme()
    else:
        print("usage: python tests/test_readme.py --update   (rewrites README.md's console examples)")
