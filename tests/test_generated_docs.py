"""The docs' generated parts (the spec-file reference, the initializer table, the gain table, the
initializer cards) are written out in the pages themselves, so they read complete on GitHub and from
the README's links, not only in the built site; and they are current: a change to the code that
changes them fails here until ``python docs/hooks.py --update`` refreshes them."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPDATE = "python docs/hooks.py --update"


def _hooks():
    spec = importlib.util.spec_from_file_location("initdiag_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def test_the_generated_parts_are_current():
    stale = [str(path.relative_to(ROOT)) for path in hooks.stale_pages()]
    assert not stale, f"generated docs are stale: {', '.join(stale)}; refresh them with: {UPDATE}"


def test_every_part_is_written_out_in_its_page():
    found: dict[str, str] = {}
    for path in hooks.pages_with_parts():
        for match in hooks.PART.finditer(path.read_text(encoding="utf-8")):
            assert match.group("body"), (
                f"{path.name}: generated part {match.group('kind')} is empty; run {UPDATE}"
            )
            found[match.group("kind")] = path.name
    assert found == {
        "initializers": "initializers.md",
        "gains": "initializers.md",
        "cards": "initializers.md",
        "schema": "spec-files.md",
    }
    cards = (ROOT / "docs" / "initializers.md").read_text(encoding="utf-8")
    assert "### `he_normal`" in cards and "kaiming_normal_" in cards  # the card itself, on GitHub too
    reference = (ROOT / "docs" / "spec-files.md").read_text(encoding="utf-8")
    assert "| `probe.trials` |" in reference


def test_the_generated_markdown_reads_on_github():
    """No MkDocs-only syntax: a `{#id}` attribute list or a `???` block shows as literal text there;
    every in-page link has its `<a id>` target."""
    for path in hooks.pages_with_parts():
        bodies = [m.group("body") for m in hooks.PART.finditer(path.read_text(encoding="utf-8"))]
        assert not any("{#" in body or "\n??? " in body for body in bodies)
        targets = {t for body in bodies for t in re.findall(r'<a id="([^"]+)"></a>', body)}
        links = {link for body in bodies for link in re.findall(r"\]\(#([^)]+)\)", body)}
        assert links and links <= targets, links - targets


def test_a_stale_part_is_caught_and_refreshed():
    page = (ROOT / "docs" / "initializers.md").read_text(encoding="utf-8")
    tampered = page.replace("| constant 0 |", "| constant zero |", 1)
    assert tampered != page
    assert hooks.fill(tampered) == page  # what --update writes; the site build fills the same way
    bare = "# x\n\n<!-- generated: gains -->\n\nafter\n"  # a bare marker is filled in, with its end
    filled = hooks.fill(bare)
    assert "<!-- end generated: gains -->" in filled and filled.endswith("\nafter\n")
    assert hooks.fill(filled) == filled
