"""Erasure in Redis: the prompt groups an erasure touches, rewritten without it and paired
again; the per-user stats fields, recent comments and waiting feedback of the erased users.

A group is rewritten in one transaction: its whole state is read as a snapshot (the one
compaction writes, workers/compaction/snapshot.py), taken out of Redis and put back filtered
(workers/erasure/scope.py), its version bumped and the group marked dirty. The transaction
watches the group's members, version and comments, so an event that lands meanwhile makes it
start over; a pairing job that read the group before gets "changed" and reads it again.
Compacted groups are brought back first (workers/compaction/restore.py), then rewritten: their
old snapshots become garbage the segment pass removes (workers/erasure/segments.py).

Pairs and KTO items built on erased data leave with the rewrite; re-pairing at once makes again
those that still stand (as new records, without the erased feedback in their provenance); the
rest are logged as retracted, so the next incremental export lists them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from likeloop_server import compacted, group_state, keys, quality_cache, stored
from likeloop_server.counters import DIMENSIONS, PACKED_LUA, SEPARATOR
from likeloop_server.settings import Settings
from workers.compaction import snapshot as group_snapshot
from workers.compaction.restore import restore_groups
from workers.pairing.drain import pair_group_with

from .scope import Scope, filter_snapshot

log = logging.getLogger(__name__)

ATTEMPTS = 20
# Texts this short are not looked for in export rows without ids: they would match too much.
MIN_TEXT_MATCH = 8


def _glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


# KEYS: the stats total, an old stats bucket. ARGV: per-user fields of the bucket. Each one's
# counts taken off the same field of the total (packed: counters.PACKED_LUA; a field per metric
# before layout 9), which goes when it reaches zero, and the field removed from the bucket.
_FORGET_USER_COUNTS = (
    PACKED_LUA
    + """
local total, bucket = KEYS[1], KEYS[2]
for _, name in ipairs(ARGV) do
  local value = redis.call('HGET', bucket, name)
  if value then
    if string.sub(name, 1, #PACKED + 1) == PACKED .. '|' then
      local deltas = {}
      for j, n in pairs(unpack_counts(value)) do deltas[j] = -n end
      add_packed(total, name, deltas)
    elseif redis.call('HINCRBY', total, name, -tonumber(value)) == 0 then
      redis.call('HDEL', total, name)
    end
    redis.call('HDEL', bucket, name)
  end
end
return #ARGV
"""
)
_FIELDS_PER_CALL = 1000


class HotPass:
    """One erasure run's work on Redis for one project."""

    def __init__(
        self,
        conn: redis.Redis,
        s3: Any,
        settings: Settings,
        project: str,
        scope: Scope,
        renew: Callable[[], None] = lambda: None,
    ) -> None:
        self.conn, self.s3, self.settings, self.scope, self.renew = conn, s3, settings, scope, renew
        self.project = project
        self.pk = keys.ProjectKeys(project)
        self.counts: dict[str, int] = {}
        self.texts: set[str] = set()  # the erased texts, for export rows no id names
        self.groups: set[str] = set()  # the groups rewritten

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n

    # ---- groups ---------------------------------------------------------------------------

    def erase_groups(self, group_ids: set[str]) -> None:
        """Rewrite each group the erasure touches (compacted ones brought back first), re-pair it."""
        gids = sorted(group_ids)
        away = compacted.locate_groups(self.conn, self.pk, gids) if compacted.any_compacted(self.conn, self.pk) else {}
        if away:
            restored = restore_groups(self.conn, self.s3, self.settings, self.pk, away)
            missing = sorted(set(away) - set(restored))
            if missing:
                raise RuntimeError(f"could not bring back compacted groups {missing[:3]} of {self.project} to erase")
            self.count("compacted_groups", len(away))
        for n, gid in enumerate(gids, 1):
            if n % 100 == 0:
                self.renew()  # a sign of life: the run's lock lapses without one
            tainted = self._rewrite(gid)
            if tainted is None:
                continue
            self.count("groups")
            pair_group_with(self.conn, self.project, gid, self.settings.max_pairs_per_group)
            self._retract_gone(gid, *tainted)
            self._drop_if_empty(gid)

    def _rewrite(self, gid: str) -> tuple[list[str], list[str]] | None:
        """Rewrite one group without the erased data; returns its tainted (pairs, KTO items), or
        None when the erasure touched nothing in it."""
        pk = self.pk
        for _ in range(ATTEMPTS):
            with self.conn.pipeline(transaction=True) as pipe:
                try:
                    members = group_state.members(self.conn.hkeys(pk.group(gid)))
                    pipe.watch(pk.group(gid), *(pk.comments(r) for r in members))
                    snap = group_snapshot.read_snapshots(self.conn, pk, {gid: 0.0}, time.time())[0]
                    if sorted(members) != snap["members"]:
                        continue
                    filtered = filter_snapshot(snap, self.scope)
                    if not filtered.changed:
                        return None
                    now = time.time()
                    rolled = (self.conn.get(pk.stats_rolled) or b"").decode()
                    commands = group_snapshot.removal_commands(pk, snap)
                    commands += group_snapshot.restore_commands(pk, filtered.snap, now, rolled)[0]
                    commands += self._pair_count_commands(gid, len(filtered.tainted_pairs))
                    pipe.multi()
                    for command in commands:
                        pipe.execute_command(*command)
                    pipe.hincrby(pk.group(gid), group_state.VERSION, 1)
                    pipe.zadd(pk.dirty, {gid: now})
                    pipe.execute()
                except redis.WatchError:
                    continue
            for name, n in filtered.counts.items():
                self.count(name, n)
            self.scope.responses |= filtered.erased  # found here when no archive named them
            self.texts |= {t for t in filtered.texts if len(t) >= MIN_TEXT_MATCH}
            self.groups.add(gid)
            return filtered.tainted_pairs, filtered.tainted_kto
        raise RuntimeError(f"group {gid} of {self.project} kept changing while it was being erased")

    def _pair_count_commands(self, gid: str, n: int) -> list[list[Any]]:
        """The pairs counters less the tainted pairs (re-pairing counts again those it makes)."""
        if not n:
            return []
        field = group_state.counter_field("", "pairs")
        return [["HINCRBY", self.pk.stats_total, "pairs", -n], ["HINCRBY", self.pk.group(gid), field, -n]]

    def _retract_gone(self, gid: str, pairs: list[str], kto: list[str]) -> None:
        """Log as retracted the tainted items re-pairing did not make again."""
        pk = self.pk
        pipe = self.conn.pipeline(transaction=True)
        retracted = 0
        kinds = ((pairs, group_state.PAIR, stored.PAIR_RETRACT), (kto, group_state.KTO, stored.KTO_UNLABEL))
        for ids, prefix, op in kinds:
            if not ids:
                continue
            listed = self.conn.hmget(pk.group(gid), [prefix + i for i in ids])
            for item, there in zip(ids, listed, strict=True):
                if there is None:
                    pipe.xadd(pk.pair_log, stored.pair_log_entry(op, item, gid))
                    retracted += 1
        if retracted:
            pipe.execute()
        self.count("pairs_retracted", retracted)

    def _drop_if_empty(self, gid: str) -> None:
        """A group whose every response was erased leaves Redis once re-pairing has retracted its pairs."""
        pk = self.pk
        if group_state.members(self.conn.hkeys(pk.group(gid))):
            return
        pipe = self.conn.pipeline(transaction=True)
        pipe.delete(pk.group(gid), pk.judgements(gid))
        pipe.zrem(pk.group_changed, gid)
        pipe.zrem(pk.dirty, gid)
        pipe.zrem(pk.disliked_groups, gid)
        pipe.hdel(pk.quality_digests, gid)
        pipe.execute()

    # ---- what is named by user ------------------------------------------------------------

    def erase_user_fields(self) -> None:
        """Every stats field named by an erased user (``<metric>|u:<user>``), in every stats hash."""
        if not self.scope.users:
            return
        buckets = [""] + sorted(b.decode() for b in self.conn.smembers(self.pk.stats_hours))
        for bucket in buckets:
            key = group_snapshot.stats_key(self.pk, bucket)
            for user in self.scope.users:
                suffix = SEPARATOR + DIMENSIONS["user"] + user
                found = [
                    name
                    for name, _ in self.conn.hscan_iter(key, match="*" + _glob_escape(suffix), count=2000)
                    if name.decode("utf-8", "surrogateescape").endswith(suffix)
                ]
                if found:
                    self.conn.hdel(key, *found)
                    self.count("stats_fields", len(found))

    def _filter_list(self, key: bytes | str, drop: Callable[[bytes], bool]) -> int:
        """Take the items ``drop`` picks out of a list, in one watched transaction (its expiry
        kept); how many went."""
        for _ in range(ATTEMPTS):
            with self.conn.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.lrange(key, 0, -1)
                    ttl = pipe.ttl(key)
                    kept = [item for item in raw if not drop(item)]
                    if len(kept) == len(raw):
                        return 0
                    pipe.multi()
                    pipe.delete(key)
                    if kept:
                        pipe.rpush(key, *kept)
                        if ttl > 0:
                            pipe.expire(key, ttl)
                    pipe.execute()
                    return len(raw) - len(kept)
                except redis.WatchError:
                    continue
        raise RuntimeError(f"{key!r} of {self.project} kept changing while it was being erased")

    def erase_recent_comments(self) -> None:
        """The project's latest comments without the erased users' and those on erased responses."""
        self.count("recent_comments", self._filter_list(self.pk.recent_comments, self._comment_erased))

    def _comment_erased(self, raw: bytes) -> bool:
        comment = json.loads(raw)
        scope = self.scope
        return (
            scope.user_erased(comment.get("user"))
            or scope.old(comment.get("ts"))
            or comment.get("response_id") in scope.responses
        )

    def erase_pending(self) -> None:
        """Waiting feedback of the erased users, or about erased responses."""
        prefix = self.pk.pending("")
        for key in self.conn.scan_iter(match=self.pk.pending("*"), count=1000):
            if key.decode()[len(prefix) :] in self.scope.responses:  # all of it waits for an erased response
                self.count("pending", int(self.conn.llen(key)))
                self.conn.delete(key)
            else:
                self.count("pending", self._filter_list(key, self._event_erased))

    def _event_erased(self, raw: bytes) -> bool:
        ev = json.loads(raw)
        named = {ev.get("rid"), ev.get("other")} | {r for level in ev.get("ranks") or () for r in level}
        scope = self.scope
        return scope.user_erased(ev.get("user")) or scope.old(ev.get("ts")) or bool(named & scope.responses)

    def erase_loose_responses(self) -> None:
        """Erased responses no group set names any more (an unlabelled one outlives its group's
        set by up to its own lifetime), with whatever feedback keys they have."""
        rids = sorted(self.scope.responses)
        pk = self.pk
        for i in range(0, len(rids), 500):
            chunk = rids[i : i + 500]
            names = [k for rid in chunk for k in (pk.response(rid), pk.ratings(rid), pk.comments(rid))]
            # One transaction: a cluster client's pipeline takes a multi-key DEL only in one (the
            # keys are all of the project's slot).
            pipe = self.conn.pipeline(transaction=True)
            pipe.exists(*(pk.response(rid) for rid in chunk))
            pipe.delete(*names)
            self.count("responses", int(pipe.execute()[0]))

    def erase_old_user_fields(self) -> None:
        """Retention: per-user fields of the stats hours (and days) before the cut leave them,
        and the all-time per-user totals lose what those buckets held (a total that reaches zero
        goes: it would carry nothing but the user's id)."""
        pk = self.pk
        marker = SEPARATOR + DIMENSIONS["user"]
        forget = self.conn.register_script(_FORGET_USER_COUNTS)
        old = sorted(b.decode() for b in self.conn.smembers(pk.stats_hours) if self.scope.old_hour(b.decode()))
        for bucket in old:
            key = group_snapshot.stats_key(pk, bucket)
            found = dict(self.conn.hscan_iter(key, match="*" + _glob_escape(marker) + "*", count=2000))
            if not found:
                continue
            names = list(found)
            for start in range(0, len(names), _FIELDS_PER_CALL):
                forget(keys=[pk.stats_total, key], args=names[start : start + _FIELDS_PER_CALL])
            self.count("stats_fields", len(found))

    def drop_caches(self) -> None:
        """Caches built from the erased data: the leaderboard's fitted ranges, the quality
        reports and suspect voters."""
        self.conn.delete(self.pk.leaderboard_cache)
        quality_cache.drop(self.conn, self.project)
