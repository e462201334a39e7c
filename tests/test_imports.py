"""Imports inside the package run one way: the graph of scenes' modules has no cycle.

Every import statement counts, also the lazy ones inside functions: a cycle that only shows
at call time is still two modules that each need the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def package_modules(root: Path = SRC) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is_package) for every module of ``scenes``."""
    modules = {}
    for path in sorted((root / "scenes").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def imported_modules(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (``from .x import y`` counts as .x.y when y is a
    module, else as .x)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    modules = package_modules(root)
    return {
        name: imported_modules(name, path, is_pkg, set(modules))
        for name, (path, is_pkg) in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_package_modules_import_each_other_one_way():
    graph = import_graph()
    assert "scenes.models.registry" in graph and "scenes.models.base" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# The top level grouped by job, lowest first: a module may import its own layer's shared
# modules and anything below, never above; the rooms of one layer never import each other.
LAYERS = [
    # shared facts and helpers every layer uses
    {
        "scenes.atomic",
        "scenes.cache_folders",
        "scenes.errors",
        "scenes.console",
        "scenes.csvfile",
        "scenes.outputs",
        "scenes.config",
        "scenes.rundir",
        "scenes.selection_file",
        "scenes.metrics",
        "scenes.plots",
        "scenes.choices",
        "scenes.overrides",
        "scenes.config_sections",
        "scenes.config_serve",
        "scenes.config_model",
    },
    {"scenes.data"},
    {"scenes.models"},
    {"scenes.training", "scenes.serve"},
    {
        "scenes.evaluation",
        "scenes.explain",
        "scenes.label_issues",
        "scenes.selection",
        "scenes.tune",
    },
    # the Hub folder's card reads evaluations and label issues; review queues them
    {"scenes.hub", "scenes.review"},
    {"scenes.cli", "scenes", "scenes.__main__"},
]


def room_of(module: str) -> str:
    """``scenes.serve.app`` -> ``scenes.serve``; top-level modules are their own room."""
    parts = module.split(".")
    return ".".join(parts[:2])


def layer_of(room: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def test_every_module_has_a_place_in_the_layers():
    rooms = {room_of(m) for m in import_graph()}
    assert not [r for r in rooms if not any(r in layer for layer in LAYERS)]


def test_the_rooms_import_one_way_down():
    wrong = []
    for module, imported in import_graph().items():
        room = room_of(module)
        for other in imported:
            target = room_of(other)
            shared = layer_of(room) in (0, len(LAYERS) - 1)  # modules, not rooms: no sideways
            if target == room or shared and layer_of(target) == layer_of(room):
                continue
            if layer_of(target) >= layer_of(room):
                wrong.append(f"{module} -> {other}")
    assert not wrong, "imports that run up or sideways: " + ", ".join(sorted(wrong))


SHARED_BY_BACKENDS = {"scenes.models.base", "scenes.models.weights"}
OUTSIDE_MODELS = {"scenes.errors"}  # the user errors every layer raises


def test_the_backends_depend_only_on_the_shared_modules():
    graph = import_graph()
    for shared in SHARED_BY_BACKENDS:  # leaves of scenes.models: they import no backend
        assert not graph[shared] & {m for m in graph if m.startswith("scenes.models.")}, shared
    for backend in ("scenes.models.hf_backend", "scenes.models.timm_backend"):
        assert graph[backend] - OUTSIDE_MODELS == SHARED_BY_BACKENDS, backend
    assert {"scenes.models.hf_backend", "scenes.models.timm_backend"} <= graph[
        "scenes.models.registry"
    ]


def test_cycle_finder_finds_a_cycle_written_the_old_way(tmp_path):
    """registry importing a backend that imports registry back (as before the split)."""
    pkg = tmp_path / "scenes" / "models"
    pkg.mkdir(parents=True)
    (tmp_path / "scenes" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .registry import build_model\n")
    (pkg / "registry.py").write_text("def build_model(): ...\nfrom .timm_backend import T\n")
    (pkg / "timm_backend.py").write_text("from .registry import build_model\nT = 1\n")
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle is not None and set(cycle) == {
        "scenes.models.registry",
        "scenes.models.timm_backend",
    }


MAX_LINES = 300


def module_files() -> list[str]:
    return [str(path.relative_to(SRC)) for path, _ in package_modules().values()]


@pytest.mark.parametrize("module", module_files())
def test_no_module_is_over_300_lines(module):
    """A module longer than this holds more than one thing: split it by purpose."""
    lines = len((SRC / module).read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by purpose"


def scenes_names_imported(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for each ``from scenes... import name`` and ``import scenes...``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scenes"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("scenes")]
    return found


@pytest.mark.parametrize(
    "script", sorted((SRC.parent / "benchmarks").glob("*.py")), ids=lambda p: p.name
)
def test_benchmarks_import_only_what_the_package_has(script):
    """Benchmarks run alone, never in the suite: a name the package no longer has would only
    show when someone reruns a figure (predict_scale.py imported a removed bundle_digest)."""
    import importlib

    for module, name in scenes_names_imported(script):
        imported = importlib.import_module(module)
        if name is not None and not hasattr(imported, name):
            importlib.import_module(f"{module}.{name}")  # a submodule, or ModuleNotFoundError
