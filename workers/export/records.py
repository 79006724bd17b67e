"""A snapshot's reading of a project's stored pairs (or KTO items): the whole records hash, a
chunk at a time, each chunk checked in one round trip against the run's scratch set (HSCAN may
return an entry twice while Redis resizes the hash), against the sets of pairs of sources the
run leaves out, and with the quality digests of the chunk's groups the run's figures have not
counted yet (export/quality.py), so the figures cost no round trip of their own, and with the
texts of the responses its records name (workers/pairing/texts.py), joined into the rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson
import redis

from likeloop_server import keys
from workers.dataset import refs
from workers.pairing import texts
from workers.pairing.digest import SOURCE_CODES
from workers.quality.gather import answer_text

from .logscan import READ_CHUNK, Added
from .quality import Facts, QualitySection


class Chunk(NamedTuple):
    """Records not read before in the run, and not of a left-out source; with, when the run's
    figures read them off the records, their pairs' facts and the digests of their groups the
    figures had not counted (group id -> stored digest)."""

    items: list[Added]
    facts: Facts | None = None
    digests: dict[str, bytes | None] | None = None


def all_records(
    conn: redis.Redis,
    pk: keys.ProjectKeys,
    records_key: str,
    seen_key: str,
    skip_sets: tuple[str, ...] = (),
    section: QualitySection | None = None,
) -> Iterator[Chunk]:
    """Every record of ``records_key``, about READ_CHUNK at a time; ``seen_key``: the run's
    scratch set of ids read; ``skip_sets``: sets of pair ids to leave out; ``section``: the
    run's quality section, when its figures take pairs' facts off their records."""
    cursor = 0
    while True:
        cursor, found = conn.hscan(records_key, cursor, count=READ_CHUNK)
        if found:
            yield _chunk(conn, pk, seen_key, skip_sets, section, found)
        if cursor == 0:
            return


def _chunk(
    conn: redis.Redis,
    pk: keys.ProjectKeys,
    seen_key: str,
    skip_sets: tuple[str, ...],
    section: QualitySection | None,
    found: dict[bytes, bytes],
) -> Chunk:
    ids, raws = list(found), list(found.values())
    parts = [refs.split(raw) for raw in raws]
    metas = [orjson.loads(p[2]) if p is not None else refs.metadata(raw) for p, raw in zip(parts, raws, strict=True)]
    unread = section.uncounted(list(dict.fromkeys(m["group_id"] for m in metas))) if section else []
    named = texts.named_by(parts)
    pipe = conn.pipeline(transaction=False)
    pipe.smismember(seen_key, ids)
    pipe.sadd(seen_key, *ids)
    for key in skip_sets:
        pipe.smismember(key, ids)
    if unread:
        pipe.hmget(pk.quality_digests, unread)
    reads = texts.queue_reads(pipe, pk, named)
    replies = pipe.execute()
    seen, skipped = replies[0], replies[2 : 2 + len(skip_sets)]
    responses = texts.fields_of(named, replies[len(replies) - reads :])
    kept = [n for n in range(len(ids)) if not seen[n] and not any(flags[n] for flags in skipped)]
    stored = [(metas[n].get("pair_id") or metas[n]["item_id"], metas[n]["group_id"], raws[n]) for n in kept]
    items, lost = texts.joined(stored, responses, [parts[n] for n in kept])
    if section is None:
        return Chunk(items)
    digests = dict(zip(unread, replies[2 + len(skip_sets)], strict=True)) if unread else {}
    gone = set(lost)
    metas = [metas[n] for n, (item, _, _) in zip(kept, stored, strict=True) if item not in gone]
    return Chunk(items, _pair_facts([orjson.loads(raw) for _, _, raw in items], metas), digests)


def _pair_facts(rows: list[dict[str, Any]], metas: list[dict[str, Any]]) -> Facts:
    """Stored pairs' sources (their places in digest.SOURCES) and their answers' lengths."""
    return (
        [SOURCE_CODES[meta.get("source", "vote")] for meta in metas],
        [len(c) if type(c := row["chosen"]) is str else len(answer_text(c)) for row in rows],
        [len(r) if type(r := row["rejected"]) is str else len(answer_text(r)) for row in rows],
    )
