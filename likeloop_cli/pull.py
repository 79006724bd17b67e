"""Pulling an export down: the objects its manifest lists, each checked against the manifest's
size and sha256, laid out as in S3 with the dataset card beside them, so ``datasets.load_dataset``
reads the folder offline as it would the bucket."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from likeloop_server.errors import IntegrityError, NotFound
from likeloop_server.settings import Settings
from workers.dataset.card import dataset_card
from workers.export.layout import Layout

# Objects are read and hashed this much at a time: memory stays flat whatever their size.
READ_BYTES = 1 << 20

Progress = Callable[[int], None]  # called with each chunk's size in bytes


def find_manifest(
    s3: Any, layout: Layout, export_id: str | None = None, file_format: str = "jsonl"
) -> tuple[str, dict[str, Any]]:
    """(key, manifest) of the export named ``export_id``, else of the latest snapshot; either
    must hold ``file_format`` files. Raises NotFound saying what exists instead."""
    names = sorted(
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=layout.bucket, Prefix=layout.manifests)
        for obj in page.get("Contents", [])
    )  # names sort in the order the exports ran
    export_now = f"likeloop export --project {layout.project} --mode snapshot{_flag(file_format)} --wait"
    if not names:
        raise NotFound(
            f"no export of project {layout.project!r} under s3://{layout.bucket}/{layout.root}/: check the "
            f"project's name and LIKELOOP_S3_URL; a project with feedback exports with '{export_now}'",
            field="project",
        )
    if export_id is not None:
        wanted = [k for k in names if k.endswith(f"-{export_id}.json") or k == layout.manifest(export_id)]
        if not wanted:
            raise NotFound(f"no export {export_id!r} of project {layout.project!r} in S3", field="export")
        manifest = _read_json(s3, layout.bucket, wanted[-1])
        if not _holds(manifest, file_format):
            raise NotFound(f"export {export_id} wrote no {_NAMES[file_format]} files", field="export")
        return wanted[-1], manifest
    latest, holding = None, None
    for key in reversed(names):
        manifest = _read_json(s3, layout.bucket, key)
        if manifest.get("mode") != "snapshot":
            continue
        latest = latest or manifest
        if _holds(manifest, file_format):
            holding = (key, manifest)
            break
    if latest is None:
        raise NotFound(f"project {layout.project!r} has no snapshot export yet: run '{export_now}'", field="project")
    if holding is None:
        raise NotFound(
            f"no snapshot of project {layout.project!r} wrote {_NAMES[file_format]} files: run '{export_now}'",
            field="parquet",
        )
    if holding[1] is not latest:
        raise NotFound(
            f"the latest snapshot ({latest['export_id']}) wrote no {_NAMES[file_format]} files; snapshot "
            f"{holding[1]['export_id']} did: 'likeloop pull --project {layout.project} --export "
            f"{holding[1]['export_id']}{_flag(file_format)} --to ...', or a current one: '{export_now}'",
            field="parquet",
        )
    return holding


_NAMES = {"jsonl": "JSON lines", "parquet": "Parquet"}


def _flag(file_format: str) -> str:
    return " --parquet" if file_format == "parquet" else ""


def _holds(manifest: dict[str, Any], file_format: str) -> bool:
    return any(f["kind"] == "pairs" and f.get("file_format") == file_format for f in manifest["files"])


def _read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def files_to_pull(manifest: dict[str, Any], file_format: str) -> list[dict[str, Any]]:
    """The manifest's dataset files in ``file_format`` (jsonl or parquet)."""
    return [f for f in manifest["files"] if f["kind"] == "pairs" and f["file_format"] == file_format]


# Written by pull itself beside the data files: no manifest entry may land on them.
_OWN_FILES = ("README.md", "manifest.json")


def targets(dest: Path, root: str, files: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Path]]:
    """Where each file goes: its key below the dataset's root, under ``dest``. A manifest naming
    a key outside that root, or one whose path would leave ``dest`` (absolute, ``..``, through a
    link) or land on the card or the manifest, is refused whole (IntegrityError), before
    anything is written: whoever can write a manifest cannot make pull write elsewhere."""
    inside = dest.resolve()
    planned = []
    for f in files:
        key = f["key"]
        relative = key.removeprefix(root + "/")
        if not key.startswith(root + "/") or not relative or relative.startswith("/") or "\\" in relative:
            raise IntegrityError(f"the manifest names {key!r}, which is not a file of this dataset ({root}/)")
        parts = Path(relative).parts
        target = (inside / relative).resolve()
        if ".." in parts or not target.is_relative_to(inside) or relative in _OWN_FILES:
            raise IntegrityError(f"the manifest names {key!r}, which would be written outside {dest}")
        planned.append((f, target))
    return planned


def download(s3: Any, bucket: str, key: str, target: Path, size: int, sha256: str, progress: Progress) -> None:
    """One object to ``target``, through a temporary file renamed only once it matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest, written = hashlib.sha256(), 0
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with open(partial, "wb") as out:
        while chunk := body.read(READ_BYTES):
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
            progress(len(chunk))
    if written != size or digest.hexdigest() != sha256:
        partial.unlink()
        raise IntegrityError(
            f"{key}: got {written} bytes with sha256 {digest.hexdigest()}; its manifest says {size} and {sha256}"
        )
    os.replace(partial, target)


def pull(
    s3: Any,
    settings: Settings,
    project: str,
    dest: Path,
    export_id: str | None = None,
    parquet: bool = False,
    on_plan: Callable[[int], None] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Download an export (the latest snapshot unless ``export_id``) into ``dest``: its data
    files, a dataset card and its manifest. ``on_plan`` gets the total bytes before the first
    download; ``progress`` each chunk's size. Returns what was pulled."""
    layout = Layout(settings, project)
    file_format = "parquet" if parquet else "jsonl"
    manifest_key, manifest = find_manifest(s3, layout, export_id, file_format)
    files = files_to_pull(manifest, file_format)
    total = sum(f["bytes"] for f in files)
    if on_plan is not None:
        on_plan(total)
    planned = targets(dest, layout.dataset_root(file_format), files)  # all checked before any is written
    for f, target in planned:
        download(s3, layout.bucket, f["key"], target, f["bytes"], f["sha256"], progress or (lambda n: None))
    card = dataset_card(manifest, file_format, layout.dataset_root(file_format))
    (dest / "README.md").write_text(card, encoding="utf-8")
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return {
        "project": project,
        "export_id": manifest["export_id"],
        "mode": manifest["mode"],
        "manifest": f"s3://{layout.bucket}/{manifest_key}",
        "to": str(dest),
        "file_format": file_format,
        "files": len(files),
        "bytes": total,
        "counts": manifest["counts"],
        "configs": sorted({f["format"] for f in files}),
    }
