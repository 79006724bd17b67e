"""How an export run becomes part of the dataset's history in Redis: the run's scratch sets of
ids, applied to the exported set with the cursor once its manifest is in S3 (``commit``), and
the repair of a commit a crash cut short (``reconcile``: manifests in S3 that Redis has not seen).

Commit protocol (docs/export-layout.md): data objects first, then the manifest, then Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis

from likeloop_server import keys
from likeloop_server.counters import PAIRS_EXPORTED
from likeloop_server.stored import stream_id
from workers.storage.s3io import json_objects, read_jsonl_gz

from .layout import Layout
from .logscan import READ_CHUNK


def _chunks(items: list[Any], size: int = READ_CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class RunSets:
    """Scratch sets in Redis of the ids one export run added and retracted: they dedupe the
    run's rows and become the exported set's change at commit, without the worker holding ids."""

    def __init__(self, pk: keys.ProjectKeys, export_id: str) -> None:
        self.added = pk.export_run_added(export_id)
        self.retracted = pk.export_run_retracted(export_id)

    def reset(self, conn: redis.Redis) -> None:
        conn.delete(self.added, self.retracted)


def _ledger_ids(row: dict[str, Any]) -> list[str]:
    """Ids in a ledger or retractions line: a chunk's ``pair_ids``, or one row's ``pair_id``."""
    return row["pair_ids"] if "pair_ids" in row else [row["pair_id"]]


def _load_manifest_ids(conn: redis.Redis, s3: Any, bucket: str, manifest: dict[str, Any], sets: RunSets) -> None:
    """Fill a run's scratch sets from a committed manifest's ledger and retraction files."""
    sets.reset(conn)
    for f in manifest["files"]:
        target = {"ledger": sets.added, "retractions": sets.retracted}.get(f["kind"])
        if target is not None:
            for chunk in _chunks([i for r in read_jsonl_gz(s3, bucket, f["key"]) for i in _ledger_ids(r)]):
                conn.sadd(target, *chunk)


def commit(conn: redis.Redis, pk: keys.ProjectKeys, manifest: dict[str, Any], manifest_key: str, sets: RunSets) -> None:
    """Make Redis reflect a committed incremental manifest: exported set, cursor, committed key."""
    pipe = conn.pipeline(transaction=True)
    # As commands, not the pipeline's methods: a cluster client's pipeline refuses those by name
    # (the keys are all of the project's slot: one transaction on one shard either way).
    pipe.execute_command("SUNIONSTORE", pk.exported, pk.exported, sets.added)
    pipe.execute_command("SDIFFSTORE", pk.exported, pk.exported, sets.retracted)
    pipe.set(pk.export_cursor, manifest["cursor"]["to"])
    pipe.set(pk.export_committed, manifest_key)
    pipe.hincrby(pk.stats_total, PAIRS_EXPORTED, manifest["stats"]["pairs_exported_delta"])
    # Entries up to the cursor are in S3 now; trimming them keeps Redis bounded.
    pipe.xtrim(pk.pair_log, minid=manifest["cursor"]["to"], approximate=False)  # "~" trims 10,000 at most
    pipe.delete(sets.added, sets.retracted)
    pipe.execute()


def reconcile(conn: redis.Redis, pk: keys.ProjectKeys, s3: Any, layout: Layout) -> int:
    """Apply manifests that reached S3 but not Redis (a crash between the two). Returns count.

    Manifests are listed after the last committed one; their names sort in run order. Those of
    older versions were the export id alone, stamped when the export was requested, which sorts
    out of run order when exports ran in another order (one retried after another held the
    lock, two in one second). So the pair-log range decides too: a manifest whose range ends at
    or before the cursor is already in Redis and is skipped (re-applying it would move the
    cursor back and export its range again)."""
    committed = (conn.get(pk.export_committed) or b"").decode()
    if committed and not committed.startswith(layout.manifests):
        committed = layout.manifest(committed)  # an export id, as older versions recorded it
    start_after = committed
    cursor = stream_id((conn.get(pk.export_cursor) or b"0-0").decode())
    applied = 0
    for key, manifest in json_objects(s3, layout.bucket, layout.manifests, start_after):
        if manifest.get("mode") == "incremental" and stream_id(manifest["cursor"]["to"]) > cursor:
            sets = RunSets(pk, manifest["export_id"])
            _load_manifest_ids(conn, s3, layout.bucket, manifest, sets)
            commit(conn, pk, manifest, key, sets)
            cursor = stream_id(manifest["cursor"]["to"])
            applied += 1
    return applied
