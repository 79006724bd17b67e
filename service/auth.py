"""Authentication of a request: its bearer API key (scoped) or browser feedback token."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from likeloop_server import apikeys, tokens
from likeloop_server.errors import CredentialRefused

from .resources import resources

F = TypeVar("F", bound=Callable[..., Any])


def require(*scopes: str, allow_token: bool = False) -> Callable[[F], F]:
    """Authenticate the request's bearer key and check it carries one of ``scopes``; sets
    ``g.project``. Raises CredentialRefused (401, or 403 for a missing scope) saying why not.

    With ``allow_token``, a browser feedback token is accepted too; its claims go in ``g.token``.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The environ, not request.headers: the same value without building a headers view.
            header = request.environ.get("HTTP_AUTHORIZATION", "")
            if not header:
                raise CredentialRefused("missing_api_key", "send the project key as 'Authorization: Bearer <key>'")
            kind, _, secret = header.partition(" ")
            secret = secret.strip()
            if kind.lower() != "bearer" or not secret:
                raise CredentialRefused("malformed_authorization", "the Authorization header must be 'Bearer <key>'")
            ctx = g._get_current_object()  # one context lookup for the attributes set below
            ctx.token = None
            if secret.startswith(tokens.PREFIX):
                if not allow_token:
                    raise CredentialRefused(
                        "token_not_allowed", "feedback tokens are accepted only by POST /v1/feedback"
                    )
                ctx.token = tokens.verify(resources().redis, secret)  # or CredentialRefused
                limiter = resources().token_limiter
                if limiter is not None:
                    limiter.check(ctx.token.identity)  # or 429
                ctx.project = ctx.token.project
                return view(*args, **kwargs)
            key = resources().keys.lookup(secret)
            if key is None:
                raise CredentialRefused("invalid_api_key", "this API key is not known")
            if key.revoked:
                raise CredentialRefused("revoked_api_key", "this API key has been revoked")
            if not any(scope in key.scopes for scope in scopes):
                raise CredentialRefused(
                    "insufficient_scope",
                    f"this needs a key with the {' or '.join(repr(s) for s in scopes)} scope "
                    f"(this one has: {', '.join(key.scopes)})",
                    http_status=403,
                )
            ctx.project = key.project
            if not key.has_token_secret:  # restored from the archive: learnt again from the key
                apikeys.remember_token_secret(resources().redis, secret)
            reads = resources().read_limiter if "read" in scopes else None
            if reads is not None:
                reads.check(key.id)  # or 429
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
