"""A prompt group in Redis: one hash per group (``keys.ProjectKeys.group``) holding its members
and its state. Its fields:

- ``r:<response id>``, with an empty value: a response of the group (its member).
- ``v``: the group's version, bumped (HINCRBY) by every change to its labels: the ingest script,
  an LLM judge's verdict, erasure, a re-pairing of the project. Pairing and compaction write a
  group only while its version is the one they read.
- ``p:<pair id>`` and ``k:<item id>``, with empty values: the ids of the group's current pairs
  and KTO items (their records are in the project's ``pair_records`` and ``kto_records``).
- ``m:<match field>`` -> count: the head-to-head results between models the group's feedback
  makes, as pairing last counted them (``leaderboard.py`` names the fields).
- ``t`` and ``h:<bucket>``: the stats counters of the group's labelled responses (``responses``
  once one has feedback, ``likes``, ...) all time and per stats bucket (an hour ``2026-12-04T13``,
  or its day once rolled up), packed as a user's are (``counters.pack``: ``2,1,1``); and
  ``t|pairs``, ``h:<bucket>|pairs`` its pairs, counted apart (pairing adds to them with HINCRBY).
  The ingest script and pairing write them; they leave Redis with the group.

The hash expires with the group while none of its responses has feedback (a day after the last
would), and is kept from the first feedback on. Layout 9 made it one hash: before, a group was a
set of response ids and four more keys (``gver``, ``gpairs``, ``gkto``, ``gmatch``), and its
counters were ``<metric>|g:<group>`` fields of every stats hash. A small hash is one compact
listpack, where each key costs its name and its entries in Redis's tables, a set of ids (before
Redis 7.2) is a hash table of its own, and a field of a big stats hash about 100 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .counters import unpack

MEMBER = "r:"
VERSION = "v"
PAIR = "p:"
KTO = "k:"
MATCH = "m:"
TOTAL = "t"  # the counters all time (packed); + "|pairs": the pairs all time
BUCKET = "h:"  # + "<hour or day>": the counters in one stats bucket (packed); + "|pairs": its pairs
APART = "pairs"  # the counter kept in a field of its own

_MEMBER, _PAIR, _KTO, _MATCH, _TOTAL, _BUCKET = (x.encode() for x in (MEMBER, PAIR, KTO, MATCH, TOTAL, BUCKET))
_TOTAL_APART = _TOTAL + b"|"


@dataclass(frozen=True)
class GroupState:
    version: int = 0
    pair_ids: frozenset[str] = frozenset()
    kto_ids: frozenset[str] = frozenset()
    matches: dict[str, int] = field(default_factory=dict)


def parse(raw: dict[bytes, bytes]) -> GroupState:
    """A group's state from its hash as HGETALL returns it (empty: a group never paired)."""
    matches = {k[2:].decode("utf-8", "surrogateescape"): int(v) for k, v in raw.items() if k.startswith(_MATCH)}
    version = int(raw.get(VERSION.encode(), 0))
    return GroupState(version, frozenset(pair_ids(raw)), frozenset(kto_ids(raw)), matches)


def _ids(raw: dict[bytes, bytes] | list[bytes], prefix: bytes) -> list[str]:
    return sorted(name[2:].decode() for name in raw if name.startswith(prefix))


def members(raw: dict[bytes, bytes] | list[bytes]) -> list[str]:
    """The ids of a group's responses, sorted, from its hash (HGETALL) or its fields (HKEYS)."""
    return _ids(raw, _MEMBER)


def pair_ids(raw: dict[bytes, bytes]) -> list[str]:
    """The ids of a group's current pairs, sorted, from its hash."""
    return _ids(raw, _PAIR)


def kto_ids(raw: dict[bytes, bytes]) -> list[str]:
    """The ids of a group's current KTO items, sorted, from its hash."""
    return _ids(raw, _KTO)


def add(key: str, prefix: str, ids: Iterable[str]) -> list[Any]:
    """The command that lists ``ids`` (members: ``MEMBER``, pairs: ``PAIR``, KTO items: ``KTO``) in
    a group's hash."""
    return ["HSET", key, *(x for i in ids for x in (prefix + i, ""))]


def remove(key: str, prefix: str, ids: Iterable[str]) -> list[Any]:
    """The command that takes ``ids`` out of a group's hash."""
    return ["HDEL", key, *(prefix + i for i in ids)]


def match_fields(matches: dict[str, int]) -> list[Any]:
    """A group's results as the hash's field, value arguments (sorted)."""
    return [x for name, count in sorted(matches.items()) for x in (MATCH + name, str(count))]


def packed_field(bucket: str) -> str:
    """The packed counters' field: all time (``bucket`` ""), or one stats bucket's (an hour or a day)."""
    return TOTAL if bucket == "" else BUCKET + bucket


def counter_field(bucket: str, metric: str = APART) -> str:
    """The field of the counter kept apart (``APART``), all time or in one stats bucket."""
    return f"{packed_field(bucket)}|{metric}"


def counts(raw: dict[bytes, bytes]) -> dict[str, dict[str, int]]:
    """A group's counters from its hash: stats bucket ("" all time) -> metric -> count."""
    out: dict[str, dict[str, int]] = {}
    for name, value in raw.items():
        if name == _TOTAL or name.startswith(_TOTAL_APART):
            bucket, metric = "", name[2:].decode()
        elif name.startswith(_BUCKET):
            bucket, _, metric = name[2:].decode().partition("|")
        else:
            continue
        into = out.setdefault(bucket, {})
        for key, n in (unpack(value) if metric == "" else {metric: int(value)}).items():
            into[key] = into.get(key, 0) + n
    return out
