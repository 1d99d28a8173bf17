"""The import graph of tui/ has no cycles and no layer breaks, and no module is over 600 lines (issue 14).

Built from the source with `ast`: every import statement counts, function-local ones included, except those under
`if TYPE_CHECKING:` (they never run). Relative imports are resolved, and `from pkg import name` points at
pkg/name.py when that is a module, else at pkg/__init__.py. An edge to a package's own `__init__` from inside the
package is kept (it is a real import), but the implicit "importing a.b runs a/__init__" is not an edge. A string
constant that is exactly a tui module's dotted name (``COMMAND_MODULES`` handed to ``importlib.import_module``)
counts as an import too; names built at run time (the lazy ``__getattr__`` of a package) are not seen.

Layers: core is UI-free and CLI-free; the UI may use core but not the CLI; the router may use core only.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "tui"

# layer -> layers it must not import
FORBIDDEN = {
    "core": {"cli", "ui", "router"},
    "ui": {"cli"},
    "router": {"ui", "cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, skipping the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The deepest tui module that `name` names (a module or package), or None if outside tui."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    mods = all_modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = mod.split(".")
                    if not is_pkg:
                        base = base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    pkg = ".".join(base + ([node.module] if node.module else []))
                else:
                    pkg = node.module or ""
                for a in node.names:
                    sub = f"{pkg}.{a.name}"
                    targets.append(sub if sub in mods else pkg)
            for t in targets:
                r = _resolve(t, mods)
                if r and r != mod:
                    graph[mod].add(r)
        for node in ast.walk(tree):  # dynamic imports by literal name
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in mods:
                r = node.value
                if r and r != mod:
                    graph[mod].add(r)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan, then a path inside)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    sccs: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)

    cycles = []
    for comp in sccs:
        members = set(comp)
        start = comp[0]
        # BFS from start back to start inside the component: the shortest cycle through it.
        prev: dict[str, str] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        path = [found]
        while path[-1] != start:
            path.append(prev[path[-1]])
        path.reverse()
        cycles.append(path + [start] + [f"(component: {len(comp)} modules: {', '.join(comp)})"])
    return cycles


def layer(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        banned = FORBIDDEN.get(layer(mod) or "", set())
        for d in sorted(deps):
            if layer(d) in banned:
                bad.append(f"{mod} -> {d}")
    return bad


def test_the_graph_sees_imports():
    """The builder itself works: known edges, a function-local one, a relative one."""
    g = import_graph()
    assert "tui.core.registry" in g and "tui.cli.main" in g
    assert "tui.core.registry" in g["tui.core.supervisor"]
    assert any(d.startswith("tui.cli.") for d in g["tui.cli.main"])
    assert "tui.cli.cmd_models" in g["tui.cli.main"]  # through COMMAND_MODULES and importlib
    tree = ast.parse("if TYPE_CHECKING:\n    import a\ndef f():\n    import b\nfrom . import c\n")
    names = [n.names[0].name for n in _imports(tree)]
    assert sorted(names) == ["b", "c"]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles in tui/:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_layer_breaks():
    bad = layer_breaks(import_graph())
    assert not bad, ("layer breaks (core must not import cli/ui/router, ui not cli, router not ui/cli):\n"
                     + "\n".join(bad))


def test_no_module_over_600_lines():
    """Small modules with one job each (issue 14): a module that grows past 600 lines is split by job."""
    big = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not big, f"modules over 600 lines (split them by job): {big}"
