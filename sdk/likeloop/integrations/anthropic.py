"""``likeloop.wrap_anthropic(client)``: every ``messages.create`` call of an
``anthropic.Anthropic`` or ``AsyncAnthropic`` client, streamed (``stream=True``) or not, and every
``with client.messages.stream(...) as stream`` of the sync client, logs its answer with
``message.id`` as the response id, as ``wrap_openai`` does for OpenAI's client."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._capture import Gathered, Logger, get, messages_of, options, text_of, watch, watch_async, wrap_method

_MARK = "_likeloop_wrapped"


def wrap_anthropic(client: Any, ll: Any | None = None) -> Any:
    """Wrap ``client`` in place (and return it); ``ll``: the LikeLoop client (default: the
    module's default client). Wrapping twice wraps once."""
    if getattr(client, _MARK, False):
        return client
    messages = getattr(client, "messages", None)
    logger = Logger(ll)
    if messages is not None and hasattr(messages, "create"):
        messages.create = wrap_method(messages.create, logger, _Messages)
    if messages is not None and callable(getattr(messages, "stream", None)):
        messages.stream = _stream_helper(messages.stream, logger)
    setattr(client, _MARK, True)
    return client


class _Messages:
    @staticmethod
    def prompt(kwargs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": messages_of(kwargs.get("messages"))}
        system = text_of(kwargs.get("system"))
        if system:
            out["system"] = system
        return out

    @staticmethod
    def log(logger: Logger, result: Any, prompt: dict[str, Any], opts: dict[str, Any]) -> None:
        text = "".join(str(get(b, "text") or "") for b in get(result, "content") or [] if get(b, "type") == "text")
        logger.answer(get(result, "id"), text, get(result, "model"), opts, **prompt)

    @staticmethod
    def read(event: Any, gathered: Gathered) -> None:
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            gathered.id, gathered.model = get(message, "id"), get(message, "model")
        elif kind == "content_block_delta" and get(get(event, "delta"), "type") == "text_delta":
            gathered.add(0, get(get(event, "delta"), "text"))

    @staticmethod
    def finished(logger: Logger, prompt: dict[str, Any], opts: dict[str, Any]) -> Callable[[Gathered], None]:
        def finish(gathered: Gathered) -> None:
            logger.answer(gathered.id, "".join(gathered.texts.get(0, [])), gathered.model, opts, **prompt)

        return finish


def _stream_helper(stream: Any, logger: Logger) -> Any:
    """``messages.stream(...)``: its manager, whose ``with`` (or ``async with``) gives the
    provider's own MessageStream, read into a gathering as the app reads it. The manager's class
    becomes a subclass of the provider's whose ``__enter__`` does that (Python looks ``__enter__``
    up on the class, not the instance)."""

    @functools.wraps(stream)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        opts = options(kwargs)
        manager = stream(*args, **kwargs)
        try:
            manager._likeloop_finish = _Messages.finished(logger, _Messages.prompt(kwargs), opts)
            manager.__class__ = _watched(type(manager))
        except Exception:  # noqa: BLE001 - a wrapper never raises into the app
            pass
        return manager

    return wrapped


def _watch_message_stream(manager: Any, message_stream: Any, is_async: bool) -> Any:
    iterator = getattr(message_stream, "_iterator", None)
    finish = getattr(manager, "_likeloop_finish", None)
    if iterator is not None and finish is not None:
        gathered = Gathered(finish)
        message_stream._iterator = (watch_async if is_async else watch)(iterator, gathered, _Messages.read)
    return message_stream


_WATCHED: dict[type, type] = {}


def _watched(base: Any) -> type:
    """The provider's manager class with a watching ``__enter__``, made once per class."""
    if base in _WATCHED:
        return _WATCHED[base]

    class Watched(base):
        def __enter__(self) -> Any:
            return _watch_message_stream(self, super().__enter__(), False)

        async def __aenter__(self) -> Any:
            return _watch_message_stream(self, await super().__aenter__(), True)

    Watched.__name__ = Watched.__qualname__ = base.__name__
    _WATCHED[base] = Watched
    return Watched
