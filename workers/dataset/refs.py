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

That line is stored deflated (``~`` and raw DEFLATE data) against a fixed dictionary of the
provenance's usual text (``_DICTIONARY``: part of the layout, never to change; a new one would
take a new mark), which leaves mostly the ids: a pair takes about 120 bytes, a KTO item 100.

Records stored before (``{...}``: the whole row) are read as they are: ``join`` passes them on.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .formats import prompt_text

MARK = b"="
PACKED = b"~"
# Deflate's preset dictionary for referring records (the text they most often repeat; the end of
# it, which deflate reaches most cheaply, is the most common). Stored records depend on it.
_DICTIONARY = (
    b'"source":"comparison","source":"ranking","source":"judge","source":"reference","source_model":"'
    b'"source":"correction","kind":"correction","score":null},"source":"rating",'
    b'{"completion":{"comment_count":0,"comments":[],"dislikes":0,"kind":"response","likes":1,"model":"",'
    b'"ratings":[],"response_id":"","score":1},"group_id":"","item_id":"","labelled_at":1795700000.0,'
    b'"messages":null,"source":"vote","system":null}'
    b'{"chosen":{"comment_count":0,"comments":[],"dislikes":0,"kind":"response","likes":1,"model":"",'
    b'"ratings":[],"response_id":"","score":1},"group_id":"","margin":1,"messages":null,"pair_id":"",'
    b'"paired_at":1795700000.0,"rejected":{"comment_count":0,"comments":[],"dislikes":1,"kind":"response",'
    b'"likes":0,"model":"","ratings":[],"response_id":"","score":-1},"source":"vote","system":null}'
)
CORRECTION_SUFFIX = "#correction"
_CORRECTION = CORRECTION_SUFFIX.encode()
# What a join reads of each response hash, in this order.
RESPONSE_FIELDS = ("response", "correction", "prompt", "messages", "system")
_RESPONSE, _CORRECTION_TEXT, _PROMPT, _MESSAGES_JSON, _SYSTEM_TEXT = range(len(RESPONSE_FIELDS))
_MESSAGES = b',"messages":null,'
_SYSTEM = b',"system":null}'
_LABELS = (b"0", b"1")

Parts = tuple[bytes, bytes, bytes]  # a referring record's first key, its second key (or label), its provenance
# A response's RESPONSE_FIELDS in order, as stored (bytes) or as text; None where absent.
Values = Sequence[bytes | str | None]


def is_ref(raw: bytes) -> bool:
    """Whether a stored record refers to its responses (else it holds the whole row)."""
    return raw[:1] in (MARK, PACKED)


def pack(line: bytes) -> bytes:
    """A referring record's line as stored: deflated against the dictionary."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY)
    return PACKED + squeeze.compress(line) + squeeze.flush()


def unpack(raw: bytes) -> bytes:
    """A stored record as its line (a deflated one inflated; any other as it is)."""
    if raw[:1] != PACKED:
        return raw
    return zlib.decompressobj(-15, _DICTIONARY).decompress(raw[1:])


def pair_ref(chosen_key: str, rejected_key: str, metadata: str) -> bytes:
    """The stored form of a pair: its responses' keys and its provenance without the prompt."""
    return pack(b"=%s %s %s" % (chosen_key.encode(), rejected_key.encode(), metadata.encode()))


def kto_ref(key: str, label: bool, metadata: str) -> bytes:
    """The stored form of a KTO item: its response's key, its label, its provenance."""
    return pack(b"=%s %s %s" % (key.encode(), b"1" if label else b"0", metadata.encode()))


def split(raw: bytes) -> Parts | None:
    """A referring record's parts; None for a whole row."""
    line = unpack(raw)
    if line[:1] != MARK:
        return None
    first, second, meta = line[1:].split(b" ", 2)
    return first, second, meta


def metadata(raw: bytes) -> dict[str, Any]:
    """A stored record's provenance (either form), parsed; a referring one's has no prompt."""
    parts = split(raw)
    if parts is not None:
        return orjson.loads(parts[2])
    return orjson.loads(orjson.loads(raw)["metadata"])


def response_of(key: bytes) -> bytes:
    """The response id a key names (a correction's key names the response it corrects)."""
    return key[: -len(_CORRECTION)] if key.endswith(_CORRECTION) else key


def named(parts: Parts) -> tuple[bytes, ...]:
    """The ids of the responses a referring record's join reads: its first key's response (whose
    prompt the row takes) first."""
    first, second, _ = parts
    lead = response_of(first)
    if second in _LABELS:
        return (lead,)
    other = response_of(second)
    return (lead,) if other == lead else (lead, other)


def responses_named(raw: bytes) -> tuple[str, ...]:
    """The ids of the responses a stored record's join reads (none for a whole row)."""
    parts = split(raw)
    return () if parts is None else tuple(rid.decode() for rid in named(parts))


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _answer(key: bytes, values: Values) -> str | None:
    return _text(values[_CORRECTION_TEXT] if key.endswith(_CORRECTION) else values[_RESPONSE])


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


def parse_messages(raw: bytes | str | None) -> Any:
    """A response's stored ``messages`` (JSON text), parsed; None when it has none."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # numbers orjson does not take (integers past 64 bits)
        import json

        return json.loads(raw)


def join_parts(parts: Parts, responses: Mapping[bytes, Values]) -> bytes | None:
    """The whole row of a referring record (``split``), with its responses' texts and prompt
    (``responses``: response id -> its RESPONSE_FIELDS), None if one of them is gone."""
    first, second, meta = parts
    lead = responses.get(response_of(first))
    if lead is None:
        return None
    text = _answer(first, lead)
    if text is None:
        return None
    prompt = _text(lead[_PROMPT])
    if lead[_MESSAGES_JSON] is None and lead[_SYSTEM_TEXT] is None:
        provenance = meta.decode()
        messages = None
    else:
        messages = parse_messages(lead[_MESSAGES_JSON])
        provenance = _with_prompt(meta, messages, _text(lead[_SYSTEM_TEXT]))
    if prompt is None:
        prompt = prompt_text({"messages": messages})
    if second in _LABELS:
        return orjson.dumps({"prompt": prompt, "completion": text, "label": second == b"1", "metadata": provenance})
    other = responses.get(response_of(second))
    rejected = None if other is None else _answer(second, other)
    if rejected is None:
        return None
    return orjson.dumps({"prompt": prompt, "chosen": text, "rejected": rejected, "metadata": provenance})


def join(raw: bytes, responses: Mapping[bytes, Values]) -> bytes | None:
    """The whole row of a stored record: a referring one's joined (``join_parts``), a whole row
    as it is."""
    parts = split(raw)
    return raw if parts is None else join_parts(parts, responses)
