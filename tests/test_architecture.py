"""The house keeps its shape (ARCHITECTURE.md): imports flow one way, from the edges down to the math,
with no circle between modules, and no module grows past ~500 lines unless it is data. Read from
the modules' own import statements (at any depth, lazy ones included; imports only for type
annotations, under ``if TYPE_CHECKING:``, are not imports at run time and are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "initdiag"

# lower layers never import higher ones; errors and _version are below everything
LAYERS = {"core": 0, "network": 1, "analysis": 2, "adapters": 2, "render": 3, "cli": 4}
ROOT_MODULES = {"errors": -1, "_version": -1, "__init__": 5, "__main__": 5, "torch": 5}
# modules that are mostly data (tables of names, the reference card's text): allowed to be long
DATA_MODULES = {"core/reference.py", "core/names.py"}
MAX_LINES = 520


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT_MODULES["__init__"]
    if parts[1] in LAYERS:
        return LAYERS[parts[1]]
    return ROOT_MODULES[parts[1]]


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside ``if TYPE_CHECKING:`` blocks."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom | ast.Import):
                    lines.add(inner.lineno)
    return lines


def imports_of(path: Path) -> set[str]:
    """The initdiag modules a module imports (relative imports resolved; `from . import x` is the
    module x when it is one)."""
    tree = ast.parse(path.read_text())
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    skip = _type_checking_only(tree)
    out = set()
    for node in ast.walk(tree):
        if node.lineno in skip if hasattr(node, "lineno") else False:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("initdiag"):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                out.add(candidate if _is_module(candidate) else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("initdiag"))
    out.discard(here)
    return out


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {i for i in imports_of(path) if i in MODULES} for name, path in MODULES.items()}


def test_every_module_is_in_a_known_folder():
    for name in MODULES:
        parts = name.split(".")
        assert len(parts) == 1 or parts[1] in LAYERS or parts[1] in ROOT_MODULES, name


def test_imports_flow_from_the_edges_down_to_the_math():
    wrong = []
    for name, targets in GRAPH.items():
        for target in targets:
            # a package's __init__ may import its own modules (the cli registers its commands)
            if layer_of(target) > layer_of(name) and not target.startswith(name + "."):
                wrong.append(f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    """Tarjan's strongly connected components of the import graph: every one a single module."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_math_imports_no_numpy_free_module_with_numpy():
    """The reference card (and so `initdiag inits`/`explain` start-up) must not import numpy."""
    for name in ("initdiag.core.names", "initdiag.core.reference", "initdiag.core.callspec"):
        tree = ast.parse(MODULES[name].read_text())
        imported = {
            a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        imported |= {
            n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        }
        assert "numpy" not in imported, name


def test_no_module_over_about_500_lines_unless_it_is_data():
    long = []
    for path in MODULES.values():
        relative = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and relative not in DATA_MODULES:
            long.append(f"{relative}: {lines} lines")
    assert not long, long


def test_the_check_itself_sees_a_circle_and_a_wrong_way_import(tmp_path):
    """The graph is read right: the known edges are there."""
    assert "initdiag.core.activations" in GRAPH["initdiag.analysis.probe"]
    assert "initdiag.network.graph" in GRAPH["initdiag.network.stack"]
    assert "initdiag.network.stack" not in GRAPH["initdiag.network.graph"]  # annotations only
    assert layer_of("initdiag.cli.app") > layer_of("initdiag.render.probe") > layer_of("initdiag.core.ops")
