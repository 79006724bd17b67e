"""The packages stand in floors: the core imports nothing above it, the service and the workers
stand on the core only, and only the front door (likeloop_cli) imports all three."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> the project packages it may import
ALLOWED = {
    "likeloop_server": {"likeloop_server"},
    "service": {"likeloop_server", "service"},
    "workers": {"likeloop_server", "workers"},
    "likeloop_cli": {"likeloop_server", "service", "workers", "likeloop_cli"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in a module (at any depth, lazy ones too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & ALLOWED.keys()


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_floors_below_it(package):
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules
    wrong = {str(m.relative_to(ROOT)): imported_packages(m) - ALLOWED[package] for m in modules}
    assert {m: sorted(p) for m, p in wrong.items() if p} == {}
