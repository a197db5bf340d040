"""The package's import graph has no circles, between modules or between its rooms.

Every module under ``src/dicebert`` is parsed with :mod:`ast` (imports at module level *and*
inside functions, which hide a circle from Python but not from a reader), relative imports are
resolved, and ``import a.b.c`` counts as an arrow to the deepest module that exists. A circle is
reported as the list of modules that form it.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "dicebert"
#: The rooms of the house (subpackages); an arrow between two rooms may point one way only.
ROOMS = ("data", "models", "losses", "reporting", "sweeps", "baselines")


def module_names(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """``dotted name → file`` for every module of the package (``pkg/__init__.py`` is ``pkg``)."""
    names = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (``from ..x import y`` inside ``module``)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]  # a module's relative imports start from its package
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _deepest(name: str, known: Iterable[str]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (``a.b.func`` → ``a.b``)."""
    known = set(known)
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """``module → modules it imports`` (within the package), from every import statement in the file."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                # ``from pkg import sub`` imports the submodule sub when it is one
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                found = _deepest(target, modules)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One circle ``[a, b, …, a]`` of the directed graph, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph.get(child, ()))))
    return None


def room_of(module: str) -> str:
    """``dicebert.losses.dice`` → ``losses``; a top-level module is its own room."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def room_graph(graph: Mapping[str, Iterable[str]], rooms: Iterable[str] = ROOMS) -> dict[str, set[str]]:
    """Arrows between the rooms (subpackages), arrows inside a room left out."""
    rooms = set(rooms)
    out: dict[str, set[str]] = {room: set() for room in rooms}
    for module, targets in graph.items():
        source = room_of(module)
        if source not in rooms:
            continue
        out[source].update(room_of(t) for t in targets if room_of(t) in rooms and room_of(t) != source)
    return out


def test_find_cycle_reports_a_hidden_circle(tmp_path: Path) -> None:
    """The checker itself: a function-local, relative import that closes a circle is found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from pkg.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from .sub.a import other\n    import pkg.c.name\n")
    (pkg / "c.py").write_text("import os\n")
    graph = import_graph(module_names(tmp_path, "pkg"))
    assert graph["pkg.b"] == {"pkg.sub.a", "pkg.c"}
    assert find_cycle(graph) == ["pkg.b", "pkg.sub.a", "pkg.b"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def test_no_circle_between_modules() -> None:
    modules = module_names()
    assert f"{PACKAGE}.train" in modules and len(modules) > 40  # the scan found the package
    cycle = find_cycle(import_graph(modules))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_circle_between_rooms() -> None:
    graph = import_graph(module_names())
    rooms = room_graph(graph)
    cycle = find_cycle(rooms)
    if cycle is not None:  # name the module-level arrows behind each room arrow
        arrows = [
            f"{m} -> {t}"
            for a, b in itertools.pairwise(cycle)
            for m, targets in graph.items()
            if room_of(m) == a
            for t in targets
            if room_of(t) == b
        ]
        pytest.fail("circle between rooms " + " -> ".join(cycle) + ": " + "; ".join(arrows))
