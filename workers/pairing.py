"""The pairing job: rewrite one prompt group's pair set from its current labels.

Idempotent and safe to run twice or concurrently: it writes under a WATCH on the group's
version counter, and the group leaves the dirty set only in the transaction that wrote the pairs
for its latest version. A job lost to a crash leaves the group dirty; the sweeper re-enqueues it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from likeloop_server import defaults, keys, stored
from likeloop_server.apikeys import list_projects
from likeloop_server.counters import dimension, field, utc_hour
from likeloop_server.projects import get_config
from likeloop_server.queues import enqueue_pairing

from . import context
from .formats import stored_kto, stored_pair
from .rules import ResponseLabels, kto_items, kto_record, make_pairs, pair_record

log = logging.getLogger(__name__)


def load_group(
    conn: redis.Redis, pk: keys.ProjectKeys, group_id: str
) -> tuple[list[ResponseLabels], dict[str, Any], list[str]]:
    """Read a group's responses and feedback. Returns (labels, prompt fields, expired ids)."""
    rids = sorted(r.decode() for r in conn.smembers(pk.group(group_id)))
    labels: list[ResponseLabels] = []
    expired: list[str] = []
    prompt: dict[str, Any] = {}
    for rid, found in zip(rids, stored.read_responses(conn, pk, rids), strict=True):
        if found is None:
            expired.append(rid)
            continue
        r = found.response
        if not prompt:
            prompt = {"prompt": r.get("prompt"), "system": r.get("system"), "messages": r.get("messages")}
        labels.append(
            ResponseLabels(
                response_id=rid,
                text=r["response"],
                model=r.get("model", ""),
                votes=found.votes,
                ratings=found.ratings,
                correction=r.get("correction"),
                comments=tuple(c["text"] for c in found.comments),
                created_at=r["ts"],
            )
        )
    return labels, prompt, expired


def _replace(
    pipe: redis.client.Pipeline,
    conn: redis.Redis,
    keys_: tuple[str, str],
    records: dict[str, bytes],
    log_key: str,
    group_id: str,
    ops: tuple[str, str],
) -> tuple[list[str], list[str]]:
    """Queue the writes that make the group's id set and its records in the project's records
    hash (``keys_``) hold exactly ``records`` (stored forms), logging each change."""
    ids_key, records_key = keys_
    old_ids = {x.decode() for x in conn.smembers(ids_key)}
    added = [rid for rid in records if rid not in old_ids]
    removed = sorted(old_ids - records.keys())
    if removed:
        pipe.srem(ids_key, *removed)
        pipe.hdel(records_key, *removed)
    if added:
        pipe.sadd(ids_key, *added)
        pipe.hset(records_key, mapping={rid: records[rid] for rid in added})
    for rid in added:
        pipe.xadd(log_key, stored.pair_log_entry(ops[0], rid, group_id))
    for rid in removed:
        pipe.xadd(log_key, stored.pair_log_entry(ops[1], rid, group_id))
    return added, removed


def stored_records(conn: redis.Redis, pk: keys.ProjectKeys, group_id: str, kto: bool = False) -> list[dict[str, Any]]:
    """A group's stored pairs (``trl`` rows) or KTO items (``kto`` rows), in id order."""
    if kto:
        ids_key, records_key = pk.group_kto(group_id), pk.kto_records
    else:
        ids_key, records_key = pk.group_pairs(group_id), pk.pair_records
    ids = sorted(conn.smembers(ids_key))
    return [stored.parse_record(v) for v in conn.hmget(records_key, ids) if v is not None] if ids else []


def pair_group(project: str, group_id: str, max_pairs: int | None = None) -> dict[str, int]:
    """RQ job: bring the group's stored pairs in line with its current labels."""
    conn = context.redis_conn()
    cap = max_pairs if max_pairs is not None else context.settings().max_pairs_per_group
    return pair_group_with(conn, project, group_id, cap)


def pair_group_with(
    conn: redis.Redis, project: str, group_id: str, max_pairs: int, strategy: str | None = None
) -> dict[str, int]:
    """Pair one group now; ``strategy`` defaults to the project's configured one."""
    strategy = strategy or get_config(conn, project).strategy
    pk = keys.ProjectKeys(project)
    version_key = pk.group_version(group_id)
    for _ in range(defaults.PAIRING_MAX_ROUNDS):
        with conn.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(version_key)
                labels, prompt, expired = load_group(conn, pk, group_id)
                now = time.time()
                pairs = make_pairs(group_id, labels, max_pairs, strategy)
                records = {p.id: stored_pair(pair_record(p, prompt, now)) for p in pairs}
                items = {k.id: stored_kto(kto_record(k, prompt, now)) for k in kto_items(group_id, labels)}
                pipe.multi()
                # Records that stay keep their stored form (and their original time).
                pair_keys = (pk.group_pairs(group_id), pk.pair_records)
                pair_ops = (stored.PAIR_ADD, stored.PAIR_RETRACT)
                added, removed = _replace(pipe, conn, pair_keys, records, pk.pair_log, group_id, pair_ops)
                kto_keys = (pk.group_kto(group_id), pk.kto_records)
                kto_ops = (stored.KTO_LABEL, stored.KTO_UNLABEL)
                _replace(pipe, conn, kto_keys, items, pk.pair_log, group_id, kto_ops)
                _count_pairs(pipe, pk, group_id, len(added) - len(removed), now)
                if expired:
                    pipe.srem(pk.group(group_id), *expired)
                pipe.zrem(pk.dirty, group_id)
                pipe.execute()
                return {"added": len(added), "removed": len(removed), "pairs": len(records)}
            except redis.WatchError:
                continue
    log.info("group %s of %s kept changing; enqueued again", group_id, project)
    conn.zadd(pk.dirty, {group_id: time.time()})
    enqueue_pairing(conn, project, [group_id])
    return {"added": 0, "removed": 0, "pairs": -1}


def _count_pairs(pipe: redis.client.Pipeline, pk: keys.ProjectKeys, group_id: str, delta: int, now: float) -> None:
    """Queue the change of the ``pairs`` counters (total, hour, and the group's) by ``delta``."""
    if delta:
        hour = utc_hour(now)
        for key in (pk.stats_total, pk.stats_hour(hour)):
            pipe.hincrby(key, "pairs", delta)
            pipe.hincrby(key, field("pairs", dimension("group", group_id)), delta)
        pipe.sadd(pk.stats_hours, hour)


def sweep_dirty(stale_after_s: float = defaults.STALE_DIRTY_S, conn: redis.Redis | None = None) -> int:
    """Cron job: re-enqueue pairing for groups dirty for longer than a job should take.

    Covers jobs lost to a killed worker or a service that crashed between storing a batch and
    enqueuing its pairing. Returns how many groups were re-enqueued.
    """
    conn = conn or context.redis_conn()
    total = 0
    cutoff = time.time() - stale_after_s
    for project in list_projects(conn):
        pk = keys.ProjectKeys(project)
        stale = [g.decode() for g in conn.zrangebyscore(pk.dirty, "-inf", cutoff)]
        if stale:
            # Restart their clock so the next sweep does not enqueue them again straight away.
            conn.zadd(pk.dirty, {g: time.time() for g in stale}, xx=True)
            total += enqueue_pairing(conn, project, stale)
    return total
