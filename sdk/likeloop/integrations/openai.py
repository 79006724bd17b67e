"""``likeloop.wrap_openai(client)``: every ``chat.completions.create`` and ``responses.create``
call of an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client logs its answer, with the
provider's id as the response id (``completion.id``; ``<id>:<index>`` for each choice when
``n > 1``), so the app gives feedback with the id it already has. A streamed answer is logged
once, when the stream ends, fails or is closed (what arrived by then). The wrapper imports
nothing from ``openai``, changes nothing the call returns or raises, and never raises itself.
"""

from __future__ import annotations

from typing import Any

from ._capture import Gathered, Logger, get, messages_of, text_of, wrap_method

_MARK = "_likeloop_wrapped"


def wrap_openai(client: Any, ll: Any | None = None) -> Any:
    """Wrap ``client`` in place (and return it); ``ll``: the LikeLoop client (default: the
    module's default client, from the environment). Wrapping twice wraps once."""
    if getattr(client, _MARK, False):
        return client
    logger = Logger(ll)
    completions = get(get(client, "chat"), "completions")
    if completions is not None and hasattr(completions, "create"):
        completions.create = wrap_method(completions.create, logger, _Chat)
    responses = getattr(client, "responses", None)
    if responses is not None and hasattr(responses, "create"):
        responses.create = wrap_method(responses.create, logger, _Responses)
    setattr(client, _MARK, True)
    return client


class _Chat:
    """What a chat completion says: its messages, answers and id."""

    @staticmethod
    def prompt(kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"messages": messages_of(kwargs.get("messages"))}

    @staticmethod
    def log(logger: Logger, result: Any, prompt: dict[str, Any], opts: dict[str, Any]) -> None:
        choices = get(result, "choices") or []
        rid, model = get(result, "id"), get(result, "model")
        for choice in choices:
            index = get(choice, "index", 0)
            text = text_of(get(get(choice, "message"), "content"))
            logger.answer(rid if len(choices) == 1 else f"{rid}:{index}", text, model, opts, **prompt)

    @staticmethod
    def read(chunk: Any, gathered: Gathered) -> None:
        # Once per chunk of every streamed answer: the provider's objects read directly, a dict
        # (or anything else) through ``get``.
        if type(chunk) is dict or not hasattr(chunk, "choices"):
            if gathered.id is None:
                gathered.id, gathered.model = get(chunk, "id"), get(chunk, "model")
            for choice in get(chunk, "choices") or []:
                gathered.add(get(choice, "index", 0), get(get(choice, "delta"), "content"))
            return
        if gathered.id is None:
            gathered.id, gathered.model = chunk.id, chunk.model
        for choice in chunk.choices or ():
            delta = choice.delta
            if delta is not None and delta.content:
                gathered.add(choice.index, delta.content)

    @staticmethod
    def finished(logger: Logger, prompt: dict[str, Any], opts: dict[str, Any]) -> Any:
        def finish(gathered: Gathered) -> None:
            many = len(gathered.texts) > 1
            for index, parts in sorted(gathered.texts.items()):
                rid = f"{gathered.id}:{index}" if many else gathered.id
                logger.answer(rid, "".join(parts), gathered.model, opts, **prompt)

        return finish


class _Responses:
    """What a Responses API call says: its input (and instructions), output text and id."""

    @staticmethod
    def prompt(kwargs: dict[str, Any]) -> dict[str, Any]:
        given, instructions = kwargs.get("input"), kwargs.get("instructions")
        out: dict[str, Any] = {}
        if isinstance(given, str):
            out["prompt"] = given
        else:
            out["messages"] = messages_of(given)
        if isinstance(instructions, str) and instructions:
            out["system"] = instructions
        return out

    @staticmethod
    def log(logger: Logger, result: Any, prompt: dict[str, Any], opts: dict[str, Any]) -> None:
        text = get(result, "output_text")
        if text is None:  # a plain dict: the output items' text parts
            text = "".join(text_of(get(item, "content")) for item in get(result, "output") or [])
        logger.answer(get(result, "id"), text, get(result, "model"), opts, **prompt)

    @staticmethod
    def read(event: Any, gathered: Gathered) -> None:
        kind = get(event, "type")
        if kind in ("response.created", "response.completed"):
            response = get(event, "response")
            gathered.id = gathered.id or get(response, "id")
            gathered.model = gathered.model or get(response, "model")
        elif kind == "response.output_text.delta":
            gathered.add(0, get(event, "delta"))

    @staticmethod
    def finished(logger: Logger, prompt: dict[str, Any], opts: dict[str, Any]) -> Any:
        def finish(gathered: Gathered) -> None:
            logger.answer(gathered.id, "".join(gathered.texts.get(0, [])), gathered.model, opts, **prompt)

        return finish
