"""MkDocs hooks: the parts of the site that are generated from initdiag itself, so they cannot drift.

A page asks for a generated part with a marker on a line of its own:

- ``<!-- generated: schema -->``: the spec-file reference, from the JSON Schema ``initdiag schema``
  prints (every key, its type and constraints, its description; the layer keys each kind requires);
- ``<!-- generated: initializers -->``: the reference card's table, one row per initializer (what
  ``initdiag inits --format markdown`` prints);
- ``<!-- generated: gains -->``: the gain table (PyTorch's ``calculate_gain`` beside the
  second-moment gain);
- ``<!-- generated: cards -->``: every initializer's card (``initdiag explain NAME``): formula,
  syntax, paper, PyTorch / Keras / JAX spellings, when to use it, and its traps.

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
MARKER = re.compile(r"^<!-- generated: (\w+) -->$", flags=re.M)
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
        "printed by `initdiag schema`; this reference is generated from it when the site is built.",
        "",
        _prose(schema.get("description", "")),
        "",
        "### Top level {#schema-top-level}",
        "",
        _properties(schema),
        "",
        "Unknown keys are refused at every level." if schema.get("additionalProperties") is False else "",
    ]
    for key, child in schema["properties"].items():
        if child.get("type") == "object":
            out += ["", f"### `{key}` {{#schema-{key}}}", "", _prose(child.get("description", "")), ""]
            out.append(_properties(child, prefix=f"{key}."))
    layer = schema["$defs"]["layer"]
    required_by: dict[str, list[str]] = {}
    for rule in layer.get("allOf", ()):
        kind = rule["if"]["properties"]["kind"]["const"]
        for key in rule["then"].get("required", ()):
            required_by.setdefault(key, []).append(kind)
    out += ["", "### A layer {#schema-layer}", "", _prose(layer.get("description", "")), ""]
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
        out += [f"### `{e['name']}` {{#init-{e['name']}}}", ""]
        if e["aliases"]:
            out += ["Aliases: " + ", ".join(_code(a) for a in e["aliases"]) + ".", ""]
        out += [_md(e["summary"]), ""]
        for label, key, code in _SECTIONS:
            value = e[key]
            out.append(f"- **{label}**: " + (_code(value) if code else _md(value)))
        if e["traps"]:
            out += ["", '??? warning "Traps"', ""]
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


def on_page_markdown(markdown: str, page, config, files) -> str:
    def generate(match: re.Match) -> str:
        kind = match.group(1)
        if kind not in GENERATORS:
            raise KeyError(f"{page.file.src_path}: unknown generated part {kind!r}")
        return GENERATORS[kind]()

    markdown = MARKER.sub(generate, markdown)
    return AUTODOC.sub(lambda m: f"::: {module_of(m.group(1))}.{m.group(1)}", markdown)
