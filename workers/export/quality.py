"""An export's quality section (docs/quality.md): the quality figures over exactly the pairs the
run writes, what its filters left out, and when the suspect voters were computed.

The run hands every chunk of pairs to ``QualitySection.pairs`` before writing it: the groups of
the chunk not seen yet are read as the digests pairing keeps of them (workers/pairing/digest.py),
a few hundred with one command, or taken from their compacted snapshots; the filters decide by
the digest's facts of each pair (a group where a suspect voter gave feedback is read whole and
paired again without them), and only the pairs they keep come back; every pair written is
tallied, and each group once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import redis

from likeloop_server import keys
from likeloop_server.export_filters import ExportFilters
from likeloop_server.queues import schedule_pairing
from likeloop_server.settings import Settings
from workers.pairing.digest import GroupDigest, PairFacts
from workers.pairing.population import GroupView
from workers.quality.figures import Tally, view_digest
from workers.quality.gather import READ_GROUPS, decode_digests, read_views, row_of
from workers.quality.job import current_suspects

from .logscan import Added


def _facts(pair_id: str, group_id: str, raw: bytes) -> PairFacts:
    """A pair's facts as its stored record gives them (its voters and margin unknown: 0)."""
    row, at = row_of(pair_id, group_id, raw)
    return PairFacts(row.source, row.chosen_chars, row.rejected_chars, 0, 0, at)


class Held:
    """A group a run holds: its pairs' facts, how many of them have not come yet, its digest
    until the figures count it (with the group read whole, if it was, and whether the digest was
    made from it), and which of its pairs the filters keep (the ids of the pairs its feedback
    makes, and those a filter leaves out -> which)."""

    __slots__ = ("facts", "waiting", "uncounted", "verdict")

    def __init__(
        self,
        facts: Mapping[str, PairFacts],
        waiting: int,
        uncounted: tuple[GroupDigest, GroupView | None, bool] | None,
        verdict: tuple[frozenset[str], dict[str, list[str]]] | None,
    ) -> None:
        self.facts, self.waiting, self.uncounted, self.verdict = facts, waiting, uncounted, verdict


# Groups whose pair facts a run holds at once: a group's are let go once all its pairs have come
# (its digest says how many); beyond this many, the longest held go too, and a pair of one let go
# reads its group's digest again (an incremental run brings some of a group's pairs, not all).
FACTS_KEPT = 50_000


class QualitySection:
    """The quality section of one run (``enabled``: with its figures; the filters apply either
    way). ``counted_key``: a scratch set in Redis of the groups the figures counted (each once,
    without the worker holding every group's id); ``left_out_sources``: sources whose pairs the
    run never brings (so a group's pairs of them are not waited for)."""

    def __init__(
        self,
        conn: redis.Redis,
        s3: Any,
        settings: Settings,
        project: str,
        strategy: str,
        filters: ExportFilters,
        enabled: bool,
        counted_key: str,
        left_out_sources: frozenset[str] = frozenset(),
    ) -> None:
        self.conn, self.pk, self.filters, self.enabled = conn, keys.ProjectKeys(project), filters, enabled
        self.max_pairs, self.strategy = settings.max_pairs_per_group, strategy
        self.counted_key = counted_key
        self.left_out_sources = left_out_sources
        self.suspects: frozenset[str] = frozenset()
        self.suspects_at: float | None = None
        if enabled or filters.exclude_suspect_voters:
            found, self.suspects_at = current_suspects(conn, s3, settings, project)
            self.suspects = frozenset(found)
        self.tally = Tally(self.suspects, self.max_pairs, strategy)
        self.held: dict[str, Held] = {}  # the groups held, oldest first
        self.left_out: Counter[str] = Counter()
        self.left_out_pairs = 0
        self.digests_queued = 0  # groups without a digest handed to the pairing job
        self.newly_counted: set[str] = set()  # groups counted, not in ``counted_key`` yet

    @property
    def wants_views(self) -> bool:
        """Whether the run should hand over the groups it has (its figures or filters read them)."""
        return self.enabled or self.filters.active

    def pairs(self, items: list[Added], view: GroupView | None = None) -> list[Added]:
        """The chunk's pairs the filters keep, tallied; ``view``: the group of them all, when the
        caller has it (a compacted group's snapshot). Groups in Redis are read as the digests
        pairing keeps of them, and whole only where a digest is missing or a suspect voter gave
        feedback in the group. A group counts in the figures once one of its pairs is kept."""
        if not items or not self.wants_views:
            return items
        if view is not None:
            self._held([view.group_id], {view.group_id: (None, view)})
        else:
            self._read(sorted({gid for _, gid, _ in items if gid not in self.held}))
        if self.filters.active:
            items_kept = [x for x in items if self._kept(x[0], x[1])]
        else:
            items_kept = items
        if self.enabled and items_kept:
            self._tally(items_kept)
        self._arrived(items)
        return items_kept

    def _read(self, group_ids: list[str]) -> None:
        for start in range(0, len(group_ids), READ_GROUPS):
            chunk = group_ids[start : start + READ_GROUPS]
            digests, counted = self._digests(chunk)
            whole = [gid for gid in chunk if gid not in digests or digests[gid].touches(self.suspects)]
            views = read_views(self.conn, self.pk, whole) if whole else {}
            self._queue_digests([gid for gid, v in views.items() if gid not in digests and v.responses])
            self._held(chunk, {gid: (digests.get(gid), views.get(gid)) for gid in chunk}, counted)

    def _digests(self, group_ids: list[str]) -> tuple[dict[str, GroupDigest], set[str]]:
        """The groups' digests, and which of them the figures counted already, in one round trip
        that also records the groups counted since the last one."""
        pipe = self.conn.pipeline(transaction=False)
        if self.newly_counted:
            pipe.sadd(self.counted_key, *self.newly_counted)
        pipe.smismember(self.counted_key, group_ids)
        pipe.hmget(self.pk.quality_digests, group_ids)
        *_, flags, raw = pipe.execute()
        self.newly_counted = set()
        return decode_digests(group_ids, raw), {gid for gid, flag in zip(group_ids, flags, strict=True) if flag}

    def _queue_digests(self, group_ids: list[str]) -> None:
        """Groups read whole for want of a digest (paired before digests were kept) go back to
        the pairing job, which pairs them again as they are and keeps their digests: the next run
        reads digests. The job is scheduled when the run ends (``finish``)."""
        if group_ids:
            self.conn.zadd(self.pk.dirty, dict.fromkeys(group_ids, time.time()), nx=True)
            self.digests_queued += len(group_ids)

    def _held(
        self,
        group_ids: list[str],
        found: dict[str, tuple[GroupDigest | None, GroupView | None]],
        counted: set[str] | None = None,
    ) -> None:
        """Hold the groups' digests (made from the group itself where one has none) until their
        pairs have come, and decide which of their pairs the filters keep. A group the figures
        counted already (``counted``; its facts let go before all its pairs came) is held, not
        counted again."""
        if counted is None:
            counted = {gid for gid in group_ids if self.enabled and self._counted(gid)}
        for gid in group_ids:
            stored, view = found.get(gid, (None, None))
            if gid in self.held or (stored is None and view is None):
                continue
            made = stored is None
            if stored is None:
                assert view is not None
                stored = view_digest(view, self.max_pairs, self.strategy)
            self.held[gid] = Held(
                stored.pairs,
                sum(1 for f in stored.pairs.values() if f.source not in self.left_out_sources),
                (stored, view, made) if self.enabled and gid not in counted else None,
                self._judge(stored, view) if self.filters.active else None,
            )
        while len(self.held) > FACTS_KEPT:
            del self.held[next(iter(self.held))]

    def _arrived(self, items: list[Added]) -> None:
        """Count the chunk's pairs as come; let go of the groups all of whose pairs have."""
        held = self.held
        for pid, gid, _ in items:
            group = held.get(gid)
            if group is not None and pid in group.facts:
                group.waiting -= 1
                if group.waiting <= 0:
                    del held[gid]

    def _counted(self, gid: str) -> bool:
        return gid in self.newly_counted or bool(self.conn.sismember(self.counted_key, gid))

    def _tally(self, items: list[Added]) -> None:
        """Written pairs into the figures (by their digests' facts), and their groups once."""
        held, newly = self.held, []
        found: list[PairFacts] = []
        for pid, gid, raw in items:
            group = held.get(gid)
            facts = None if group is None else group.facts.get(pid)
            # a pair its group's digest does not know (made by older rules): its record says
            found.append(facts or _facts(pid, gid, raw))
            if group is not None and group.uncounted is not None:
                digest, view, made = group.uncounted
                group.uncounted = None
                if made and view is not None:
                    self.tally.group(view, digest)
                else:
                    self.tally.digest(digest, view)
                newly.append(gid)
        pair_ids, group_ids, _ = zip(*items, strict=True)
        self.newly_counted.update(newly)
        if len(self.newly_counted) >= READ_GROUPS:  # groups from snapshots, read one at a time
            self.conn.sadd(self.counted_key, *self.newly_counted)
            self.newly_counted = set()
        sources, chosen, rejected, *_ = zip(*found, strict=True)
        self.tally.columns(pair_ids, group_ids, sources, chosen, rejected)

    def _judge(self, found: GroupDigest, view: GroupView | None) -> tuple[frozenset[str], dict[str, list[str]]]:
        """The pairs the group's feedback makes, and those a filter leaves out (with which)."""
        without: set[str] | None = None
        if self.filters.exclude_suspect_voters and found.touches(self.suspects):
            assert view is not None
            without = {p.id for p in view.pairs(self.max_pairs, self.strategy, without=self.suspects)}
        failing = {pid: failed for pid, f in found.pairs.items() if (failed := self._failed(pid, f, without))}
        return frozenset(found.pairs), failing

    def _kept(self, pair_id: str, group_id: str) -> bool:
        """Whether the filters keep a stored pair; counts why not. A pair its group's feedback no
        longer makes (the group waits for pairing) is left out as ``not_current``."""
        group = self.held.get(group_id)
        made, failing = (frozenset(), {}) if group is None or group.verdict is None else group.verdict
        failed = failing.get(pair_id, []) if pair_id in made else ["not_current"]
        if failed:
            self.left_out.update(failed)
            self.left_out_pairs += 1
        return not failed

    def _failed(self, pair_id: str, f: PairFacts, without: set[str] | None) -> list[str]:
        filters = self.filters
        failed = []
        if without is not None and pair_id not in without:
            failed.append("exclude_suspect_voters")
        if filters.min_voters and f.voters < filters.min_voters:
            failed.append("min_voters")
        if filters.min_margin and f.margin < filters.min_margin:
            failed.append("min_margin")
        return failed

    def finish(self) -> dict[str, Any]:
        """The section: the figures, the filters and what they left out."""
        section: dict[str, Any] = {
            "filters": self.filters.as_dict(),
            "left_out": {"pairs": self.left_out_pairs, "by_filter": dict(sorted(self.left_out.items()))},
            "suspect_voters_computed_at": None if self.suspects_at is None else round(self.suspects_at, 3),
        }
        if self.enabled:
            section["figures"] = self.tally.result()
            self.conn.delete(self.counted_key)
        if self.digests_queued:
            schedule_pairing(self.conn, self.pk.project)
        return section
