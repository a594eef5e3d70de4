"""The house: one package, `anomstream`, whose rooms import one way.

Rooms, from the ground up: the core (errors, logging, configuration helpers, the CLI dispatcher,
directly in anomstream/), models/, stream/ (the worker), brokers/ (the brokers to test and demo on),
replay/, benchmarks/; the package's face (anomstream/__init__.py, __main__.py) re-exports the public
API on top. Imports are read from the source (every `import`, also inside functions and under
TYPE_CHECKING), so a lazy import that runs back up is caught too.
"""

from __future__ import annotations

import ast
import graphlib
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Bottom to top: a room may import the rooms before it, never one after it.
ORDER = ("core", "models", "stream", "brokers", "replay", "benchmarks", "face")
FACE_FILES = {"__init__.py", "__main__.py"}
TEST_TOOLS = ("pytest", "hypothesis", "testcontainers", "docker")


def package_dirs(repo: Path = REPO) -> dict[str, Path]:
    """pyproject.toml's package-dir: subpackage name -> folder (`anomstream.stream` -> stream/)."""
    mapping = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {name: repo / folder for name, folder in mapping.items()}


def room_of_file(path: Path, dirs: dict[str, Path]) -> str:
    for name, folder in dirs.items():
        if path.parent == folder:
            if name == "anomstream":
                return "face" if path.name in FACE_FILES else "core"
            return name.split(".", 1)[1]
    raise AssertionError(f"{path} is in no package folder")


def room_of_module(module: str, rooms: set[str], core: set[str]) -> str | None:
    """The room an absolute module name is in, or None when it is not ours. A name the face hands on
    (`from anomstream import load`) is the face's."""
    parts = module.split(".")
    if parts[0] != "anomstream":
        return None
    if len(parts) > 1 and parts[1] in rooms:
        return parts[1]
    return "core" if len(parts) > 1 and parts[1] in core else "face"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file; `from anomstream import x` names anomstream.x."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; use the absolute anomstream.* name"
            base = node.module or ""
            found += [(node.lineno, f"{base}.{alias.name}" if base == "anomstream" else base) for alias in node.names]
    return found


def room_graph(repo: Path = REPO) -> dict[tuple[str, str], list[str]]:
    """(importer room, imported room) -> the places that make the arrow."""
    dirs = package_dirs(repo)
    rooms = {name.split(".", 1)[1] for name in dirs if "." in name}
    core = {path.stem for path in dirs["anomstream"].glob("*.py") if path.name not in FACE_FILES}
    arrows: dict[tuple[str, str], list[str]] = defaultdict(list)
    for folder in dirs.values():
        for path in sorted(folder.glob("*.py")):
            source = room_of_file(path, dirs)
            for line, module in imports(path):
                target = room_of_module(module, rooms, core)
                if target is not None and target != source:
                    arrows[(source, target)].append(f"{path.relative_to(repo)}:{line} imports {module}")
    return arrows


def cycles(arrows: dict[tuple[str, str], list[str]]) -> list[str]:
    """The rooms of one cycle, if the arrows hold one."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in arrows:
        graph[source].add(target)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_rooms_import_each_other_without_a_cycle() -> None:
    arrows = room_graph()
    cycle = cycles(arrows)
    ties = [place for a, b in zip(cycle, cycle[1:]) for place in arrows.get((b, a), [])[:3]]
    assert cycle == [], f"rooms import each other in a circle {' -> '.join(cycle)}: {ties}"


def test_every_import_runs_down_the_declared_order() -> None:
    upward = [
        place
        for (source, target), places in room_graph().items()
        if ORDER.index(target) > ORDER.index(source)
        for place in places
    ]
    assert upward == [], f"imports that run up the house ({' < '.join(ORDER)}): {upward}"


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check has teeth: a models module that imports the worker closes models -> stream -> models."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"anomstream" = "anomstream"\n"anomstream.models" = "models"\n"anomstream.stream" = "stream"\n'
    )
    for folder, text in {
        "anomstream": "from anomstream.errors import AnomstreamError\n",
        "models": "def lazy():\n    from anomstream.stream.worker import Worker\n",
        "stream": "from anomstream.models import artifact\n",
    }.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "thing.py").write_text(text)
    arrows = room_graph(tmp_path)
    assert sorted(set(cycles(arrows))) == ["models", "stream"]
    assert arrows[("models", "stream")] == ["models/thing.py:2 imports anomstream.stream.worker"]


def test_no_module_imports_a_bare_room_name() -> None:
    """Installed, only `anomstream` exists: a bare `import models` works in the repository and nowhere else."""
    bare = {"stream", "models", "replay", "brokers", "benchmarks"}
    files = [p for folder in package_dirs().values() for p in folder.glob("*.py")] + list((REPO / "tests").rglob("*.py"))
    found = [f"{path.relative_to(REPO)}:{line} imports {module}" for path in files for line, module in imports(path) if module.split(".")[0] in bare]
    assert found == []


def test_the_worker_room_holds_no_test_infrastructure() -> None:
    """stream/ is the worker: the broker launchers live in brokers/, and nothing in it imports a test tool."""
    stream = package_dirs()["anomstream.stream"]
    found = [
        f"{path.name}:{line} imports {module}"
        for path in stream.glob("*.py")
        for line, module in imports(path)
        if module.split(".")[0] in TEST_TOOLS or module.startswith("anomstream.brokers")
    ]
    assert found == []
    launchers = [path.name for path in stream.glob("*.py") if any(word in path.read_text() for word in ("mvn", "StorageTool", "KafkaContainer"))]
    assert launchers == []


@pytest.mark.parametrize("name", __import__("anomstream.cli", fromlist=["COMMANDS"]).COMMANDS)
def test_every_command_module_the_dispatcher_names_registers_its_commands(name: str) -> None:
    import importlib

    assert callable(importlib.import_module(name).register)
