"""What the distribution ships: every package of the tree, also in the container image."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def packages() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_package_folder_of_the_tree_is_in_the_distribution():
    on_disk = {
        str(init.parent.relative_to(ROOT)).replace("/", ".")
        for top in ("likeloop_server", "service", "workers", "likeloop_cli")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk == set(packages())


def test_the_image_copies_every_top_level_package():
    copied = {
        line.split()[1] for line in (ROOT / "deploy/Dockerfile").read_text().splitlines() if line.startswith("COPY")
    }
    assert {p.split(".")[0] for p in packages()} <= copied
