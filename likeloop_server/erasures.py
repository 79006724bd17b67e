"""Erasure requests and the erasure ledger (docs/privacy.md).

A request names a user id or some response ids. It is recorded (``P:erasure:<id>``) and, at
once, its subjects enter the project's ledger (``P:erased``) as keyed hashes: from then on the
service refuses what the request erases (events of that user stamped before the request, any
event about those responses), so a replayed SDK spool cannot bring them back while the job runs.
The job (workers/erasure/) takes every open request of the project in one pass over each store,
adds the erased user's responses to the ledger, then drops the raw ids from the request record:
once it is done, only keyed hashes remain.

A keyed hash is an HMAC-SHA256 under ``LIKELOOP_SECRET_KEY`` of the project, the kind and the
id: whoever reads the ledger cannot test guessed user ids against it without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis

from . import defaults, keys
from .errors import ConfigError, InvalidValue, TooMany
from .ingest import RESPONSE_TYPE

USER, RESPONSE = "u", "r"  # the kinds of a ledger entry
ERASURE_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
_HASH_CHARS = 32


class ErasureStatus(StrEnum):
    """An erasure request's ``status``: queued, running, then done or failed (a failed one stays
    open: the next run takes it again)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ErasureKeyMissing(ConfigError):
    """Erasure needs LIKELOOP_SECRET_KEY: the ledger holds keyed hashes only. The service answers
    503: it is not set up for erasure (the request is not at fault)."""

    code = "secret_key_missing"
    http_status = 503


def subject_hash(secret_key: str, project: str, kind: str, value: str) -> str:
    """The keyed hash the ledger and the request records keep instead of an id."""
    if not secret_key:
        raise ErasureKeyMissing(
            "erasure needs LIKELOOP_SECRET_KEY (the same on the service and the workers): "
            "the erasure ledger keeps keyed hashes of ids, never the ids"
        )
    message = f"{project}\x1f{kind}\x1f{value}".encode("utf-8", "surrogatepass")
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:_HASH_CHARS]


def new_erasure_id(now: float) -> str:
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


def check_subject(user_id: Any, response_ids: Any) -> tuple[str | None, list[str]]:
    """A request's subject, checked: exactly one of a user id or 1-1000 response ids. Raises
    InvalidValue naming the field."""
    if (user_id is None) == (response_ids is None):
        raise InvalidValue("give exactly one of user_id or response_ids", field="user_id")
    if user_id is not None:
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= defaults.MAX_NAME_CHARS:
            raise InvalidValue(f"user_id: a string of 1-{defaults.MAX_NAME_CHARS} characters", field="user_id")
        return user_id, []
    if not isinstance(response_ids, list) or not 1 <= len(response_ids) <= defaults.MAX_ERASURE_RESPONSES:
        raise InvalidValue(
            f"response_ids: a list of 1-{defaults.MAX_ERASURE_RESPONSES} response ids", field="response_ids"
        )
    for rid in response_ids:
        if not isinstance(rid, str) or not 1 <= len(rid) <= defaults.MAX_NAME_CHARS:
            raise InvalidValue(
                f"response_ids: each a string of 1-{defaults.MAX_NAME_CHARS} characters", field="response_ids"
            )
    return None, sorted(set(response_ids))


def request_erasure(
    conn: redis.Redis,
    secret_key: str,
    project: str,
    user_id: str | None = None,
    response_ids: Sequence[str] | None = None,
    now: float | None = None,
) -> str:
    """Record an erasure request and put its subjects in the ledger; returns its id. The caller
    queues the job (``queues.schedule_erasure``)."""
    user, rids = check_subject(user_id, None if response_ids is None else list(response_ids))
    pk = keys.ProjectKeys(project)
    if conn.scard(pk.erasures_open) >= defaults.MAX_OPEN_ERASURES:
        raise TooMany(
            f"this project has {defaults.MAX_OPEN_ERASURES} erasure requests not done yet; wait for the "
            "erasure job (GET /v1/erasures), or give more response ids per request",
            60,
        )
    now = time.time() if now is None else now
    kind = USER if user is not None else RESPONSE
    subjects = [user] if user is not None else rids
    hashes = [subject_hash(secret_key, project, kind, s) for s in subjects]
    erasure_id = new_erasure_id(now)
    raw = {"user_id": user} if user is not None else {"response_ids": rids}
    pipe = conn.pipeline(transaction=True)
    pipe.hset(
        pk.erasure(erasure_id),
        mapping={
            "id": erasure_id,
            "status": ErasureStatus.QUEUED.value,
            "kind": "user" if user is not None else "responses",
            "requested_at": repr(now),
            "subjects": json.dumps(hashes),
            "raw": json.dumps(raw),
        },
    )
    pipe.zadd(pk.erasures, {erasure_id: now})
    pipe.sadd(pk.erasures_open, erasure_id)
    pipe.hset(pk.erased, mapping={h: f"{kind}|{now!r}" for h in hashes})
    pipe.execute()
    _trim(conn, pk)
    return erasure_id


def _trim(conn: redis.Redis, pk: keys.ProjectKeys) -> None:
    """Keep the last KEEP_ERASURE_RECORDS records (an open one is never trimmed)."""
    old = [x.decode() for x in conn.zrange(pk.erasures, 0, -defaults.KEEP_ERASURE_RECORDS - 1)]
    open_ids = {x.decode() for x in conn.smembers(pk.erasures_open)}
    old = [x for x in old if x not in open_ids]
    if old:
        pipe = conn.pipeline(transaction=True)
        pipe.zrem(pk.erasures, *old)
        pipe.delete(*(pk.erasure(x) for x in old))
        pipe.execute()


_NUMERIC = ("requested_at", "started_at", "finished_at")


def get_erasure(conn: redis.Redis, project: str, erasure_id: str) -> dict[str, Any] | None:
    """An erasure request's record as the API shows it (its subjects as keyed hashes, its counts
    once done; never the raw ids), or None."""
    if not ERASURE_ID_RE.match(erasure_id):
        return None
    raw = conn.hgetall(keys.ProjectKeys(project).erasure(erasure_id))
    if not raw:
        return None
    found = {k.decode(): v.decode() for k, v in raw.items()}
    out: dict[str, Any] = {name: found[name] for name in ("id", "status", "kind") if name in found}
    for name in _NUMERIC:
        if name in found:
            out[name] = float(found[name])
    out["subjects"] = json.loads(found.get("subjects", "[]"))
    if "counts" in found:
        out["counts"] = json.loads(found["counts"])
    if "error" in found:
        out["error"] = found["error"]
    return out


def list_erasures(conn: redis.Redis, project: str, limit: int = 50) -> list[dict[str, Any]]:
    ids = conn.zrevrange(keys.ProjectKeys(project).erasures, 0, max(0, limit - 1))
    found = (get_erasure(conn, project, x.decode()) for x in ids)
    return [e for e in found if e is not None]


def open_requests(conn: redis.Redis, project: str) -> list[dict[str, Any]]:
    """The project's open requests with their raw subjects, oldest first (for the job)."""
    pk = keys.ProjectKeys(project)
    out = []
    for erasure_id in sorted(x.decode() for x in conn.smembers(pk.erasures_open)):
        raw = conn.hmget(pk.erasure(erasure_id), ["raw", "requested_at"])
        if raw[0] is None:  # the record is gone (trimmed while open cannot happen; a manual delete)
            conn.srem(pk.erasures_open, erasure_id)
            continue
        out.append({"id": erasure_id, **json.loads(raw[0]), "requested_at": float(raw[1] or 0)})
    return out


def mark(conn: redis.Redis, project: str, erasure_ids: Iterable[str], status: ErasureStatus, **fields: Any) -> None:
    pk = keys.ProjectKeys(project)
    pipe = conn.pipeline(transaction=True)
    for erasure_id in erasure_ids:
        pipe.hset(pk.erasure(erasure_id), mapping={"status": status.value, **{k: str(v) for k, v in fields.items()}})
    pipe.execute()


def finish(conn: redis.Redis, project: str, erasure_ids: Iterable[str], counts: dict[str, int]) -> None:
    """Mark requests done with the run's counts, and forget their raw ids."""
    pk = keys.ProjectKeys(project)
    now = time.time()
    pipe = conn.pipeline(transaction=True)
    for erasure_id in erasure_ids:
        key = pk.erasure(erasure_id)
        pipe.hset(
            key, mapping={"status": ErasureStatus.DONE.value, "finished_at": repr(now), "counts": json.dumps(counts)}
        )
        pipe.hdel(key, "raw", "error")
        pipe.srem(pk.erasures_open, erasure_id)
    pipe.execute()


def add_to_ledger(conn: redis.Redis, project: str, entries: dict[str, str]) -> None:
    """More ledger entries (keyed hash -> ``<kind>|<time>``), a chunk per round trip."""
    pk = keys.ProjectKeys(project)
    items = list(entries.items())
    for i in range(0, len(items), 5000):
        conn.hset(pk.erased, mapping=dict(items[i : i + 5000]))


def ledger(conn: redis.Redis, project: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in conn.hgetall(keys.ProjectKeys(project).erased).items()}


# ---- what the ledger refuses ----------------------------------------------------------------


def erased_at(entry: str | bytes | None) -> tuple[str, float] | None:
    """A ledger value as (kind, erasure time), or None."""
    if entry is None:
        return None
    text = entry.decode() if isinstance(entry, bytes) else entry
    kind, _, at = text.partition("|")
    return kind, float(at or 0)


def event_subjects(event: dict[str, Any]) -> tuple[str | None, float, list[str]]:
    """A prepared event's (user id, own time, response ids it names)."""
    if event["t"] == RESPONSE_TYPE:
        wire = event["wire"]
        fields = dict(zip(wire[5::2], wire[6::2], strict=False))
        return fields.get("user_id"), float(fields.get("ts", 0)), [event["rid"]]
    rids = [event["rid"]]
    if event.get("other"):
        rids.append(event["other"])
    for level in event.get("ranks") or ():
        rids.extend(level)
    return event.get("user"), float(event.get("ts", 0)), rids


class LedgerCheck:
    """Whether events are refused by a project's ledger: a user's events stamped at or before
    the user's erasure, and any event naming an erased response."""

    def __init__(self, secret_key: str, project: str, entries: dict[str, str]) -> None:
        self.secret_key, self.project, self.entries = secret_key, project, entries

    def _hash(self, kind: str, value: str) -> str:
        return subject_hash(self.secret_key, self.project, kind, value)

    def refuses(self, user: str | None, ts: float, rids: Iterable[str]) -> bool:
        if not self.entries:
            return False
        if user is not None:
            found = erased_at(self.entries.get(self._hash(USER, user)))
            if found is not None and ts <= found[1]:
                return True
        return any(self._hash(RESPONSE, rid) in self.entries for rid in rids)


def refused_events(conn: redis.Redis, secret_key: str, project: str, prepared: Sequence[dict[str, Any]]) -> list[bool]:
    """For each prepared event, whether the ledger refuses it: one HMGET for the batch."""
    if not secret_key:
        return [False] * len(prepared)
    subjects = [event_subjects(ev) for ev in prepared]
    wanted: set[str] = set()
    for user, _, rids in subjects:
        if user is not None:
            wanted.add(subject_hash(secret_key, project, USER, user))
        wanted.update(subject_hash(secret_key, project, RESPONSE, r) for r in rids)
    names = sorted(wanted)
    values = conn.hmget(keys.ProjectKeys(project).erased, names) if names else []
    entries = {n: v.decode() for n, v in zip(names, values, strict=True) if v is not None}
    check = LedgerCheck(secret_key, project, entries)
    return [check.refuses(user, ts, rids) for user, ts, rids in subjects]
