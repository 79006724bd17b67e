"""Stored pairs and KTO items with their texts: a record refers to its responses (the pairing job
stores it so, workers/dataset/refs.py); whoever needs the row reads the responses' texts and
prompt here, a batch of records in one round trip (one script call per thousand responses:
likeloop_server/stored.py), and joins them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from likeloop_server import keys, stored
from workers.dataset import refs

Item = tuple[str, str, bytes]  # (item id, group id, stored record)
Responses = stored.ResponseFields  # response id -> its refs.RESPONSE_FIELDS as stored


def needed(raws: Iterable[bytes]) -> list[bytes]:
    """The responses the records' joins read, each once."""
    return named_by(list(map(refs.split, raws)))


def named_by(parts: list[refs.Parts | None]) -> list[bytes]:
    """The responses the joins of records (as ``refs.split`` gives them) read, each once."""
    out: dict[bytes, None] = {}
    for found in parts:
        if found is not None:
            out.update(dict.fromkeys(refs.named(found)))
    return list(out)


def read_commands(pk: keys.ProjectKeys, response_ids: list[bytes]) -> list[tuple[Any, ...]]:
    """The commands that read the responses' texts and prompts (for a pipeline or a raw link)."""
    return stored.response_field_reads(pk, response_ids, refs.RESPONSE_FIELDS)


def fields_of(response_ids: list[bytes], replies: list[list[bytes | None]]) -> Responses:
    """Response id -> its fields, from the replies of ``read_commands`` (a response that is gone
    is left out)."""
    return stored.response_fields(response_ids, replies, len(refs.RESPONSE_FIELDS))


def queue_reads(pipe: Any, pk: keys.ProjectKeys, response_ids: list[bytes]) -> int:
    """Add the reads of the responses' texts and prompts to a pipeline; how many replies they owe."""
    commands = read_commands(pk, response_ids)
    for command in commands:
        pipe.execute_command(*command)
    return len(commands)


def read_fields(conn: redis.Redis, pk: keys.ProjectKeys, response_ids: list[bytes]) -> Responses:
    """The responses' fields, in one round trip (none when no id is given)."""
    return stored.read_response_fields(conn, pk, response_ids, refs.RESPONSE_FIELDS)


def joined(
    items: list[Item], responses: Responses, parts: list[refs.Parts | None] | None = None
) -> tuple[list[Item], list[str]]:
    """The items as whole rows, and the ids of those whose responses are gone (left out);
    ``parts``: the items' records as ``refs.split`` gives them, when split already."""
    out: list[Item] = []
    lost: list[str] = []
    split = parts if parts is not None else [refs.split(raw) for _, _, raw in items]
    for (item, group, raw), found in zip(items, split, strict=True):
        row = raw if found is None else refs.join_parts(found, responses)
        if row is None:
            lost.append(item)
        else:
            out.append((item, group, row))
    return out, lost


def join_all(conn: redis.Redis, pk: keys.ProjectKeys, *batches: list[Item]) -> tuple[list[list[Item]], list[str]]:
    """Each batch of stored items as whole rows, reading their responses in one round trip; and
    the ids of the items left out because a response of theirs is gone."""
    responses = read_fields(conn, pk, needed(raw for batch in batches for _, _, raw in batch))
    out, lost = [], []
    for batch in batches:
        rows, gone = joined(batch, responses)
        out.append(rows)
        lost += gone
    return out, lost


def one_row(conn: redis.Redis, pk: keys.ProjectKeys, raw: bytes | None) -> bytes | None:
    """One stored record as its whole row (None if it, or a response it names, is gone)."""
    if raw is None:
        return None
    return refs.join(raw, read_fields(conn, pk, needed([raw])))
