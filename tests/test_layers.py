"""The package's layers: no import cycles, and inference never imports training.

The import graph is read from the source (every ``import``/``from ... import`` anywhere in a
module, also inside functions and ``if TYPE_CHECKING:``: a lazy import is still a dependency).
``from . import x`` depends on the submodule ``x``, not on the package's ``__init__``.

The layers, bottom to top (docs/architecture.md): ``hand_model`` -> ``dir_net`` -> ``data`` ->
``detection``, ``fitting``, ``network`` -> ``pipeline`` -> ``ros`` -> ``tools``; ``training`` and
``evaluation`` sit beside them and only they may import training code.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = "interhand_perception"
SRC = Path(__file__).resolve().parents[1] / "src" / PKG
#: Packages that run on the robot: none of them may import ``training`` (directly or not).
INFERENCE = ("hand_model", "dir_net", "data", "detection", "fitting", "network", "pipeline", "ros")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: modules of the package it imports}."""
    files = {module_name(f): f for f in SRC.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: None if is_pkg else -1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names} & files.keys()
                deps |= subs
                if len(subs) < len(node.names) and target in files:
                    deps.add(target)
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PKG


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_graph_sees_lazy_and_relative_imports(graph):
    assert "interhand_perception.dir_net.build" in graph["interhand_perception.network.reconstructor"]
    assert "interhand_perception.hand_model.lbs" in graph["interhand_perception.hand_model.rotation_np"]
    assert "interhand_perception.tools.demo" in graph["interhand_perception.cli"]      # inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back(graph):
    assert cycles(graph) == []


def test_layers_form_no_cycle(graph):
    packages = {}
    for module, deps in graph.items():
        packages.setdefault(layer(module), set()).update(layer(d) for d in deps if layer(d) != layer(module))
    assert cycles(packages) == [], packages


def test_inference_never_reaches_training(graph):
    """Also not through another module: what the node imports must not pull in training code."""
    bad = []
    for start in (m for m in graph if layer(m) in INFERENCE):
        seen, todo = {start}, [start]
        while todo:
            for d in graph[todo.pop()]:
                if layer(d) == "training":
                    bad.append(f"{start} -> ... -> {d}")
                elif d not in seen:
                    seen.add(d)
                    todo.append(d)
    assert bad == [], "\n".join(sorted(set(bad)))
