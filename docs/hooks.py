"""MkDocs hooks, and the parts of the docs that are generated from initdiag itself, so they cannot drift.

A generated part lives in the page itself, between two markers, so that the page reads complete on
GitHub (and from the README's links) as well as in the built site:

    <!-- generated: schema (python docs/hooks.py --update) -->
    ...the generated Markdown...
    <!-- end generated: schema -->

- ``schema``: the spec-file reference, from the JSON Schema ``initdiag schema`` prints (every key,
  its type and constraints, its description; the layer keys each kind requires);
- ``initializers``: the reference card's table, one row per initializer (what
  ``initdiag inits --format markdown`` prints);
- ``gains``: the gain table (PyTorch's ``calculate_gain`` beside the second-moment gain);
- ``cards``: every initializer's card (``initdiag explain NAME``): formula, syntax, paper,
  PyTorch / Keras / JAX spellings, when to use it, and its traps.

``python docs/hooks.py --update`` rewrites every part from the code (``--check`` lists the stale
ones and exits 1; ``tests/test_generated_docs.py`` fails on a stale part and names this command).
The site build regenerates them too, so the site is current even before the files are refreshed.
The generated Markdown is plain enough for GitHub: anchors are ``<a id="...">`` tags, not
attribute lists, and traps are a nested list, not a collapsible block.

The data come from the command line (``python -m initdiag schema`` and ``inits --format json``), the
interface users see, so the hook does not depend on where a module lives inside the package.

API pages write ``::: initdiag.NAME`` for a public name; the hook replaces it with the module path
that defines it (from ``initdiag._LAZY``), so the page does not change when modules move.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
UPDATE = "python docs/hooks.py --update"
# a generated part: its opening marker (a bare one, without an end, is filled in by --update), its text
PART = re.compile(
    r"^<!-- generated: (?P<kind>\w+)[^\n]*-->\n(?:(?P<body>.*?)^<!-- end generated: (?P=kind) -->$)?",
    flags=re.M | re.S,
)
AUTODOC = re.compile(r"^::: initdiag\.(\w+)$", flags=re.M)


@functools.cache
def _initdiag(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "initdiag", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdiag {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


# --- markdown helpers -----------------------------------------------------------------------------

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _md(text: str) -> str:
    """Prose as literal markdown text (underscores, stars and bars escaped)."""
    return _SPECIAL.sub(r"\\\1", str(text))


def _code(text: str) -> str:
    text = str(text)
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}".replace("|", "\\|")


def _anchor(name: str) -> str:
    """A link target that GitHub and MkDocs both keep (a heading's ``{#id}`` shows as text on GitHub)."""
    return f'<a id="{name}"></a>'


def _table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" * len(headers)
    rule = ["--:" if a == "r" else ":--" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- the spec-file reference from the JSON Schema ---------------------------------------------------


def _number(x) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _type(node: dict) -> str:
    """A schema node's type in words: ``integer ≥ 1``, ``list of 1 to 3 integers ≥ 1``, `a` or `b`."""
    if "$ref" in node:
        return "[layer](#schema-layer)"
    if "enum" in node:
        values = [_code(v) for v in node["enum"]]
        return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
    if "const" in node:
        return _code(node["const"])
    if "anyOf" in node:
        return " or ".join(_type(option) for option in node["anyOf"])
    kind = node.get("type")
    if kind == "array":
        items = _type(node.get("items", {}))
        for singular in ("integer", "number", "string", "boolean"):
            if items.startswith(singular):
                items = singular + "s" + items[len(singular) :]
        low, high = node.get("minItems"), node.get("maxItems")
        if low is not None and high is not None:
            count = f"{low} " if low == high else f"{low} to {high} "
        elif low:
            count = f"at least {low} "
        else:
            count = ""
        distinct = "distinct " if node.get("uniqueItems") else ""
        return f"list of {count}{distinct}{items}"
    if kind in ("integer", "number"):
        low, high = node.get("minimum"), node.get("maximum")
        xlow, xhigh = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
        if (low is not None or xlow is not None) and (high is not None or xhigh is not None):
            left = f"[{_number(low)}" if low is not None else f"({_number(xlow)}"
            right = f"{_number(high)}]" if high is not None else f"{_number(xhigh)})"
            return f"{kind} in {left}, {right}"
        if low is not None:
            return f"{kind} ≥ {_number(low)}"
        if xlow is not None:
            return f"{kind} > {_number(xlow)}"
        return kind
    if kind == "string" and "pattern" in node:
        return f"string matching {_code(node['pattern'])}"
    if kind == "object":
        return "table (below)"
    return str(kind)


def _prose(text: str) -> str:
    """A schema description (Markdown with backticks) inside a table cell."""
    return str(text).replace("|", "\\|").replace("<", "&lt;")


def _properties(node: dict, prefix: str = "", required_by: dict[str, list[str]] | None = None) -> str:
    required = set(node.get("required", ()))
    rows = []
    for key, child in node.get("properties", {}).items():
        need = "yes" if key in required else ""
        if required_by and key in required_by:
            need = "for " + ", ".join(_code(k) for k in required_by[key])
        rows.append([_code(prefix + key), _type(child), need, _prose(child.get("description", ""))])
    return _table(["key", "type", "required", "meaning"], rows)


def schema_reference() -> str:
    schema = json.loads(_initdiag("schema"))
    out = [
        f"The format is a JSON Schema ({_md(schema['$schema'].rsplit('/', 2)[-2])} draft), "
        f"printed by `initdiag schema`; this reference is generated from it (`{UPDATE}`).",
        "",
        _prose(schema.get("description", "")),
        "",
        _anchor("schema-top-level"),
        "",
        "### Top level",
        "",
        _properties(schema),
        "",
        "Unknown keys are refused at every level." if schema.get("additionalProperties") is False else "",
    ]
    for key, child in schema["properties"].items():
        if child.get("type") == "object":
            description = _prose(child.get("description", ""))
            out += ["", _anchor(f"schema-{key}"), "", f"### `{key}`", "", description, ""]
            out.append(_properties(child, prefix=f"{key}."))
    layer = schema["$defs"]["layer"]
    required_by: dict[str, list[str]] = {}
    for rule in layer.get("allOf", ()):
        kind = rule["if"]["properties"]["kind"]["const"]
        for key in rule["then"].get("required", ()):
            required_by.setdefault(key, []).append(kind)
    out += ["", _anchor("schema-layer"), "", "### A layer", "", _prose(layer.get("description", "")), ""]
    out.append(_properties(layer, prefix="", required_by=required_by))
    if "dense" in required_by.get("units", ()):
        out += ["", "A layer without `kind` is `dense`, so it needs `units`."]
    return "\n".join(out)


# --- the reference card -------------------------------------------------------------------------------


@functools.cache
def _card() -> dict:
    return json.loads(_initdiag("inits", "--format", "json"))


def initializer_table() -> str:
    rows = [
        [
            f"[{_code(e['name'])}](#init-{e['name']})",
            ", ".join(_code(a) for a in e["aliases"]) or "–",
            _md(e["distribution"]),
            _md(e["fan_mode"]),
            _md(e["gain"]),
            _md(e["summary"]),
        ]
        for e in _card()["initializers"]
    ]
    return _table(["name", "aliases", "distribution", "fan", "gain", "when"], rows)


def gain_table() -> str:
    gains = _card()["gains"]
    headers = list(gains[0])
    rows = [[_code(g[headers[0]]), *(_md(g[h]) for h in headers[1:-1]), _md(g[headers[-1]])] for g in gains]
    return _table([_md(h) for h in headers], rows, align="lrrl")


_SECTIONS = (
    ("formula", "formula", True),
    ("syntax", "syntax", True),
    ("distribution", "distribution", False),
    ("fan mode", "fan_mode", False),
    ("gain", "gain", False),
    ("paper", "paper", False),
    ("PyTorch", "torch", False),
    ("Keras", "keras", False),
    ("JAX", "jax", False),
    ("when to use it", "when", False),
)


def initializer_cards() -> str:
    out = []
    for e in _card()["initializers"]:
        out += [_anchor(f"init-{e['name']}"), "", f"### `{e['name']}`", ""]
        if e["aliases"]:
            out += ["Aliases: " + ", ".join(_code(a) for a in e["aliases"]) + ".", ""]
        out += [_md(e["summary"]), ""]
        for label, key, code in _SECTIONS:
            value = e[key]
            out.append(f"- **{label}**: " + (_code(value) if code else _md(value)))
        if e["traps"]:
            out.append("- **traps**:")
            out += [f"    - {_md(trap)}" for trap in e["traps"]]
        out.append("")
    return "\n".join(out)


GENERATORS = {
    "schema": schema_reference,
    "initializers": initializer_table,
    "gains": gain_table,
    "cards": initializer_cards,
}


# --- API paths ------------------------------------------------------------------------------------------


def module_of(name: str) -> str:
    """The module that defines the public name ``initdiag.NAME``, from the table by which
    ``initdiag`` imports its public names on first use."""
    sys.path.insert(0, str(ROOT))
    try:
        import initdiag
    finally:
        sys.path.remove(str(ROOT))
    lazy = getattr(initdiag, "_LAZY", {})
    if name not in lazy:
        raise KeyError(f"::: initdiag.{name}: not a public name of initdiag (initdiag._LAZY)")
    return f"initdiag.{lazy[name]}"


# --- doctest blocks in docstrings ----------------------------------------------------------------------


def _doctest_extension():
    """A Markdown extension that shows a paragraph of ``>>>`` lines (a doctest in a docstring) as a
    highlighted Python session, where Markdown would read it as three nested quotes."""
    from markdown import Extension
    from markdown.blockprocessors import BlockProcessor
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonConsoleLexer

    class Doctest(BlockProcessor):
        def test(self, parent, block) -> bool:
            return block.startswith(">>> ")

        def run(self, parent, blocks) -> None:
            html = highlight(
                blocks.pop(0), PythonConsoleLexer(), HtmlFormatter(cssclass="highlight", wrapcode=True)
            )
            paragraph = parent.makeelement("p", {})
            paragraph.text = self.parser.md.htmlStash.store(html)
            parent.append(paragraph)

    class DoctestExtension(Extension):
        def extendMarkdown(self, md) -> None:
            md.parser.blockprocessors.register(Doctest(md.parser), "doctest", 25)  # before quotes (20)

    return DoctestExtension()


# --- the hooks ------------------------------------------------------------------------------------------


def on_config(config):
    # mkdocstrings renders docstrings with this same list of extensions
    config.markdown_extensions.append(_doctest_extension())
    return config


def generated(kind: str, where: str = "docs") -> str:
    if kind not in GENERATORS:
        raise KeyError(f"{where}: unknown generated part {kind!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[kind]().rstrip("\n") + "\n"


def fill(markdown: str, where: str = "docs") -> str:
    """*markdown* with every generated part (re)written from the code, between its two markers."""

    def part(match: re.Match) -> str:
        kind = match.group("kind")
        begin, end = f"<!-- generated: {kind} ({UPDATE}) -->", f"<!-- end generated: {kind} -->"
        return f"{begin}\n{generated(kind, where)}{end}"

    return PART.sub(part, markdown)


def pages_with_parts() -> list[Path]:
    return [path for path in sorted(DOCS.rglob("*.md")) if PART.search(path.read_text(encoding="utf-8"))]


def stale_pages() -> list[Path]:
    """The pages whose generated parts differ from what the code generates now."""
    out = []
    for path in pages_with_parts():
        text = path.read_text(encoding="utf-8")
        if fill(text, str(path.relative_to(ROOT))) != text:
            out.append(path)
    return out


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = fill(markdown, page.file.src_path)
    return AUTODOC.sub(lambda m: f"::: {module_of(m.group(1))}.{m.group(1)}", markdown)


def main(argv: list[str]) -> int:
    """``--update``: rewrite the generated parts of every page; ``--check``: list the stale ones."""
    if argv not in (["--update"], ["--check"]):
        sys.stderr.write("usage: python docs/hooks.py --update | --check\n")
        return 2
    stale = stale_pages()
    for path in stale:
        if argv == ["--update"]:
            path.write_text(fill(path.read_text(encoding="utf-8"), str(path)), encoding="utf-8")
        print(f"{'updated' if argv == ['--update'] else 'stale'}: {path.relative_to(ROOT)}")
    return 1 if stale and argv == ["--check"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
