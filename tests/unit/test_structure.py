"""The shape of src/: files small enough to read in one sitting, and no import circles between
modules (a circle means neither module can be understood, or imported, without the other)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import cycles, import_graph, module_names

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "tracos_sync"
MAX_LINES = 350


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_file_of_src_is_over_the_line_limit() -> None:
    sizes = {
        path.relative_to(SRC).as_posix(): _lines(path) for path in sorted(PACKAGE.rglob("*.py"))
    }
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert over == {}, f"split these by job (at most {MAX_LINES} lines a file): {over}"


def test_no_import_cycle_between_modules_of_src() -> None:
    found = cycles(import_graph(PACKAGE))
    assert found == [], "import cycles: " + "; ".join(" -> ".join(loop) for loop in found)


# Layers: a package's modules may import only these packages of ours (the domain nothing else;
# the mapping only the domain, so that it can be tested and run without any adapter).
MAY_IMPORT = {
    "tracos_sync.domain": ("tracos_sync.domain",),
    "tracos_sync.mapping": ("tracos_sync.domain", "tracos_sync.mapping"),
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_domain_and_the_mapping_import_only_their_own_layers() -> None:
    graph = import_graph(PACKAGE)
    crossing = sorted(
        f"{module} -> {target}"
        for package, allowed in MAY_IMPORT.items()
        for module, targets in graph.items()
        if _within(module, package)
        for target in targets
        if not any(_within(target, layer) for layer in allowed)
    )
    assert crossing == [], f"imports across layers: {crossing}"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # A circle closed by an import inside a function counts.
        (
            {
                "__init__.py": "",
                "a.py": "from .b import x\n",
                "b.py": "def f():\n    from .a import y\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
        ),
        # ``from . import module`` and absolute imports of a subpackage's module.
        (
            {
                "__init__.py": "",
                "a.py": "from . import b\n",
                "sub/__init__.py": "",
                "sub/c.py": "import pkg.a\n",
                "b.py": "from pkg.sub.c import z\n",
            },
            [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]],
        ),
        # ``from .. import module`` from a subpackage needs that module, not the package's
        # __init__ (which may import the subpackage without a circle).
        (
            {
                "__init__.py": "from .sub.c import z\n",
                "sub/__init__.py": "",
                "sub/c.py": "from .. import a\n",
                "a.py": "import os\n",
            },
            [],
        ),
        (
            {"__init__.py": "", "a.py": "from .b import x\n", "b.py": "import json\n"},
            [],
        ),
    ],
)
def test_cycles_are_read_from_the_source(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    root = _package(tmp_path, files)
    named = {n.removesuffix(".py").removesuffix("__init__").strip("/") for n in files}
    assert set(module_names(root)) == {
        ".".join(["pkg", *filter(None, [n])]).replace("/", ".") for n in named
    }
    assert cycles(import_graph(root)) == expected
