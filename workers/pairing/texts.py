"""Stored pairs and KTO items with their texts: a record refers to its responses (the pairing job
stores it so, workers/dataset/refs.py); whoever needs the row reads the responses' texts and
prompt here, a batch of records in one round trip, and joins them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from likeloop_server import keys, stored
from workers.dataset import refs

Item = tuple[str, str, bytes]  # (item id, group id, stored record)
Fields = dict[str, Any]


def needed(raws: Iterable[bytes]) -> list[str]:
    """The responses the records' joins read, each once."""
    return list(dict.fromkeys(rid for raw in raws for rid in refs.responses_named(raw)))


def queue_reads(pipe: Any, pk: keys.ProjectKeys, response_ids: list[str]) -> None:
    """Add the reads of the responses' texts and prompts to a pipeline (one reply each)."""
    for rid in response_ids:
        pipe.hmget(pk.response(rid), refs.RESPONSE_FIELDS)


def fields_of(response_ids: list[str], replies: list[list[bytes | None]]) -> dict[str, Fields]:
    """Response id -> its fields, from ``queue_reads``' replies (a response that is gone is left out)."""
    return stored.response_fields(response_ids, replies, refs.RESPONSE_FIELDS)


def read_fields(conn: redis.Redis, pk: keys.ProjectKeys, response_ids: list[str]) -> dict[str, Fields]:
    """The responses' fields, in one round trip (none when no id is given)."""
    return stored.read_response_fields(conn, pk, response_ids, refs.RESPONSE_FIELDS)


def joined(items: list[Item], responses: dict[str, Fields]) -> tuple[list[Item], list[str]]:
    """The items as whole rows, and the ids of those whose responses are gone (left out)."""
    out: list[Item] = []
    lost: list[str] = []
    for item, group, raw in items:
        row = refs.join(raw, responses)
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
