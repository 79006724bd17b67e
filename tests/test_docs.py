"""The documents a reader relies on stay true to the tree: docs/architecture.md names every
module, in the row of the folder it lives in."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED = ("likeloop_server", "service", "workers", "likeloop_cli", "sdk/likeloop", "bench")
# Package markers and entry shims say nothing a reader needs named.
UNNAMED = {"__init__"}


def documented_modules(text: str) -> set[tuple[str, str]]:
    """(folder, module) of every module the Rooms table names: a row's first cell names the
    folder (blank: the one above), its second the modules, in backticks."""
    found, folder = set(), None
    for line in text[text.index("## Rooms") :].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or cells[0].startswith("---"):
            continue
        folder = cells[0].strip("`") or folder
        found.update((folder, name.removesuffix(".lua")) for name in re.findall(r"`([^`]+)`", cells[1]))
    return found


def modules_on_disk() -> set[tuple[str, str]]:
    python = {
        (f"{path.parent.relative_to(ROOT)}/", path.stem)
        for top in DOCUMENTED
        for path in (ROOT / top).rglob("*.py")
        if path.stem not in UNNAMED
    }
    typescript = {(f"{path.parent.relative_to(ROOT)}/", path.stem) for path in (ROOT / "sdk/js/src").glob("*.ts")}
    return python | typescript


def test_the_architecture_names_every_module_in_its_folder():
    named = documented_modules((ROOT / "docs/architecture.md").read_text())
    assert sorted(modules_on_disk() - named) == []


def test_the_architecture_names_no_module_that_is_gone():
    named = documented_modules((ROOT / "docs/architecture.md").read_text())
    kept = {("service/", "static/"), ("service/", "__init__")}  # a folder of assets; the factory
    assert sorted(named - modules_on_disk() - kept) == []


def key_templates() -> set[str]:
    code = (ROOT / "likeloop_server/keys.py").read_text()
    made = {re.sub(r"\{[^}]+\}", "*", t) for t in re.findall(r'f"\{self\.base\}([^"]+)"', code)}
    return {t for t in made if not t.startswith("*calls")} | {"judgecalls:*", "referencecalls:*"}


def test_every_project_key_a_document_names_exists():
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy/README.md", ROOT / "README.md"]:
        named = {re.sub(r"<[^>]+>", "*", k) for k in re.findall(r"`P:([^`]+)`", doc.read_text())}
        assert sorted(named - key_templates()) == [], doc.name


def test_the_redis_key_layout_names_every_key_the_code_makes():
    """Each project key template of likeloop_server/keys.py is in docs/redis-keys.md, and the
    document names no key the code no longer makes ({kind}calls stands for judge and reference)."""
    made = key_templates()
    doc = (ROOT / "docs/redis-keys.md").read_text()
    named = {re.sub(r"<[^>]+>", "*", k) for k in re.findall(r"`P:([^`]+)`", doc)}
    assert len(made) > 40
    assert (sorted(made - named), sorted(named - made)) == ([], [])
