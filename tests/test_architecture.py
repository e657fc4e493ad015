"""The import graph of the harness and the methods has layers and no circle: a new one fails here.

Every ``import`` counts, also those inside functions (a lazy import is still a dependency). Layers, lowest
first: the ground floor (the method contract, the metric engine, torch helpers and ``benchmark/core``), then
datasets and methods (and the registry that finds them), the execution layer, the report and benchmarks,
and the command line on top. A module may import its own layer or a lower one, never a higher one; methods
import only the contract and the torch helpers of the harness.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "baselines", "cfsa")
#: (module prefix, layer); the longest matching prefix decides.
LAYERS = [
    ("benchmark", 0), ("benchmark.contract", 0), ("benchmark.metrics", 0), ("benchmark.torch_utils", 0),
    ("benchmark.core", 0),
    ("benchmark.datasets", 1), ("baselines", 1), ("cfsa", 1), ("benchmark.registry", 1), ("benchmark.testing", 1),
    ("benchmark.execution", 2),
    ("benchmark.report", 3), ("benchmark.perf", 3),
    ("benchmark.cli", 4),
]
METHOD_PACKAGES = ("baselines", "cfsa")
METHOD_MAY_IMPORT = ("benchmark.contract", "benchmark.torch_utils")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from pkg import name`` counts as ``pkg.name`` when that is a
    module, else as ``pkg``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # ``import a.b.c`` of a module a.b.c; else its nearest package
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def layer(module: str) -> int:
    return max((p for p in LAYERS if module == p[0] or module.startswith(p[0] + ".")), key=lambda p: len(p[0]))[1]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items()}


def test_every_module_has_a_layer(graph):
    assert all(isinstance(layer(m), int) for m in graph)


def test_no_module_imports_a_module_above_its_layer(graph):
    upward = sorted(f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
                    for m, deps in graph.items() for d in deps if layer(d) > layer(m))
    assert not upward, "\n".join(upward)


def test_methods_import_only_the_contract_and_torch_helpers_of_the_harness(graph):
    bad = sorted(f"{m} imports {d}" for m, deps in graph.items() if m.split(".")[0] in METHOD_PACKAGES
                 for d in deps if d.split(".")[0] == "benchmark" and d not in METHOD_MAY_IMPORT)
    assert not bad, "\n".join(bad)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module, or of one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

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
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_import_graph_has_no_circle(graph):
    circles = strongly_connected(graph)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_circle_finder_finds_a_circle():
    """The checker itself, on a hand-made graph: a -> b -> c -> a is one circle, d stands alone."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_file_of_the_harness_is_over_450_lines():
    long = sorted(f"{p.relative_to(ROOT)}: {n}" for p in (ROOT / "benchmark").rglob("*.py")
                  if (n := len(p.read_text().splitlines())) > 450)
    assert not long, long
