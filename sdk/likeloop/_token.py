"""Feedback tokens: let a browser post feedback on one response without any API key.

A token is minted locally (no network) from the API key and names the key's id, the response, an
expiry, the user it votes as (or a random nonce: then it is an anonymous voter of its own) and
the feedback types it allows when they are not the default ones; it is signed with a secret
derived from the key, which the service stored when the key was created. It reveals neither the
key nor the secret, and the service accepts it only for feedback on that response, of the types
it allows, until it expires. Everything posted through one token counts as one voter's.

    llft_<base64url(JSON {"k": key id, "r": response id, "e": expiry, "u"?: user, "n"?: nonce,
                          "t"?: [types], "o"?: other response (a comparison)})>.<base64url(HMAC-SHA256)>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

PREFIX = "llft_"
# The derivation label: changing it invalidates every token.
_LABEL = b"likeloop feedback token v1"
_KEY_ID_CHARS = 12
# A token lives for at most a week: long enough for a page left open, short enough to matter.
MAX_EXPIRES_IN_S = 7 * 86400
FEEDBACK_TYPES = ("like", "dislike", "rating", "comment", "correction", "comparison")
# What a token allows unless minted with others: no corrections (their text becomes training
# data's chosen answer, so the app must grant them explicitly).
DEFAULT_TYPES = ("like", "dislike", "rating", "comment")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:_KEY_ID_CHARS]


def signing_secret(api_key: str) -> bytes:
    return hmac.new(api_key.encode("utf-8"), _LABEL, hashlib.sha256).digest()


def check_types(allow: object) -> tuple[str, ...] | None:
    """The feedback types a token may allow, in order, or None if ``allow`` is not a non-empty
    collection of known types."""
    if isinstance(allow, str) or not isinstance(allow, list | tuple | set | frozenset):
        return None
    types = tuple(t for t in FEEDBACK_TYPES if t in allow)
    return types if types and len(types) == len(set(allow)) else None


def mint(
    api_key: str,
    response_id: str,
    expires_in: float,
    user_id: str | None = None,
    now: float | None = None,
    types: tuple[str, ...] = DEFAULT_TYPES,
    other: str | None = None,
) -> str:
    expires_in = min(max(1.0, float(expires_in)), MAX_EXPIRES_IN_S)
    claims: dict[str, object] = {
        "k": key_id(api_key),
        "r": response_id,
        "e": int((now if now is not None else time.time()) + expires_in),
    }
    if user_id is not None:
        claims["u"] = user_id
    else:
        claims["n"] = _b64(os.urandom(9))  # this token's own anonymous voter
    if types != DEFAULT_TYPES:
        claims["t"] = list(types)
    if other is not None:
        claims["o"] = other  # the second response of a comparison this token may post
    payload = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    signature = _b64(hmac.new(signing_secret(api_key), payload.encode("ascii"), hashlib.sha256).digest())
    return f"{PREFIX}{payload}.{signature}"
