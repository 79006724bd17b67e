"""A response event as the service accepts it, built from ``Client.log``'s arguments, with a rough
size in bytes for the queue's memory bound: on the caller's thread, no I/O, no encoding.
(Feedback events are a few keys; ``Client`` builds those itself.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Rough per-event bookkeeping bytes (keys, ids, JSON punctuation) added to the text sizes.
EVENT_OVERHEAD = 160
METADATA_ITEM = 64

Built = tuple[dict[str, Any], int]


def response_event(
    rid: str,
    prompt: str | None,
    response: Any,
    messages: Sequence[Mapping[str, Any]] | None,
    system: str | None,
    model: str | None,
    prompt_id: str | None,
    user_id: str | None,
    session_id: str | None,
    metadata: Mapping[str, Any] | None,
    timestamp: float | None,
) -> Built | str:
    """A response event whose response id (and event id) is ``rid``, from ``Client.log``'s
    arguments. Written out field by field: it runs on every call."""
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
    if model is not None:
        event["model"] = model
    if prompt_id is not None:
        event["prompt_id"] = prompt_id
    if user_id is not None:
        event["user_id"] = user_id
    if session_id is not None:
        event["session_id"] = session_id
    if metadata:
        event["metadata"] = dict(metadata)
        size += METADATA_ITEM * len(metadata)
    if timestamp is not None:
        event["timestamp"] = timestamp
    return event, size
