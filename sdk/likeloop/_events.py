"""The events the service accepts, built from the client's arguments, each with a rough size in
bytes for the queue's memory bound. Plain functions on the caller's thread: no I/O, no encoding.

A builder returns ``(event, size)``, or a message saying what is wrong with the arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Rough per-event bookkeeping bytes (keys, ids, JSON punctuation) added to the text sizes.
EVENT_OVERHEAD = 160
METADATA_ITEM = 64
# Optional text fields of a response, sent as given when set.
_OPTIONAL = ("model", "prompt_id", "user_id", "session_id")

Built = tuple[dict[str, Any], int]


def response_event(
    rid: str,
    prompt: str | None,
    response: Any,
    messages: Sequence[Mapping[str, Any]] | None,
    system: str | None,
    metadata: Mapping[str, Any] | None,
    timestamp: float | None,
    optional: dict[str, str | None],
) -> Built | str:
    """A response event whose response id (and event id) is ``rid``; ``optional`` holds model,
    prompt_id, user_id and session_id."""
    if type(response) is not str:
        return "log() needs response= as a string"
    event: dict[str, Any] = {"type": "response", "response_id": rid, "event_id": rid, "response": response}
    size = EVENT_OVERHEAD + len(response)
    if prompt is not None and messages is None:
        if type(prompt) is not str:
            return "log() needs prompt= as a string"
        event["prompt"] = prompt
        size += len(prompt)
    elif messages is not None and prompt is None:
        try:
            event["messages"] = [dict(m) for m in messages]
            size += sum(len(str(m.get("content", ""))) + 32 for m in event["messages"])
        except (TypeError, ValueError, AttributeError):
            return "log() needs messages= as a list of {'role': ..., 'content': ...}"
    else:
        return "log() needs exactly one of prompt= (text) or messages= (chat)"
    if system is not None:
        event["system"] = system
        size += len(system)
    for name in _OPTIONAL:
        value = optional.get(name)
        if value is not None:
            event[name] = value
    if metadata:
        event["metadata"] = dict(metadata)
        size += METADATA_ITEM * len(metadata)
    if timestamp is not None:
        event["timestamp"] = timestamp
    return event, size


def feedback_event(
    etype: str, response_id: str, event_id: str, user_id: str | None, extra: dict[str, Any] | None
) -> Built:
    """A feedback event (``extra``: a rating's value and scale, a comment's or correction's text)."""
    event: dict[str, Any] = {"type": etype, "response_id": response_id, "event_id": event_id}
    size = EVENT_OVERHEAD
    if extra:
        event.update(extra)
        size += len(extra.get("text", ""))
    if user_id is not None:
        event["user_id"] = user_id
    return event, size
