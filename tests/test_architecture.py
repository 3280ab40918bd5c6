"""The shape of the code: layers, no import cycles, analyses that never read files, small modules.

The README's architecture section describes the layers; these tests keep the
code in step with it.  Imports are read from the source, every import (also
inside functions, except under ``if TYPE_CHECKING:``), so a cycle between
packages cannot hide behind a function-level import.  Cycles are checked twice:

* between packages (``ecopatch.ledger`` -> ``ecopatch.fieldcheck`` ->
  ``ecopatch.ledger``), through any import: none at all;
* between modules, through the imports run when a module is imported: none
  at all.  Inside one package a function may import a sibling that imports
  its own module (the raster-source protocol opening a path with the file
  reader that implements it): dispatch within a layer, not a cycle of layers.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import ecopatch

SRC = Path(ecopatch.__file__).resolve().parent
ROOT = SRC.parent.parent

#: Layers, lowest first.  A module may import its own layer and the layers listed for it.
BASE = {"ecopatch", "ecopatch.errors", "ecopatch._env", "ecopatch._warnfilters", "ecopatch.vocabulary",
        "ecopatch.options"}
LAYERS: dict[str, set[str]] = {
    "geo": set(),
    "compute": {"geo"},
    "engine": {"geo"},
    "vector": {"geo"},
    "raster": {"geo", "compute", "engine"},
    "analyses": {"geo", "compute", "engine", "raster", "vector"},
    "ledger": {"geo", "vector"},
    "outputs": {"geo", "compute", "engine", "raster", "vector", "analyses", "ledger"},
    "fieldcheck": {"geo", "compute", "engine", "raster", "vector", "analyses", "ledger", "outputs"},
    "data": {"geo", "compute", "engine", "raster", "vector"},
    "run": {"geo", "compute", "engine", "raster", "vector", "analyses", "ledger", "outputs", "fieldcheck", "data"},
}
LAYERS["cli"] = LAYERS["run"] | {"run"}
#: The raster modules an analysis may import: the source protocol and pure array code, never a file reader
#: (``scene``, ``fileread``, ``blocks``, ``products`` ...: a path given to an analysis is opened by
#: :func:`ecopatch.raster.source.as_source`, not by the analysis).
ANALYSIS_RASTER_ALLOWED = {
    "ecopatch.raster",
    "ecopatch.raster.source",
    "ecopatch.raster.ongrid",
    "ecopatch.raster.clouds",
    "ecopatch.raster.masks",
    "ecopatch.raster.radiometry",
    "ecopatch.raster.sensors",
    "ecopatch.raster.xarray_source",
}
#: Third-party file I/O an analysis must not touch (array-only parts of rasterio are fine).
FILE_IO = ("rasterio", "pyogrio", "fiona", "osgeo")
FILE_IO_ALLOWED = ("rasterio.features", "rasterio.transform", "rasterio.windows", "rasterio.warp", "rasterio.enums")
#: "No module over about 1,000 lines" (issue 23): a little over is tolerated, not a second thousand.
MAX_LINES = 1_100


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, *, top_only: bool = False) -> list[tuple[str, list[str], int]]:
    """Imports of a module: (module, names, line), skipping ``if TYPE_CHECKING:`` blocks.

    With ``top_only``, only the imports run when the module is imported (not
    those inside functions or classes).
    """
    out: list[tuple[str, list[str], int]] = []
    stack: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if top_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            stack.append(child)
            if isinstance(child, ast.Import):
                out += [(a.name, [], child.lineno) for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                out.append((child.module, [a.name for a in child.names], child.lineno))
    return out


def _targets(module: str, names: list[str]) -> set[str]:
    """The modules one import statement loads: ``from pkg import submodule`` loads the submodule only
    (the package is already being imported when its own modules run), ``from mod import name`` the module."""
    subs = {f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES}
    if names and len(subs) == len(names):
        return subs
    return subs | ({module} if module in MODULES else set())


def _graph(*, top_only: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for module, names, _ in _imports(path, top_only=top_only):
            graph[name] |= {t for t in _targets(module, names) if t != name and t != "ecopatch"}
    return graph


def _package(module: str) -> str:
    """``ecopatch.ledger.store`` -> ``ecopatch.ledger``; top-level modules are their own package."""
    return ".".join(module.split(".")[:2])


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, deps in _graph().items():
        graph.setdefault(_package(name), set())
        for dep in deps:
            graph.setdefault(_package(dep), set())
            if _package(dep) != _package(name):
                graph[_package(name)].add(_package(dep))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_cycle_between_packages():
    assert _cycles(_package_graph()) == []


def test_no_import_cycle_at_import_time():
    assert _cycles(_graph(top_only=True)) == []


def test_the_cycle_checks_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_belongs_to_a_layer():
    loose = [m for m in MODULES if _layer(m) is None and m not in BASE and m != "ecopatch.testing"]
    assert loose == [], f"modules outside the layers of the README's architecture section: {loose}"


def test_layers_import_only_layers_below():
    wrong = []
    for name, deps in _graph().items():
        own = _layer(name)
        if own is None:
            continue
        for dep in deps:
            other = _layer(dep)
            if other is not None and other != own and other not in LAYERS[own]:
                wrong.append(f"{name} -> {dep}")
            if other is None and dep not in BASE:
                wrong.append(f"{name} -> {dep} (outside the layers)")
    assert wrong == []


def test_analyses_never_read_files():
    wrong = []
    for name, path in MODULES.items():
        if _layer(name) != "analyses":
            continue
        for module, names, line in _imports(path):
            targets = {module, *(f"{module}.{n}" for n in names)} & (set(MODULES) | {module})
            raster = {t for t in targets if t == "ecopatch.raster" or t.startswith("ecopatch.raster.")}
            if raster - ANALYSIS_RASTER_ALLOWED and module not in ANALYSIS_RASTER_ALLOWED:
                wrong.append(f"{name}:{line} imports {module}")
            if module.split(".")[0] in FILE_IO and not module.startswith(FILE_IO_ALLOWED):
                wrong.append(f"{name}:{line} imports {module}")
    assert wrong == []


def test_no_private_name_crosses_modules():
    wrong = []
    for name, path in MODULES.items():
        for module, names, line in _imports(path):
            if not module.startswith("ecopatch") or module == name:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            # A package may import its own private submodules (ecopatch.outputs.maps -> ._base).
            private = [n for n in private if f"{module}.{n}" not in MODULES]
            if private:
                wrong.append(f"{name}:{line} imports {', '.join(private)} from {module}")
    assert wrong == []


def test_modules_are_small():
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert big == {}, f"modules over {MAX_LINES} lines: {big}"


def test_public_api_is_small_and_resolves():
    names = [n for n in ecopatch.__all__ if not n.startswith("_")]
    assert len(names) <= 20, names
    for n in names:
        assert getattr(ecopatch, n) is not None


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layer_packages_import(package):
    importlib.import_module(f"ecopatch.{package}")
