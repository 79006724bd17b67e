"""Reading a project's pair log for an incremental export: what to write and what to retract.

An entry is acted on by the state of its item now: an added pair (or KTO item) that is neither
exported nor already written by this run is written, if its record still exists; a removed one
that no longer exists, was exported and is not already retracted by this run is retracted.
Items acted on join the run's added (retracted) scratch set, so a later entry for the same item
in this run is skipped.

A chunk of entries costs a handful of bulk commands (XRANGE, SMISMEMBER, HMGET, SADD) on one
connection, whatever its size, and one script call per thousand responses its records name (their
texts and prompt, joined to the records: workers/pairing/texts.py). The records of the next
chunk and the texts of the one after the current are requested before the current one is handed
to the caller, and their replies read after: Redis works while the caller encodes rows, on the
caller's thread (a reader thread lost more to handing the GIL back and forth than it gained).
Three chunks are held at most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
import redis

from likeloop_server import keys, stored
from likeloop_server.connections import node_for
from likeloop_server.defaults import EXPORT_READ_CHUNK as READ_CHUNK
from workers.dataset import refs
from workers.pairing import texts

_ADDS = {stored.PAIR_ADD.encode(): False, stored.KTO_LABEL.encode(): True}  # op -> is a KTO item
_REMOVES = {stored.PAIR_RETRACT.encode(): False, stored.KTO_UNLABEL.encode(): True}


Added = tuple[str, str, bytes]  # (item id, group id, stored record, or the row it joins to)


@dataclass
class Chunk:
    """What one chunk of the log asks for."""

    pairs: list[Added] = field(default_factory=list)  # pairs to write
    kto: list[Added] = field(default_factory=list)  # KTO items to write
    retractions: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, item id, group id)
    digests: dict[str, bytes | None] | None = None  # the pairs' groups' quality digests, when asked for


@dataclass(frozen=True)
class ScanSpec:
    """One run's view of the log: the range, its scratch sets, and which kinds it writes."""

    pk: keys.ProjectKeys
    cursor: str  # exclusive start
    end: str  # inclusive end
    added: str  # scratch set of the ids this run wrote
    retracted: str  # scratch set of the ids this run retracted
    want_pairs: bool
    want_kto: bool
    # Sets of pair ids (keys.ProjectKeys.source_pairs) of the sources this run leaves out.
    skip_sets: tuple[str, ...] = ()
    digests: bool = False  # read the quality digests of the pairs' groups with their records


class _Link:
    """One connection from the pool of the server that holds ``key`` (a project's: all of its
    keys are on one), for commands whose replies are read later, in order, raw."""

    def __init__(self, conn: redis.Redis, key: str) -> None:
        self._pool = node_for(conn, key).connection_pool
        self._connection = self._pool.get_connection()
        self.owed = 0

    def send(self, *commands: Sequence[Any]) -> None:
        # hiredis packs in C; redis-py's own packer spent microseconds per argument.
        self._connection.send_packed_command([b"".join([hiredis.pack_command(tuple(c)) for c in commands])])
        self.owed += len(commands)

    def read(self, count: int) -> list[Any]:
        replies = []
        for _ in range(count):
            self.owed -= 1
            replies.append(self._connection.read_response())
        return replies

    def close(self) -> None:
        if self.owed:
            self._connection.disconnect()  # replies left unread on it
        self._pool.release(self._connection)


@dataclass
class _Pending:
    """A chunk decided, its record reads sent, their replies not read yet."""

    last: str
    count: int
    adds: dict[bool, list[tuple[bytes, bytes]]]  # is KTO -> (item, group) whose records were asked for
    removes: list[tuple[bytes, bytes, bytes]]  # (op, item, group) asked about with HEXISTS
    commands: int  # replies owed for it
    groups: list[bytes] | None = None  # the pairs' groups whose digests were asked for


Entry = tuple[bytes, bytes, bytes, bytes]  # (stream id, op, item id, group id)


def _decide(link: _Link, spec: ScanSpec, entries: list[Entry]) -> _Pending:
    """Pick the entries to act on, and send (not read) the reads of their records."""
    adds, removes = _choose(link, spec, _candidates(link, spec, entries))
    sent = _send_record_reads(link, spec, adds, removes)
    groups = None
    if spec.digests and adds[False]:
        groups = list(dict.fromkeys(group for _, group in adds[False]))
        link.send(("HMGET", spec.pk.quality_digests, *groups))
        sent += 1
    return _Pending(entries[-1][0].decode(), len(entries), adds, removes, sent, groups)


def _candidates(link: _Link, spec: ScanSpec, entries: list[Entry]) -> list[Entry]:
    """The entries of the kinds this run writes, less the pairs of left-out sources (neither
    written nor retracted)."""
    wanted = {False: spec.want_pairs, True: spec.want_kto}
    candidates = [e for e in entries if (e[1] in _ADDS and wanted[_ADDS[e[1]]]) or e[1] in _REMOVES]
    if spec.skip_sets and candidates:
        ids = [e[2] for e in candidates]
        link.send(*(("SMISMEMBER", key, *ids) for key in spec.skip_sets))
        left_out = [any(flags) for flags in zip(*link.read(len(spec.skip_sets)), strict=True)]
        candidates = [e for e, out in zip(candidates, left_out, strict=True) if not out]
    return candidates


def _choose(
    link: _Link, spec: ScanSpec, candidates: list[Entry]
) -> tuple[dict[bool, list[tuple[bytes, bytes]]], list[tuple[bytes, bytes, bytes]]]:
    """The adds (by kind: False pairs, True KTO items) not exported nor written by this run yet,
    and the removals of exported items not retracted by this run yet."""
    adds: dict[bool, list[tuple[bytes, bytes]]] = {False: [], True: []}
    removes: list[tuple[bytes, bytes, bytes]] = []
    if not candidates:
        return adds, removes
    # The run's added set matters for adds only, its retracted set for removals only: each is
    # asked about the entries it decides (most runs retract little, so that check is small).
    add_items = [e[2] for e in candidates if e[1] in _ADDS]
    remove_items = [e[2] for e in candidates if e[1] in _REMOVES]
    asked = [("SMISMEMBER", spec.pk.exported, *(e[2] for e in candidates))]
    for key, ids in ((spec.added, add_items), (spec.retracted, remove_items)):
        if ids:
            asked.append(("SMISMEMBER", key, *ids))
    link.send(*asked)
    replies = link.read(len(asked))
    exported = replies[0]
    done = iter(replies[1:])
    done_add = iter(next(done) if add_items else [])
    done_retract = iter(next(done) if remove_items else [])
    taken: set[bytes] = set()
    # An item is either exported or not for the whole run, so it is an add or a removal, never both.
    for n, (_, op, item, group) in enumerate(candidates):
        if op in _ADDS:
            already = next(done_add)
            if item not in taken and not exported[n] and not already:
                adds[_ADDS[op]].append((item, group))
                taken.add(item)
        else:
            already = next(done_retract)
            if item not in taken and exported[n] and not already:
                removes.append((op, item, group))
                taken.add(item)
    return adds, removes


def _send_record_reads(
    link: _Link, spec: ScanSpec, adds: dict[bool, list[tuple[bytes, bytes]]], removes: list[tuple[bytes, bytes, bytes]]
) -> int:
    """Send the reads of the added records and of whether each removed one still exists; the
    number of replies to read."""
    pk = spec.pk
    commands: list[tuple[Any, ...]] = []
    for kto, records_key in ((False, pk.pair_records), (True, pk.kto_records)):
        if adds[kto]:
            ids = [item for item, _ in adds[kto]]
            commands.append(("HMGET", records_key, *ids))
            # Marked written now so the next chunk's check sees it; taken back if the record is gone.
            commands.append(("SADD", spec.added, *ids))
    for op, item, _ in removes:
        commands.append(("HEXISTS", pk.kto_records if _REMOVES[op] else pk.pair_records, item))
    if commands:
        link.send(*commands)
    return len(commands)


def _collect(pending: _Pending, replies: Iterator[Any], spec: ScanSpec) -> tuple[Chunk, list[tuple[Any, ...]]]:
    """A pending chunk from its records' replies (as stored), and the scratch-set updates that
    follow (to send)."""
    chunk = Chunk()
    vanished: list[bytes] = []
    for kto, target in ((False, chunk.pairs), (True, chunk.kto)):
        asked = pending.adds[kto]
        if asked:
            values = next(replies)
            next(replies)  # SADD
            for (item, group), value in zip(asked, values, strict=True):
                if value is None:
                    vanished.append(item)
                else:
                    target.append((item.decode(), group.decode(), value))
    for op, item, group in pending.removes:
        if not next(replies):  # gone: retract it
            chunk.retractions.append(("kto" if _REMOVES[op] else "pair", item.decode(), group.decode()))
    if pending.groups is not None:
        chunk.digests = {g.decode(): d for g, d in zip(pending.groups, next(replies), strict=True)}
    updates: list[tuple[Any, ...]] = []
    if vanished:
        updates.append(("SREM", spec.added, *vanished))
    if chunk.retractions:
        updates.append(("SADD", spec.retracted, *(item for _, item, _ in chunk.retractions)))
    return chunk, updates


@dataclass
class _Unjoined:
    """A chunk whose records' responses were asked for (workers/pairing/texts.py), not read yet."""

    chunk: Chunk
    parts: tuple[list[refs.Parts | None], list[refs.Parts | None]]  # its pairs' and KTO items' records, split
    named: list[bytes]
    reads: int


def _ask_texts(link: _Link, spec: ScanSpec, chunk: Chunk) -> _Unjoined:
    """Send (not read) the reads of the responses a chunk's records name."""
    parts = ([refs.split(raw) for _, _, raw in chunk.pairs], [refs.split(raw) for _, _, raw in chunk.kto])
    named = texts.named_by(parts[0] + parts[1])
    reads = texts.read_commands(spec.pk, named)
    if reads:
        link.send(*reads)
    return _Unjoined(chunk, parts, named, len(reads))


def _join(link: _Link, held: _Unjoined) -> tuple[Chunk, list[str]]:
    """The chunk with its records joined to their responses' texts, and the items left out
    because a response of theirs is gone (not written: pairing retracts them)."""
    responses = texts.fields_of(held.named, link.read(held.reads))
    chunk = held.chunk
    chunk.pairs, lost = texts.joined(chunk.pairs, responses, held.parts[0])
    chunk.kto, gone = texts.joined(chunk.kto, responses, held.parts[1])
    return chunk, lost + gone


def scan_log(conn: redis.Redis, spec: ScanSpec, renew: Callable[[], None]) -> Iterator[Chunk]:
    """The run's share of the pair log, a chunk at a time; ``renew`` is called once per chunk
    (it renews the export's lock, or raises if the export lost it).

    Three chunks are in flight: while the caller writes one, Redis reads the responses of the
    next (the texts) and the records of the one after."""
    if spec.end == spec.cursor:
        return
    link = _Link(conn, spec.pk.pair_log)
    try:
        pending: _Pending | None = None
        held: _Unjoined | None = None
        start: str | None = spec.cursor
        while pending is not None or start is not None or held is not None:
            renew()
            if start is not None:
                link.send(("XRANGE", spec.pk.pair_log, f"({start}", spec.end, "COUNT", READ_CHUNK))
            # Replies come in the order asked: this chunk's records, then the texts of the one before.
            collected, updates = (
                (None, []) if pending is None else _collect(pending, iter(link.read(pending.commands)), spec)
            )
            pending = None
            ready = None
            if held is not None:
                ready, lost = _join(link, held)
                held = None
                if lost:
                    updates.append(("SREM", spec.added, *lost))
            if updates:
                link.send(*updates)
            if start is not None:
                entries = stored.parse_pair_log(link.read(1)[0])
            link.read(len(updates))  # sent after the XRANGE, so answered after it
            if start is not None:
                if entries:
                    pending = _decide(link, spec, entries)
                    done = len(entries) < READ_CHUNK or pending.last == spec.end
                    start = None if done else pending.last
                else:
                    start = None
            if collected is not None:
                held = _ask_texts(link, spec, collected)
            if ready is not None:
                yield ready
    finally:
        link.close()
