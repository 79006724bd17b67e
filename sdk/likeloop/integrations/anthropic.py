"""``likeloop.wrap_anthropic(client)``: every ``messages.create`` call of an
``anthropic.Anthropic`` or ``AsyncAnthropic`` client, streamed (``stream=True``) or not, logs its
answer with ``message.id`` as the response id, as ``wrap_openai`` does for OpenAI's client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._capture import Gathered, Logger, get, messages_of, text_of, wrap_method

_MARK = "_likeloop_wrapped"


def wrap_anthropic(client: Any, ll: Any | None = None) -> Any:
    """Wrap ``client`` in place (and return it); ``ll``: the LikeLoop client (default: the
    module's default client). Wrapping twice wraps once."""
    if getattr(client, _MARK, False):
        return client
    messages = getattr(client, "messages", None)
    if messages is not None and hasattr(messages, "create"):
        messages.create = wrap_method(messages.create, Logger(ll), _Messages)
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
