"""LikeLoop SDK: log LLM responses and the feedback users give them, in two lines.

    import likeloop
    ll = likeloop.Client()              # LIKELOOP_API_KEY, LIKELOOP_URL from the environment
    rid = ll.log(prompt=p, response=r, model="my-model")
    ll.like(rid)

Module-level shortcuts (``likeloop.log(...)``, ``likeloop.like(...)``) use a default client
built from the environment on first use.
"""

from __future__ import annotations

import threading
from typing import Any

from ._client import Client
from ._errors import DeliveryError, LikeLoopError, RedactionError, UsageError
from ._version import __version__

__all__ = [
    "Client",
    "DeliveryError",
    "LikeLoopError",
    "RedactionError",
    "UsageError",
    "__version__",
    "comment",
    "compare",
    "correct",
    "default_client",
    "dislike",
    "flush",
    "like",
    "log",
    "rank",
    "rate",
    "shutdown",
    "wrap_anthropic",
    "wrap_openai",
]

_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The client the module-level shortcuts use, created from the environment on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Client()
    return _default


def wrap_openai(client: Any, ll: Client | None = None) -> Any:
    """Log every answer of an ``openai.OpenAI`` or ``AsyncOpenAI`` client (``chat.completions``
    and ``responses``, streamed or not) under the provider's id; returns the client, wrapped in
    place. Per call: ``create(..., likeloop={"user_id": ..., "session_id": ..., "prompt_id": ...,
    "metadata": {...}})``, which never reaches the provider."""
    from .integrations.openai import wrap_openai as wrap

    return wrap(client, ll)


def wrap_anthropic(client: Any, ll: Client | None = None) -> Any:
    """Log every answer of an ``anthropic.Anthropic`` or ``AsyncAnthropic`` client
    (``messages.create``, streamed or not) under ``message.id``; returns the client, wrapped in
    place. Per call: ``create(..., likeloop={...})`` as with ``wrap_openai``."""
    from .integrations.anthropic import wrap_anthropic as wrap

    return wrap(client, ll)


def log(*args: Any, **kwargs: Any) -> str | None:
    return default_client().log(*args, **kwargs)


def like(response_id: str, **kwargs: Any) -> bool:
    return default_client().like(response_id, **kwargs)


def dislike(response_id: str, **kwargs: Any) -> bool:
    return default_client().dislike(response_id, **kwargs)


def rate(response_id: str, value: int, **kwargs: Any) -> bool:
    return default_client().rate(response_id, value, **kwargs)


def comment(response_id: str, text: str, **kwargs: Any) -> bool:
    return default_client().comment(response_id, text, **kwargs)


def correct(response_id: str, text: str, **kwargs: Any) -> bool:
    return default_client().correct(response_id, text, **kwargs)


def compare(a: str, b: str, **kwargs: Any) -> bool:
    return default_client().compare(a, b, **kwargs)


def rank(response_ids: Any, **kwargs: Any) -> bool:
    return default_client().rank(response_ids, **kwargs)


def flush(timeout: float = 5.0) -> bool:
    return default_client().flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    return default_client().shutdown(timeout)
