"""Moving an event archive from one place in S3 to another: an archive kept where versions
before kept it by default (``<LIKELOOP_S3_URL>/_archive``, under the datasets' prefix) to where it
is kept now (``LIKELOOP_ARCHIVE_URL``, by default ``_archive`` beside the datasets). A project's
objects are copied, its commit records rewritten to name the parts at their new keys, and the old
objects deleted, while the project's archive lock is held, so no archive run or rebuild of it
runs meanwhile. Run again after a failure, it finishes the move. Until an archive is moved, the
archive runs, compaction and rebuilds of its projects refuse to start (``check_not_left_behind``)
rather than split it in two.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlparse

import redis

from likeloop_server import keys
from likeloop_server.errors import ConfigError
from likeloop_server.identity import new_id, valid_project_name
from likeloop_server.settings import Settings
from workers.storage.run_lock import ArchiveLock

from .layout import ArchiveLayout

log = logging.getLogger(__name__)


def _root(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.netloc, parsed.path.strip("/")


def _objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return [o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]


def projects_under(s3: Any, url: str) -> list[str]:
    """The projects an archive at ``url`` holds (a folder each)."""
    bucket, prefix = _root(url)
    base = f"{prefix}/" if prefix else ""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"][len(base) :].rstrip("/")
            if valid_project_name(name):
                found.append(name)
    return sorted(found)


def check_not_left_behind(s3: Any, settings: Settings, project: str) -> None:
    """ConfigError if the project's archive is still where an older version kept it by default:
    writing or reading the new place meanwhile would split the archive in two."""
    old = settings.old_default_archive_url
    if old is None:
        return
    bucket, prefix = _root(old)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{project}/", MaxKeys=1)
    if listed.get("KeyCount", 0):
        new = f"s3://{settings.archive_bucket}/{settings.archive_prefix}"
        raise ConfigError(
            f"the archive of {project!r} is still at {old}, where versions before this one kept it; this one "
            f"keeps it at {new}: move it with 'likeloop archive --move-from {old}' (or set "
            f"LIKELOOP_ARCHIVE_URL={old} to keep it where it is)"
        )


def move_archive(conn: redis.Redis, s3: Any, settings: Settings, old_url: str) -> dict[str, dict[str, int]]:
    """Move every project's archive from ``old_url`` to the configured place. Returns, per
    project, the objects moved and the commit records rewritten."""
    new_bucket, new_prefix = settings.archive_bucket, settings.archive_prefix
    old_bucket, old_prefix = _root(old_url)
    if (old_bucket, old_prefix) == (new_bucket, new_prefix):
        raise ConfigError(f"{old_url} is where the archive is kept already")
    return {project: _move_project(conn, s3, settings, old_url, project) for project in projects_under(s3, old_url)}


def _move_project(conn: redis.Redis, s3: Any, settings: Settings, old_url: str, project: str) -> dict[str, int]:
    old_bucket, old_prefix = _root(old_url)
    old_root = f"{old_prefix}/{project}" if old_prefix else project
    new_root = ArchiveLayout(settings, project).root
    lock = ArchiveLock(conn, keys.ProjectKeys(project).archive_lock, new_id(), settings.archive_lock_ttl_s)
    lock.acquire()  # no archive run or rebuild of the project meanwhile (ArchiveBusy if one runs)
    try:
        moved = rewritten = 0
        for key in _objects(s3, old_bucket, old_root + "/"):
            target = new_root + key[len(old_root) :]
            if "/_commits/" in key:
                record = json.loads(s3.get_object(Bucket=old_bucket, Key=key)["Body"].read())
                for part in record.get("parts", []):
                    part["key"] = new_root + part["key"][len(old_root) :]
                s3.put_object(Bucket=settings.archive_bucket, Key=target, Body=json.dumps(record).encode())
                rewritten += 1
            else:
                s3.copy_object(
                    Bucket=settings.archive_bucket, Key=target, CopySource={"Bucket": old_bucket, "Key": key}
                )
            moved += 1
            lock.renew()
        # Deleted only once everything is at its new place: a move cut short is run again.
        for key in _objects(s3, old_bucket, old_root + "/"):
            s3.delete_object(Bucket=old_bucket, Key=key)
        log.info("moved the archive of %s: %d objects, %d commit records rewritten", project, moved, rewritten)
        return {"objects": moved, "commit_records": rewritten}
    finally:
        lock.release()
