"""The package's layout is checked, not remembered: every module's imports (read with ast, function bodies included) go only downward through the rooms, with no circle; modules and classes stay small."""
import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "gruinfer"

# Rooms from the bottom up: a module may import its own room and rooms of a lower rank, never
# a room of its own rank or above (session -> caches -> stream -> lower | interp -> graph -> onnx_io).
RANK = {"errors": 0, "feeds": 1, "_core": 1, "options": 1, "profile": 1, "binding": 1, "clib": 1,
        "onnx_io": 2, "model_file": 2, "graph": 3, "rewrite": 3, "interp": 4, "lower": 4, "stream": 5,
        "caches": 6, "compiled": 6, "session": 7, "gruinfer": 8, "cli_feeds": 9, "cli_bench": 10, "cli": 11}
# Rooms allowed fewer imports than their rank gives: the rewrites read ONNX and nothing else.
ONLY = {"rewrite": {"errors", "onnx_io"}}
MAX_MODULE_LINES, MAX_CLASS_LINES = 600, 300


def modules():
    """{dotted module name: path} of every .py module of the package (data/ holds scripts)."""
    return {".".join(("gruinfer",) + p.relative_to(PKG).with_suffix("").parts).replace(".__init__", ""): p
            for p in sorted(PKG.rglob("*.py")) if "data" not in p.relative_to(PKG).parts}


def imports(name, path):
    """What `name` imports of gruinfer anywhere in its file (top level and inside functions), as
    (module, names) pairs: `from m import a, b` is (m, [a, b]), `import m` is (m, [])."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "gruinfer"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                mod = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "gruinfer":
                mod = node.module
            else:
                continue
            out.append((mod, [a.name for a in node.names]))
    return out


def room(mod):
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "gruinfer"


def violations(graph):
    """What breaks the rules in an import graph {module: imported modules}: upward or sideways
    imports between rooms, imports a room is not allowed, and circles."""
    found = []
    for mod, deps in graph.items():
        r = room(mod)
        for dep in deps:
            d = room(dep)
            if d == r:
                continue
            if d not in RANK or RANK[d] >= RANK[r] or (r in ONLY and d not in ONLY[r]):
                found.append(f"{mod} imports {dep}: room {r!r} may not import room {d!r}")
    state = {}

    def visit(mod, path):
        state[mod] = "open"
        for dep in sorted(graph.get(mod, ())):
            if dep not in graph:
                continue
            if state.get(dep) == "open":
                found.append("circle: " + " -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[mod] = "done"

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    return found


def package_graph():
    """{module: the package's modules it imports}: `from m import a` imports module m.a when
    there is one, else m."""
    mods = modules()
    known = set(mods) | {"gruinfer._core"}
    graph = {}
    for name, path in mods.items():
        deps = set()
        for mod, names in imports(name, path):
            subs = {f"{mod}.{a}" for a in names} & known
            deps |= subs if subs and len(subs) == len(names) else {mod} | subs
        graph[name] = (deps & known) - {name}
    return graph


def test_imports_go_only_downward_without_circles():
    graph = package_graph()
    assert {"gruinfer.session", "gruinfer.lower.lowering", "gruinfer.rewrite.cells"} <= graph.keys()
    assert violations(graph) == []


def test_the_checker_sees_upward_imports_and_circles():
    """The rule check itself: an upward import, a sideways one, a forbidden one and a circle."""
    bad = {
        "gruinfer.graph": {"gruinfer.lower.steps"},             # upward
        "gruinfer.lower.steps": {"gruinfer.interp.run"},        # sideways (same rank)
        "gruinfer.rewrite.cells": {"gruinfer.feeds"},           # rewrite reads ONNX only
        "gruinfer.interp.run": {"gruinfer.interp.loop"},
        "gruinfer.interp.loop": {"gruinfer.interp.run"},        # a circle inside a room
    }
    found = violations(bad)
    assert len([f for f in found if "may not import" in f]) == 3, found
    assert any(f.startswith("circle: gruinfer.interp.") for f in found), found


def test_relative_imports_are_read_as_modules():
    graph = package_graph()
    assert "gruinfer.onnx_io.proto" in graph["gruinfer.graph"]
    assert "gruinfer.lower.frames" in graph["gruinfer.lower.lowering"]  # from . import frames
    assert "gruinfer.rewrite" in graph["gruinfer.session"]             # imported inside a method
    assert "gruinfer._core" in graph["gruinfer.stream"]


def test_the_c_layer_calls_no_python_module_but_errors():
    """_core.pyx is the thin layer: it raises gruinfer's errors and imports nothing else of the
    package (no call up into the pipeline)."""
    text = (PKG / "_core.pyx").read_text()
    found = re.findall(r"^\s*(?:from\s+(\.\S*)\s+c?import|import\s+(gruinfer\S*))", text, re.M)
    assert {m[0] or m[1] for m in found} <= {".errors"}, found


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_and_classes_stay_small(name):
    path = modules()[name]
    text = path.read_text()
    assert text.startswith('"""'), f"{path}: opens with a docstring line saying what it is for"
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path}: over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{path}: class {node.name} has {size} lines"
