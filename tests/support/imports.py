"""The import graph of a Python package, read from its source with ``ast`` (nothing imported):
which of its modules each module imports, at the top or inside a function."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

Graph = dict[str, set[str]]


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package folder ``root``
    (a package is named by its ``__init__.py``)."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph(root: Path) -> Graph:
    """Module -> the package's own modules it names in an import statement, anywhere in it."""
    modules = module_names(root)
    graph: Graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = {
            target
            for target in _targets(tree, name, is_package, modules.keys())
            if target in modules and target != name
        }
    return graph


def _targets(
    tree: ast.Module, name: str, is_package: bool, modules: Collection[str]
) -> Iterator[str]:
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):  # every statement: a function's imports count too
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                # ``from package import module`` needs the module; ``from package import
                # name`` needs what the package's __init__ holds.
                module = f"{base}.{alias.name}"
                yield module if module in modules else base


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    anchor = parts[: len(parts) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def cycles(graph: Graph) -> list[list[str]]:
    """Each strongly connected group of more than one module, as one cycle through some of them
    (Tarjan's algorithm; a group is reported once, by a path that closes on itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_loop_in(graph, group) for group in groups]


def _loop_in(graph: Graph, group: set[str]) -> list[str]:
    """A path through ``group`` that comes back to where it started."""
    start = min(group)
    path = [start]
    seen = {start}
    node = start
    while True:
        nxt = min(n for n in graph[node] if n in group)
        path.append(nxt)
        if nxt in seen:
            return path[path.index(nxt) :]
        seen.add(nxt)
        node = nxt
