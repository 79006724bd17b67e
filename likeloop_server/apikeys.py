"""Project API keys: minted once, stored only as a sha256 hash, scoped, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import redis

from . import keys
from .choices import parse_choices
from .errors import InvalidValue, NotFound
from .identity import valid_project_name

SCOPES = ("ingest", "read", "admin")
KEY_PREFIX = "llk_"
# 32 random bytes: a key cannot be guessed, so a fast unsalted hash is enough to store it.
_KEY_BYTES = 32
_KEY_ID_CHARS = 12
# Feedback tokens are signed under HMAC(key, this label): the SDK derives the same secret.
_TOKEN_LABEL = b"likeloop feedback token v1"


@dataclass(frozen=True)
class ApiKey:
    id: str
    project: str
    scopes: tuple[str, ...]
    created_at: float
    revoked: bool = False
    # Whether Redis holds the secret its feedback tokens are signed with: a record restored from
    # the archive has none until the key is next presented (``remember_token_secret``).
    has_token_secret: bool = True

    def allows(self, scope: str) -> bool:
        return not self.revoked and scope in self.scopes

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "project": self.project,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked": self.revoked,
        }


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def signing_secret(api_key: str) -> str:
    """The secret feedback tokens minted from ``api_key`` are signed with (hex), as the SDK's
    ``likeloop/_token.py`` derives it."""
    return hmac.new(api_key.encode("utf-8"), _TOKEN_LABEL, hashlib.sha256).hexdigest()


def parse_scopes(text: str) -> tuple[str, ...]:
    """``"ingest,read"`` -> ("ingest", "read"); raises InvalidValue naming what is wrong."""
    return parse_choices(text, SCOPES, "scopes")


def create_key(conn: redis.Redis, project: str, scopes: tuple[str, ...]) -> tuple[str, ApiKey]:
    """Mint a key for ``project`` (created if new). Returns the secret, shown once, and its record."""
    if not valid_project_name(project):
        raise InvalidValue(
            f"project name {project!r} is not valid: use 1-63 lowercase letters, digits, '-' or '_'", field="project"
        )
    for scope in scopes:
        if scope not in SCOPES:
            raise InvalidValue(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}", field="scopes")
    secret = KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)
    digest = hash_key(secret)
    record = ApiKey(id=digest[:_KEY_ID_CHARS], project=project, scopes=tuple(scopes), created_at=time.time())
    pipe = conn.pipeline(transaction=True)
    pipe.sadd(keys.PROJECTS, project)
    pipe.hset(
        keys.API_KEY + digest,
        mapping={
            "id": record.id,
            "project": project,
            "scopes": ",".join(scopes),
            "created_at": repr(record.created_at),
            "revoked": "0",
            # Lets the service check feedback tokens minted from this key (tokens.py).
            "token_secret": signing_secret(secret),
        },
    )
    pipe.hset(keys.API_KEY_IDS, record.id, digest)
    pipe.execute()
    return secret, record


def _from_hash(data: dict[bytes, bytes]) -> ApiKey:
    """A key record as stored (``keys.API_KEY``): its public fields."""
    return ApiKey(
        id=data[b"id"].decode(),
        project=data[b"project"].decode(),
        scopes=tuple(s for s in data[b"scopes"].decode().split(",") if s),
        created_at=float(data[b"created_at"]),
        revoked=data.get(b"revoked") == b"1",
        has_token_secret=b"token_secret" in data,
    )


def lookup(conn: redis.Redis, secret: str) -> ApiKey | None:
    """The key record for a presented secret, or None when no such key was ever minted."""
    data = conn.hgetall(keys.API_KEY + hash_key(secret))
    return _from_hash(data) if data else None


def lookup_by_id(conn: redis.Redis, key_id: str) -> tuple[ApiKey, str] | None:
    """A key's record and its feedback-token signing secret (hex), by key id; None if unknown."""
    digest = conn.hget(keys.API_KEY_IDS, key_id)
    data = conn.hgetall(keys.API_KEY + digest.decode()) if digest else {}
    if not data or b"token_secret" not in data:
        return None
    return _from_hash(data), data[b"token_secret"].decode()


def list_keys(conn: redis.Redis, project: str | None = None) -> list[ApiKey]:
    digests = conn.hvals(keys.API_KEY_IDS)
    pipe = conn.pipeline(transaction=False)
    for digest in digests:
        pipe.hgetall(keys.API_KEY + digest.decode())
    records = [_from_hash(d) for d in pipe.execute() if d]
    if project is not None:
        records = [r for r in records if r.project == project]
    return sorted(records, key=lambda r: r.created_at)


def revoke(conn: redis.Redis, key_id: str) -> bool:
    """Revoke a key by its id; True if it existed. Revoked keys stay listed, marked revoked."""
    digest = conn.hget(keys.API_KEY_IDS, key_id)
    if digest is None:
        return False
    conn.hset(keys.API_KEY + digest.decode(), "revoked", "1")
    return True


def require_project(conn: redis.Redis, project: str) -> None:
    """Raise NotFound unless ``project`` has been created (by minting its first key)."""
    if not conn.sismember(keys.PROJECTS, project):
        raise NotFound(f"no project {project!r}", field="project")


def remember_token_secret(conn: redis.Redis, secret: str) -> None:
    """Keep the token-signing secret of a presented key whose record lacks it (restored from the
    archive, which holds no secret): it is derived from the key itself, which only its holder has."""
    conn.hsetnx(keys.API_KEY + hash_key(secret), "token_secret", signing_secret(secret))


def list_projects(conn: redis.Redis) -> list[str]:
    return sorted(p.decode() for p in conn.smembers(keys.PROJECTS))


def stored_records(conn: redis.Redis, project: str) -> list[dict[str, str]]:
    """A project's key records as stored (hash fields, with ``digest``: the sha256 the record is
    found by), id order, without the token-signing secret: what a rebuild from S3 needs to make
    the same keys work again, and nothing that lets a reader of the archive sign a token."""
    digests = [d.decode() for d in conn.hvals(keys.API_KEY_IDS)]
    pipe = conn.pipeline(transaction=False)
    for digest in digests:
        pipe.hgetall(keys.API_KEY + digest)
    out = []
    for digest, data in zip(digests, pipe.execute(), strict=True):
        record = {k.decode(): v.decode() for k, v in data.items() if k != b"token_secret"}
        if record.get("project") == project:
            out.append({**record, "digest": digest})
    return sorted(out, key=lambda r: r["id"])


def restore_records(conn: redis.Redis, records: list[dict[str, str]]) -> int:
    """Store key records (``stored_records``' form) that Redis lacks; one it has is left as it
    is (it may have been revoked since). Returns how many were restored."""
    restored = 0
    for record in records:
        fields = {k: v for k, v in record.items() if k != "digest"}
        digest = record["digest"]
        if conn.exists(keys.API_KEY + digest):
            continue
        pipe = conn.pipeline(transaction=True)
        pipe.sadd(keys.PROJECTS, fields["project"])
        pipe.hset(keys.API_KEY + digest, mapping=fields)
        pipe.hset(keys.API_KEY_IDS, fields["id"], digest)
        pipe.execute()
        restored += 1
    return restored
