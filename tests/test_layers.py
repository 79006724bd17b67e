"""The packages stand in floors: the core imports nothing above it, the service and the workers
stand on the core only, and only the front door (likeloop_cli) imports all three. Inside the
workers, each room imports only the rooms below it, pure rules import no I/O, and no module takes
part in an import cycle (imports inside functions count too)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("likeloop_server", "service", "workers", "likeloop_cli")
# package -> the project packages it may import
ALLOWED = {
    "likeloop_server": {"likeloop_server"},
    "service": {"likeloop_server", "service"},
    "workers": {"likeloop_server", "workers"},
    "likeloop_cli": {"likeloop_server", "service", "workers", "likeloop_cli"},
}
# A room of the workers (a subpackage, or a module directly in workers/) -> the other rooms it
# may import. Storage, the dataset rows and a process's connections are the floor; the jobs'
# entry points, the cron and the rebuild (which replays through every room) the roof.
_FLOOR = {"workers.context", "workers.sweep", "workers.storage", "workers.dataset"}
ROOMS = {
    "workers": set(),
    "workers.context": set(),
    "workers.sweep": set(),
    "workers.storage": set(),
    "workers.dataset": set(),
    "workers.archive": {"workers.context", "workers.sweep", "workers.storage"},
    "workers.compaction": {"workers.context", "workers.sweep", "workers.storage", "workers.archive"},
    "workers.pairing": {"workers.context", "workers.dataset", "workers.compaction"},
    "workers.quality": _FLOOR | {"workers.archive", "workers.compaction", "workers.pairing"},
    "workers.export": _FLOOR | {"workers.archive", "workers.compaction", "workers.pairing", "workers.quality"},
    "workers.ai": {"workers.context", "workers.sweep", "workers.archive", "workers.pairing"},
    "workers.erasure": _FLOOR
    | {"workers.archive", "workers.compaction", "workers.pairing", "workers.export", "workers.quality"},
    "workers.stats_rollup": {"workers.context", "workers.sweep"},
    "workers.migrate": {"workers.dataset"},
    "workers.rebuild": _FLOOR
    | {"workers.archive", "workers.export", "workers.pairing", "workers.stats_rollup", "workers.erasure"},
    "workers.jobs": _FLOOR
    | {
        "workers.archive",
        "workers.compaction",
        "workers.pairing",
        "workers.export",
        "workers.ai",
        "workers.stats_rollup",
        "workers.erasure",
        "workers.quality",
    },
    "workers.cron": {"workers.jobs"},
}
# Rules as pure functions: they import no I/O (no Redis, queue, S3, network, model client), and
# none of the workers' rooms that do.
PURE = (
    "workers.dataset",
    "workers.pairing.rules",
    "workers.erasure.scope",
    "workers.pairing.population",
    "workers.pairing.digest",
    "workers.quality.figures",
    "workers.quality.voters",
    "workers.quality.dupes",
)
IO_LIBRARIES = {"redis", "rq", "boto3", "botocore", "openai", "socket", "http", "urllib", "requests"}
MAX_MODULES_IN_WORKERS = 10


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for top in PACKAGES for p in sorted((ROOT / top).rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports (at any depth, lazy ones too): the project's modules by full
    name (``from pkg import mod`` counts as ``pkg.mod``), other libraries by top-level name."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name if a.name in modules else a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source not in modules:
                found.add(source.split(".")[0])
                continue
            submodules = {f"{source}.{a.name}" for a in node.names} & modules.keys()
            found.update(submodules or {source})
    return found - {name}


def room_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {m: imports_of(p, modules) for m, p in modules.items()}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_floors_below_it(package, graph):
    wrong = {
        m: sorted({d.split(".")[0] for d in deps} & ALLOWED.keys() - ALLOWED[package])
        for m, deps in graph.items()
        if m.split(".")[0] == package
    }
    assert {m: p for m, p in wrong.items() if p} == {}


def test_each_room_of_the_workers_imports_only_the_rooms_below_it(graph):
    wrong = {}
    for module, deps in graph.items():
        if module.startswith("workers"):
            room = room_of(module)
            assert room in ROOMS, f"{room} is a room of the workers with no place in ROOMS: give it one"
            climbs = {room_of(d) for d in deps if d.startswith("workers")} - {room, "workers"} - ROOMS[room]
            if climbs:
                wrong[module] = sorted(climbs)
    assert wrong == {}


@pytest.mark.parametrize("pure", PURE)
def test_pure_rules_import_no_io(pure, graph):
    rules = {m: deps for m, deps in graph.items() if m == pure or m.startswith(pure + ".")}
    assert rules
    io = {
        m: sorted(d for d in deps if d in IO_LIBRARIES or room_of(d) in ("workers.storage", "workers.context"))
        for m, deps in rules.items()
    }
    assert {m: d for m, d in io.items() if d} == {}


def test_storage_imports_no_job(graph):
    storage = {m: deps for m, deps in graph.items() if m.startswith("workers.storage")}
    assert storage
    assert {m: sorted(d for d in deps if d.startswith("workers.")) for m, deps in storage.items()} == {
        m: [] for m in storage
    }


def test_no_module_takes_part_in_an_import_cycle(graph):
    cycles = strongly_connected(graph)
    assert [sorted(c) for c in cycles if len(c) > 1] == []


def test_the_workers_folder_holds_few_modules_directly():
    direct = sorted(p.name for p in (ROOT / "workers").glob("*.py"))
    assert len(direct) <= MAX_MODULES_IN_WORKERS, direct


def test_the_cycle_finder_finds_a_cycle():
    assert [sorted(c) for c in strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) if len(c) > 1] == [
        ["a", "b", "c"]
    ]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (the graph has hundreds of nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out
