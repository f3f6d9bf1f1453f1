"""No import cycles between fcnkit's modules (issue 14, acceptance 2).

Every ``import`` and ``from ... import`` statement counts, including the ones inside
functions (a lazy import hides a cycle, it does not remove it). ``from pkg import name``
is an edge to ``pkg.name`` when that is a module, else to ``pkg`` (its ``__init__``).
"""

from __future__ import annotations

import ast

import networkx as nx

from tests.design._source import Module, modules

#: The root package is the public facade (``fcnkit.load``, ``fcnkit.compile``...), whose
#: helpers import lazily; modules import only the ``__version__`` constant from it.
FACADE = "fcnkit"


def _targets(mod: Module, node: ast.AST, names: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        pkg = mod.name.split(".") if mod.path.endswith("__init__.py") else mod.name.split(".")[:-1]
        pkg = pkg[: len(pkg) - node.level + 1]
        base = ".".join(pkg + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]


def import_graph() -> nx.DiGraph:
    """Module -> modules it imports (fcnkit's own only)."""
    mods = modules()
    names = {m.name for m in mods}
    graph = nx.DiGraph()
    graph.add_nodes_from(names - {FACADE})
    for m in mods:
        for node in ast.walk(m.tree):
            for t in _targets(m, node, names):
                if t in names and t != m.name and FACADE not in (t, m.name):
                    graph.add_edge(m.name, t)
    return graph


def test_graph_sees_real_imports():
    graph = import_graph()
    # top-level, function-level and from-package imports are all seen
    assert graph.has_edge("fcnkit.compile.builder", "fcnkit.compile.weights")
    assert graph.has_edge("fcnkit.compile.store", "fcnkit.compile.builder")  # inside a function
    assert graph.has_edge("fcnkit.deploy.onnx.rewrite", "fcnkit.compile")    # from the package
    assert len(graph) > 100


def test_no_import_cycles():
    cycles = sorted(" -> ".join(c + c[:1]) for c in nx.simple_cycles(import_graph()))
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_cycle_detection_finds_a_cycle():
    # the detector itself: a lazy import back into an importer is a cycle
    graph = import_graph()
    graph.add_edge("fcnkit.compile.weights", "fcnkit.compile.builder")
    assert any(set(c) == {"fcnkit.compile.weights", "fcnkit.compile.builder"}
               for c in nx.simple_cycles(graph))
