"""The package's layers: imports point one way (down), there are no cycles, and the cogs never reach
the model libraries. Read from the source with ``ast``; nothing is imported or executed.

Layers, bottom to top (each may import itself and the ones named in ``ALLOWED``):
base (errors, bounds, faces, report, timing, streams, zbuffer) -> files -> stages | export -> serve -> web -> app
(config, build, cli, commands, preflight, logs) -> cogs -> bot. The cogs sit on serve, not on stages, web or app.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "base": (
        "t2f",
        "t2f.errors",
        "t2f.bounds",
        "t2f.faces",
        "t2f.report",
        "t2f.timing",
        "t2f.streams",
        "t2f.zbuffer",
    ),
    "files": ("t2f.files",),
    "stages": ("t2f.stages",),
    "export": ("t2f.export",),
    "serve": ("t2f.serve",),
    "web": ("t2f.web",),
    "app": (
        "t2f.config",
        "t2f.config.values",
        "t2f.preflight",
        "t2f.logs",
        "t2f.build",
        "t2f.stack",
        "t2f.cli",
        "t2f.commands",
        "t2f.web_commands",
        "t2f.evaluate",
        "t2f.__main__",
    ),
    "cogs": ("cogs",),
    "bot": ("bot",),
}
ALLOWED = {
    "base": {"base"},
    "files": {"base", "files"},
    "stages": {"base", "files", "stages"},
    "export": {"base", "files", "export"},
    "serve": {"base", "files", "stages", "export", "serve"},
    "web": {"base", "files", "export", "serve", "web"},
    "app": {"base", "files", "stages", "export", "serve", "web", "app"},
    "cogs": {"base", "files", "serve", "cogs"},
    "bot": {"base", "files", "serve", "web", "app", "cogs", "bot"},
}
# The first modules of the base import nothing of t2f at all.
LEAVES = ("t2f.errors", "t2f.faces", "t2f.timing")
# What the Discord side must never load, directly or through anything it imports.
HEAVY = {"torch", "diffusers", "transformers", "tensorflow", "mtcnn", "sqlite3"}

Graph = dict[str, set[tuple[str, int]]]  # module -> {(imported module, line)}


def source_modules(root: Path) -> dict[str, Path]:
    """Every module of the project by dotted name."""
    paths = [root / "bot.py", *root.glob("t2f/**/*.py"), *root.glob("cogs/**/*.py")]
    modules = {}
    for path in paths:
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """(module, names, line) for each import, inside functions too; ``if TYPE_CHECKING:`` blocks are
    skipped because they never run (type hints only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (item for child in node.orelse for item in _imports(ast.Module([child], [])))
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, tuple(alias.name for alias in node.names), node.lineno
        yield from _imports(node)


def import_graph(root: Path) -> tuple[Graph, dict[str, set[str]]]:
    """Internal edges between project modules, and each module's third-party top-level imports."""
    modules = source_modules(root)
    graph: Graph = {name: set() for name in modules}
    external: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, names, line in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if target.split(".")[0] not in ("t2f", "cogs", "bot"):
                external[name].add(target.split(".")[0])
                continue
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            for imported in submodules or [target]:
                graph[name].add((imported, line))
    return graph, external


def layer_of(module: str) -> str:
    """The layer a module belongs to (the longest matching prefix wins)."""
    matches = [
        (len(prefix), layer)
        for layer, prefixes in LAYERS.items()
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer; add it to LAYERS in tests/test_layout.py")
    return max(matches)[1]


def direction_violations(graph: Graph) -> list[str]:
    """Every import that points up or sideways, and every import of t2f by a base leaf."""
    found = []
    for module, edges in sorted(graph.items()):
        for target, line in sorted(edges):
            if module in LEAVES and target.startswith("t2f"):
                found.append(f"{module}:{line} imports {target}, but {module} must import nothing of t2f")
            elif layer_of(target) not in ALLOWED[layer_of(module)]:
                found.append(f"{module}:{line} imports {target} ({layer_of(module)} -> {layer_of(target)})")
    return found


def cycles(graph: Graph) -> list[list[str]]:
    """Import cycles between modules (each found once, as the path that closes it)."""
    found, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target, _ in sorted(graph[module]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif state.get(target) == 0:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module, [module])
    return found


def reachable(graph: Graph, start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target, _ in graph[todo.pop()]:
            if target in graph and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.fixture(scope="module")
def project() -> tuple[Graph, dict[str, set[str]]]:
    return import_graph(ROOT)


def test_every_import_points_down(project: tuple[Graph, dict[str, set[str]]]) -> None:
    graph, _ = project
    assert direction_violations(graph) == []


def test_there_are_no_import_cycles(project: tuple[Graph, dict[str, set[str]]]) -> None:
    graph, _ = project
    assert cycles(graph) == []


def test_the_cogs_never_reach_the_model_libraries_or_sqlite(project: tuple[Graph, dict[str, set[str]]]) -> None:
    graph, external = project
    for cog in (name for name in graph if name.startswith("cogs")):
        reached = {lib: module for module in reachable(graph, cog) for lib in external[module] & HEAVY}
        assert reached == {}, f"{cog} reaches {sorted(reached)} through {sorted(set(reached.values()))}"


def test_the_library_never_imports_discord(project: tuple[Graph, dict[str, set[str]]]) -> None:
    _, external = project
    assert [module for module, libs in external.items() if module.startswith("t2f") and "discord" in libs] == []


def test_no_module_is_over_400_lines() -> None:
    """Counted as ruff formats them (``make test`` runs ``ruff format --check``), with nothing hidden from the
    formatter (next test): a module with one subject stays short without packing its lines."""
    long = {name: n for name, path in source_modules(ROOT).items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


# Lines the formatter may leave alone: data tables only, each named here with why (none at present).
FORMATTER_EXEMPT: dict[str, str] = {}


def test_nothing_is_hidden_from_the_formatter() -> None:
    files = [*source_modules(ROOT).values(), *ROOT.glob("tests/*.py"), *ROOT.glob("bench/*.py")]
    marker = "fmt" + ": "  # split, so this file does not match itself
    hidden = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if marker + "skip" in line or marker + "off" in line
    ]
    assert [place for place in hidden if place.split(":")[0] not in FORMATTER_EXEMPT] == []


def test_the_checks_catch_an_upward_import_a_cycle_and_a_heavy_cog(
    project: tuple[Graph, dict[str, set[str]]],
) -> None:
    graph, external = project
    upward = {module: set(edges) for module, edges in graph.items()}
    upward["t2f.stages.detect"].add(("t2f.serve.jobs", 1))  # a stage reaching into the serving layer
    assert direction_violations(upward) == ["t2f.stages.detect:1 imports t2f.serve.jobs (stages -> serve)"]
    looped = {**upward, "t2f.serve.jobs": {*graph["t2f.serve.jobs"], ("t2f.stages.detect", 1)}}
    assert ["t2f.serve.jobs", "t2f.stages.detect", "t2f.serve.jobs"] in [cycle[-3:] for cycle in cycles(looped)]
    heavy = {**external, "t2f.serve.jobs": {*external["t2f.serve.jobs"], "torch"}}
    cog = "cogs.face"
    assert "torch" in {lib for module in reachable(graph, cog) for lib in heavy[module]}


def test_a_type_checking_import_is_not_an_edge() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\nelse:\n    import json\n"
    assert [module for module, _, _ in _imports(ast.parse(source))] == ["typing", "json"]
