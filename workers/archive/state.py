"""A project's state beside its event archive: its settings and its API keys (hashes only), in
``<archive prefix>/<project>/_state.json``, so a rebuild from S3 after Redis is lost brings the
project back with the same settings and keys that still work (docs/archive.md).

Nothing in it lets its reader authenticate: no key, no token-signing secret (a restored key's
is learnt again the next time the key is used). It is signed with ``LIKELOOP_SECRET_KEY``, and
a rebuild restores keys and settings only from a state whose signature holds, so whoever can
write to the bucket cannot add a key or change a project's settings through it.

Written by every archive run of the project when it differs from the copy last written (its
sha256 is kept in ``keys.ProjectKeys.archive_state``), so a change reaches S3 within
``LIKELOOP_ARCHIVE_INTERVAL_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import redis
from botocore.exceptions import ClientError

from likeloop_server import apikeys, keys
from workers.storage.s3io import put_json

STATE_VERSION = 1
SIGNATURE = "signature"


def project_state(conn: redis.Redis, project: str) -> dict[str, Any]:
    """The project's settings hash and key records as stored (a key's secret is never stored:
    its sha256 is, and the secret its feedback tokens are signed with)."""
    config = conn.hgetall(keys.ProjectKeys(project).config)
    return {
        "version": STATE_VERSION,
        "project": project,
        "config": {k.decode(): v.decode() for k, v in sorted(config.items())},
        "keys": apikeys.stored_records(conn, project),
    }


def digest(state: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def changed(conn: redis.Redis, project: str) -> bool:
    """Whether the project's state differs from the copy last written to S3."""
    last = conn.get(keys.ProjectKeys(project).archive_state)
    return last is None or last.decode() != digest(project_state(conn, project))


def signature(state: dict[str, Any], secret_key: str) -> str:
    """HMAC-SHA256 of the state (without its signature) under the operator's secret key."""
    body = json.dumps({k: v for k, v in state.items() if k != SIGNATURE}, sort_keys=True).encode()
    return hmac.new(secret_key.encode(), body, hashlib.sha256).hexdigest()


def trusted(state: dict[str, Any], secret_key: str) -> str | None:
    """None if the state's signature holds under ``secret_key``; else why it is not trusted."""
    if not secret_key:
        return "LIKELOOP_SECRET_KEY is not set, so the state's signature cannot be checked"
    given = state.get(SIGNATURE)
    if not isinstance(given, str):
        return "the state is not signed (written without LIKELOOP_SECRET_KEY, or by someone else)"
    if not hmac.compare_digest(given, signature(state, secret_key)):
        return "the state's signature does not match LIKELOOP_SECRET_KEY (changed since it was written?)"
    return None


def save(conn: redis.Redis, s3: Any, bucket: str, key: str, project: str, secret_key: str) -> bool:
    """Write the project's state to ``key`` (signed when ``secret_key`` is set) if it changed
    since last written; True if written."""
    state = project_state(conn, project)
    sha = digest(state)
    pk = keys.ProjectKeys(project)
    last = conn.get(pk.archive_state)
    if last is not None and last.decode() == sha:
        return False
    if secret_key:
        state[SIGNATURE] = signature(state, secret_key)
    put_json(s3, bucket, key, state)
    conn.set(pk.archive_state, sha)
    return True


def load(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The state written to ``key``, or None if there is none."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    state = json.loads(body)
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{key}: state version {state.get('version')!r}; this version reads {STATE_VERSION}")
    return state


def restore(conn: redis.Redis, state: dict[str, Any]) -> dict[str, int]:
    """Put a state back where Redis lacks it: the settings if the project has none, each key
    record it does not have. Returns what was restored."""
    project = state["project"]
    pk = keys.ProjectKeys(project)
    settings = 0
    if state["config"] and not conn.exists(pk.config):
        conn.hset(pk.config, mapping=state["config"])
        settings = 1
    conn.sadd(keys.PROJECTS, project)
    restored = apikeys.restore_records(conn, state["keys"])
    conn.set(pk.archive_state, digest({k: v for k, v in state.items() if k != SIGNATURE}))
    return {"settings": settings, "keys": restored}
