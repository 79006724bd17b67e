"""Feedback tokens minted by the SDK (``Client.feedback_token``): verified here, never stored.

The format is defined by the SDK's ``likeloop/_token.py``; tests/likeloop_server/test_tokens.py
checks that tokens minted there verify here. A token carries a key id, a response id, an expiry
and optionally a user id, signed with HMAC-SHA256 under a secret derived from the API key, which
``apikeys.create_key`` stores (the key itself is never stored).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import redis

from . import keys

PREFIX = "llft_"
_LABEL = b"likeloop feedback token v1"


def signing_secret(api_key: str) -> str:
    return hmac.new(api_key.encode("utf-8"), _LABEL, hashlib.sha256).hexdigest()


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class TokenClaims:
    key_id: str
    project: str
    response_id: str
    expires_at: int
    user_id: str | None


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(conn: redis.Redis, token: str, now: float | None = None) -> TokenClaims:
    """The claims of a valid token; raises TokenError saying why a token is not accepted."""
    try:
        payload, signature = token.removeprefix(PREFIX).split(".", 1)
        claims = json.loads(_unb64(payload))
        key_id, response_id, expires_at = claims["k"], claims["r"], int(claims["e"])
        user_id = claims.get("u")
        if not isinstance(key_id, str) or not isinstance(response_id, str):
            raise ValueError("bad claim types")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise TokenError("invalid_token", "this feedback token is malformed") from exc
    digest = conn.hget(keys.API_KEY_IDS, key_id)
    record = conn.hgetall(keys.API_KEY + digest.decode()) if digest else {}
    secret = record.get(b"token_secret")
    if not secret:
        raise TokenError("invalid_token", "this feedback token was not minted by a known key")
    expected = hmac.new(bytes.fromhex(secret.decode()), payload.encode("ascii", "replace"), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
    except (ValueError, binascii.Error) as exc:
        raise TokenError("invalid_token", "this feedback token is malformed") from exc
    if not hmac.compare_digest(expected, given):
        raise TokenError("invalid_token", "this feedback token's signature does not match")
    if record.get(b"revoked") == b"1":
        raise TokenError("revoked_api_key", "the key that minted this feedback token has been revoked")
    if b"ingest" not in record.get(b"scopes", b"").split(b","):
        raise TokenError("insufficient_scope", "the key that minted this feedback token lacks the 'ingest' scope")
    if expires_at < (now if now is not None else time.time()):
        raise TokenError("expired_token", "this feedback token has expired; mint a new one")
    return TokenClaims(
        key_id, record[b"project"].decode(), response_id, expires_at, user_id if isinstance(user_id, str) else None
    )
