"""Authentication of a request: its bearer API key (scoped) or browser feedback token."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from likeloop_server import tokens

from .errors import ApiError
from .resources import resources

F = TypeVar("F", bound=Callable[..., Any])


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, field="Authorization", headers={"WWW-Authenticate": "Bearer"})


def require(scope: str, allow_token: bool = False) -> Callable[[F], F]:
    """Authenticate the request's bearer key and check it carries ``scope``; sets ``g.project``.

    With ``allow_token``, a browser feedback token is accepted too; its claims go in ``g.token``.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The environ, not request.headers: the same value without building a headers view.
            header = request.environ.get("HTTP_AUTHORIZATION", "")
            if not header:
                raise _unauthorized("missing_api_key", "send the project key as 'Authorization: Bearer <key>'")
            kind, _, secret = header.partition(" ")
            secret = secret.strip()
            if kind.lower() != "bearer" or not secret:
                raise _unauthorized("malformed_authorization", "the Authorization header must be 'Bearer <key>'")
            ctx = g._get_current_object()  # one context lookup for the attributes set below
            ctx.token = None
            if secret.startswith(tokens.PREFIX):
                if not allow_token:
                    raise _unauthorized("token_not_allowed", "feedback tokens are accepted only by POST /v1/feedback")
                ctx.token = tokens.verify(resources().redis, secret)  # or CredentialRefused
                ctx.project = ctx.token.project
                return view(*args, **kwargs)
            key = resources().keys.lookup(secret)
            if key is None:
                raise _unauthorized("invalid_api_key", "this API key is not known")
            if key.revoked:
                raise _unauthorized("revoked_api_key", "this API key has been revoked")
            if scope not in key.scopes:
                raise ApiError(
                    403,
                    "insufficient_scope",
                    f"this key lacks the '{scope}' scope (it has: {', '.join(key.scopes)})",
                    field="Authorization",
                )
            ctx.project = key.project
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
