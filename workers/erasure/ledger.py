"""The erasure ledger's copy in the archive (``<archive>/<project>/_erasures.json``): what a
rebuild puts back in Redis before it replays anything, so erased users and responses stay
erased after Redis is lost. It holds keyed hashes and erasure times, never ids."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from workers.archive.layout import ArchiveLayout
from workers.storage.s3io import put_json

VERSION = 1


def save(s3: Any, layout: ArchiveLayout, entries: dict[str, str]) -> None:
    put_json(s3, layout.bucket, layout.erasures, {"version": VERSION, "project": layout.project, "entries": entries})


def load(s3: Any, layout: ArchiveLayout) -> dict[str, str]:
    """The archived ledger's entries; empty when the project has none."""
    try:
        body = s3.get_object(Bucket=layout.bucket, Key=layout.erasures)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return {}
        raise
    return dict(json.loads(body).get("entries", {}))
