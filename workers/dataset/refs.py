"""Stored records that refer to their responses instead of copying their texts. Pure functions.

A pair (or KTO item) is stored as a line of text: ``=``, the keys of its responses (a response
id, or ``<id>#correction`` for a user's correction of it), and its provenance with the prompt
left out::

    =<chosen key> <rejected key> {"chosen":{...},...,"messages":null,...,"system":null}
    =<completion key> <1|0> {"completion":{...},...,"messages":null,...,"system":null}

The provenance is the row's ``metadata`` as ``provenance.py`` builds it for an empty prompt:
its ``messages`` and ``system`` are the only places the prompt appears, and ``join`` puts the
chosen (or completion) response's there, with its prompt text and the answers' texts, giving
the same ``trl`` (``kto``) row as the copying form had. Response ids are
``A-Z a-z 0-9 _ . : -`` (the service checks), so a space ends a key.

Records stored before (``{...}``: the whole row) are read as they are: ``join`` passes them on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .formats import prompt_text

MARK = b"="
CORRECTION_SUFFIX = "#correction"
# What a join reads of each response hash, in this order.
RESPONSE_FIELDS = ("response", "correction", "prompt", "messages", "system")
_MESSAGES = b',"messages":null,'
_SYSTEM = b',"system":null}'

Fields = Mapping[str, Any]  # a response hash's RESPONSE_FIELDS (text, or None where absent)


def is_ref(raw: bytes) -> bool:
    """Whether a stored record refers to its responses (else it holds the whole row)."""
    return raw[:1] == MARK


def pair_ref(chosen_key: str, rejected_key: str, metadata: str) -> bytes:
    """The stored form of a pair: its responses' keys and its provenance without the prompt."""
    return b"=%s %s %s" % (chosen_key.encode(), rejected_key.encode(), metadata.encode())


def kto_ref(key: str, label: bool, metadata: str) -> bytes:
    """The stored form of a KTO item: its response's key, its label, its provenance."""
    return b"=%s %s %s" % (key.encode(), b"1" if label else b"0", metadata.encode())


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    first, second, meta = raw[1:].split(b" ", 2)
    return first, second, meta


def metadata(raw: bytes) -> dict[str, Any]:
    """A stored record's provenance (either form), parsed; a referring one's has no prompt."""
    if is_ref(raw):
        return orjson.loads(_split(raw)[2])
    return orjson.loads(orjson.loads(raw)["metadata"])


def response_of(key: bytes | str) -> str:
    """The response id a key names (a correction's key names the response it corrects)."""
    text = key.decode() if isinstance(key, bytes) else key
    return text.removesuffix(CORRECTION_SUFFIX)


def responses_named(raw: bytes) -> tuple[str, ...]:
    """The ids of the responses a referring record's join reads (none for a whole row)."""
    if not is_ref(raw):
        return ()
    first, second, _ = _split(raw)
    if second in (b"0", b"1"):
        return (response_of(first),)
    return tuple(dict.fromkeys((response_of(first), response_of(second))))


def _text(key: bytes, fields: Fields) -> str | None:
    if key.endswith(CORRECTION_SUFFIX.encode()):
        return fields.get("correction")
    return fields.get("response")


def _with_prompt(meta: bytes, messages: Any, system: str | None) -> str:
    """The provenance with the prompt's messages and system put in their places."""
    if system is not None and meta.endswith(_SYSTEM):
        meta = meta[: -len(_SYSTEM)] + b',"system":' + orjson.dumps(system) + b"}"
    if messages is not None:
        at = meta.find(_MESSAGES)
        if at >= 0:
            inner = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
            meta = meta[:at] + b',"messages":' + inner + b"," + meta[at + len(_MESSAGES) :]
    return meta.decode()


def parse_messages(raw: str | None) -> Any:
    """A response's stored ``messages`` (JSON text), parsed; None when it has none."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # numbers orjson does not take (integers past 64 bits)
        import json

        return json.loads(raw)


def join(raw: bytes, responses: Mapping[str, Fields]) -> bytes | None:
    """The whole row of a stored record: a referring one's with its responses' texts and prompt
    (``responses``: response id -> its RESPONSE_FIELDS), None if one of them is gone; a whole
    row as it is."""
    if not is_ref(raw):
        return raw
    first, second, meta = _split(raw)
    lead = responses.get(response_of(first))
    if lead is None:
        return None
    text = _text(first, lead)
    if text is None:
        return None
    messages = parse_messages(lead.get("messages"))
    prompt = {"prompt": lead.get("prompt"), "messages": messages}
    provenance = _with_prompt(meta, messages, lead.get("system"))
    if second in (b"0", b"1"):
        row: dict[str, Any] = {
            "prompt": prompt_text(prompt),
            "completion": text,
            "label": second == b"1",
            "metadata": provenance,
        }
        return orjson.dumps(row)
    other = responses.get(response_of(second))
    rejected = None if other is None else _text(second, other)
    if rejected is None:
        return None
    return orjson.dumps({"prompt": prompt_text(prompt), "chosen": text, "rejected": rejected, "metadata": provenance})
