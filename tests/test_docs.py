"""The documentation's examples are real: every ``$ ...`` line of a console block in README.md and
docs/**/*.md is run and its output compared (a line ``...`` stands for any number of omitted lines);
the Python blocks are doctests; and the MkDocs site builds with ``mkdocs build --strict`` (no broken
link, no page left out of the nav).

``python tests/test_docs.py --update`` rewrites every console block with the real output of its
commands (``--update FILE...`` only those files)."""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


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


def console_blocks() -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """(file relative to the repository, block) for every console block of the docs."""
    return [
        (str(path.relative_to(ROOT)), parse_block(body))
        for path in doc_files()
        for body in CONSOLE.findall(path.read_text())
    ]


def workdir(path: Path) -> Path:
    """A scratch directory for one console block, where sample_configs/ and examples/ are at hand."""
    (path / "sample_configs").symlink_to(ROOT / "sample_configs")
    (path / "examples").symlink_to(ROOT / "examples")
    return path


def needs_torch(block: list[tuple[str, list[str]]]) -> bool:
    """A block that probes or audits a PyTorch model (skipped, with the reason, without torch)."""
    return any("--model" in command or "examples/torch" in command for command, _ in block)


def run_command(command: str, cwd) -> list[str]:
    """A documented command's stdout and stderr lines, without the terminal width, memory limit or CI
    environment of the machine running the tests."""
    drop = ("COLUMNS", "INITDIAG_MAX_MEMORY", "GITHUB_ACTIONS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    done = subprocess.run(
        shell_command(command), shell=True, cwd=cwd, env=env, capture_output=True, text=True
    )
    lines = [line.rstrip() for line in (done.stdout + done.stderr).splitlines()]
    while lines and not lines[-1]:  # as parse_block drops them from the documented output
        lines.pop()
    return lines


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


def test_the_docs_have_console_examples():
    files = {name for name, _ in BLOCKS}
    assert "README.md" in files
    assert {f"docs/commands/{c}.md" for c in ("probe", "compare", "sweep", "check", "train")} <= files
    assert len(BLOCKS) >= 40


@pytest.mark.parametrize(("name", "block"), BLOCKS, ids=[f"{n}: {b[0][0][:60]}" for n, b in BLOCKS])
def test_console_example(name, block, tmp_path):
    if needs_torch(block) and importlib.util.find_spec("torch") is None:
        pytest.skip("this example needs the torch extra: pip install 'initdiag[torch]'")
    cwd = workdir(tmp_path)
    for command, expected in block:
        actual = run_command(command, cwd)
        assert matches(expected, actual), (
            f"{name}\n$ {command}\n--- documented:\n"
            + "\n".join(expected)
            + ("\n--- actual:\n" + "\n".join(actual))
        )


DOCTEST_FILES = [p for p in doc_files() if "\n>>> " in p.read_text()]


@pytest.mark.parametrize("path", DOCTEST_FILES, ids=[str(p.relative_to(ROOT)) for p in DOCTEST_FILES])
def test_python_examples(path, tmp_path, monkeypatch):
    if ">>> import torch" in path.read_text() and importlib.util.find_spec("torch") is None:
        pytest.skip("these examples need the torch extra: pip install 'initdiag[torch]'")
    monkeypatch.chdir(workdir(tmp_path))
    failures, tried = doctest.testfile(
        str(path), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    )
    assert tried >= 3 and failures == 0


def test_the_python_api_page_has_examples():
    assert DOCS / "api.md" in DOCTEST_FILES


def test_the_site_builds_strictly(tmp_path):
    """mkdocs build --strict: every page in the nav, no broken link or anchor, the generated parts
    (spec-file reference, initializer cards, API docstrings) built from the code."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install '.[docs]' to build the site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    assert (site / "spec-files" / "index.html").read_text().count('id="schema-layer"') == 1
    initializers = (site / "initializers" / "index.html").read_text()
    assert 'id="init-he_normal"' in initializers and "calculate_gain" in initializers
    api = (site / "api" / "index.html").read_text()
    for name in ("probe", "ProbeResult", "LayerStats", "Summary", "StackSpec", "LayerSpec", "get_initializer",
                 "get_activation", "calculate_gain", "compare", "sweep", "run_check", "train"):  # fmt: skip
        assert re.search(rf'id="initdiag\.[\w.]*\b{name}"', api), f"the API page documents {name}"


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


def update(paths: list[Path]) -> None:
    """Rewrite every console block of *paths* with the real output of its commands."""
    import tempfile

    def rewrite(match: re.Match) -> str:
        lines: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            cwd = workdir(Path(tmp))
            for command, expected in parse_block(match.group(1)):
                lines += [f"$ {command}", *_refresh(expected, run_command(command, cwd))]
        return "```console\n" + "\n".join(lines) + "\n```"

    for path in paths:
        text = path.read_text()
        new = CONSOLE.sub(rewrite, text)
        if new != text:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update"]:
        update([Path(p).resolve() for p in sys.argv[2:]] or doc_files())
    else:
        print("usage: python tests/test_docs.py --update [FILE...]   (rewrites the docs' console examples)")


def test_the_readmes_test_command_is_the_one_ci_runs():
    """README's second set-up line and .ci/run install and test the same way."""
    readme = (ROOT / "README.md").read_text().split("```")[1].strip().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert len(readme) == 3 and readme[0] == "bash"
    assert ci.replace(" --quiet", "") == readme[2]
