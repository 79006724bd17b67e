"""Feedback tokens minted by the SDK (``Client.feedback_token``): verified here, never stored.

The format is defined by the SDK's ``likeloop/_token.py``; tests/likeloop_server/test_tokens.py
checks that tokens minted there verify here. A token carries a key id, a response id, an expiry,
the user it votes as or a nonce that makes it an anonymous voter of its own, and the feedback
types it allows (like, dislike, rating and comment unless it names others), signed with
HMAC-SHA256 under a secret derived from the API key (``apikeys.signing_secret``), which the
key's record keeps (the key itself is never stored).

A token is one voter: everything posted through it counts as its user's, or as one anonymous
voter's (``voter``), so a replayed token replaces its own vote instead of adding votes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass

import redis

from . import apikeys
from .defaults import MAX_TOKEN_LIFETIME_S
from .errors import CredentialRefused
from .identity import CLIENT_ID_RE
from .ingest import FEEDBACK_TYPES

PREFIX = "llft_"
# What a token allows when it names no types: votes, ratings and comments, not corrections
# (a correction becomes the chosen answer of a training pair: the app must grant it).
DEFAULT_TYPES = ("like", "dislike", "rating", "comment")
# The user id an anonymous token votes as: this prefix and its nonce.
VOTER_PREFIX = "token:"
_MAX_NONCE_CHARS = 64
# What a token may allow at all: a ranking names responses a token is not bound to; a comparison
# only when the token names its second response ("o").
TOKEN_TYPES = tuple(t for t in FEEDBACK_TYPES if t != "ranking")
# Clocks of the minting app and the service may differ this much.
_CLOCK_SLACK_S = 300


@dataclass(frozen=True)
class TokenClaims:
    key_id: str
    project: str
    response_id: str
    expires_at: int
    user_id: str | None
    types: tuple[str, ...] = DEFAULT_TYPES
    voter: str = ""  # the user id its feedback is recorded under
    other_response_id: str | None = None  # the second response of the comparison it may post
    # What the token is, whatever text carried it: its key and (a hash of) its signature. Rate
    # limits count per identity.
    identity: str = ""


_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def _unb64(text: str) -> bytes:
    """The bytes of canonical unpadded base64url text, the one spelling the SDK mints; anything
    else (padding, characters base64 decoding would skip, unused trailing bits) is refused, so a
    token has one text: re-spellings could otherwise pass for new tokens (new rate-limit buckets)."""
    if not _B64URL.match(text):
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise ValueError("not the canonical spelling")
    return data


def _malformed() -> CredentialRefused:
    return CredentialRefused("invalid_token", "this feedback token is malformed")


def verify(conn: redis.Redis, token: str, now: float | None = None) -> TokenClaims:
    """The claims of a valid token; raises CredentialRefused saying why a token is not accepted."""
    try:
        payload, signature = token.removeprefix(PREFIX).split(".", 1)
        claims = json.loads(_unb64(payload))
        key_id, response_id, expires_at = claims["k"], claims["r"], int(claims["e"])
        user_id, nonce, types = claims.get("u"), claims.get("n"), claims.get("t", DEFAULT_TYPES)
        other = claims.get("o")
        if other is not None and (not isinstance(other, str) or not CLIENT_ID_RE.match(other)):
            raise ValueError("bad other response")
        if not isinstance(key_id, str) or not isinstance(response_id, str):
            raise ValueError("bad claim types")
        if user_id is not None and not isinstance(user_id, str):
            raise ValueError("bad user")
        if nonce is not None and (not isinstance(nonce, str) or not 0 < len(nonce) <= _MAX_NONCE_CHARS):
            raise ValueError("bad nonce")
        if not isinstance(types, list | tuple) or not types or not set(types) <= set(TOKEN_TYPES):
            raise ValueError("bad types")
        if ("comparison" in types) != (other is not None):
            raise ValueError("a comparison token names its other response, and only it does")
        given = _unb64(signature)
    # OverflowError: an infinite expiry; RecursionError: JSON nested too deeply.
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError, binascii.Error, UnicodeDecodeError) as exc:
        raise _malformed() from exc
    found = apikeys.lookup_by_id(conn, key_id)
    if found is None:
        raise CredentialRefused("invalid_token", "this feedback token was not minted by a known key")
    key, secret = found
    expected = hmac.new(bytes.fromhex(secret), payload.encode("ascii", "replace"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, given):
        raise CredentialRefused("invalid_token", "this feedback token's signature does not match")
    if key.revoked:
        raise CredentialRefused("revoked_api_key", "the key that minted this feedback token has been revoked")
    if "ingest" not in key.scopes:
        raise CredentialRefused(
            "insufficient_scope", "the key that minted this feedback token lacks the 'ingest' scope", http_status=403
        )
    now = now if now is not None else time.time()
    if expires_at < now:
        raise CredentialRefused("expired_token", "this feedback token has expired; mint a new one")
    if expires_at > now + MAX_TOKEN_LIFETIME_S + _CLOCK_SLACK_S:
        raise CredentialRefused("invalid_token", "this feedback token claims a lifetime longer than 7 days")
    if user_id is not None:
        voter = user_id
    else:
        # A token minted before nonces stands for one voter too: its signature is its own.
        voter = VOTER_PREFIX + (nonce or hashlib.sha256(given).hexdigest()[:16])
    identity = f"{key_id}:{hashlib.sha256(given).hexdigest()[:32]}"
    return TokenClaims(key_id, key.project, response_id, expires_at, user_id, tuple(types), voter, other, identity)
