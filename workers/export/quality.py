"""An export's quality section (docs/quality.md): the quality figures over exactly the pairs the
run writes, what its filters left out, and when the suspect voters were computed.

The run hands every chunk of pairs to ``QualitySection.pairs`` before writing it. The chunk's
groups are read as the digests pairing keeps of them (workers/pairing/digest.py), with one
command, and decoded together into columns (or made from their compacted snapshots); each pair
is found in its group's digest by its key, all at once. The filters decide by those facts (a
group where a suspect voter gave feedback is read whole and paired again without them), and only
the pairs they keep come back; every pair written is tallied, and each group once: the groups
counted are known by their 64-bit hashes (``SeenKeys``, 8 bytes a group). A snapshot without
filters reads its pairs' facts off their records (parsed for their ids anyway), so it reads only
the digests of groups not counted yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import redis

from likeloop_server import keys
from likeloop_server.export_filters import ExportFilters
from likeloop_server.queues import schedule_pairing
from likeloop_server.settings import Settings
from workers.pairing.digest import SOURCE_CODES, DigestBatch, batch_of, decode_batch, encode, keys64
from workers.pairing.population import GroupView
from workers.quality.figures import Tally, view_digest
from workers.quality.gather import hand_back, read_views, row_of
from workers.quality.job import current_suspects

from .logscan import Added

# Pairs' facts read off their records by the caller: their sources (places in digest.SOURCES),
# and their chosen and rejected answers' lengths, a list each.
Facts = tuple[list[int], list[int], list[int]]
# Places of a pair's facts in DigestBatch.pair_facts.
_SOURCE, _CHOSEN, _REJECTED, _VOTERS, _MARGIN = range(5)
_SPREAD = np.uint64(0x9E3779B97F4A7C15)  # a group's row, spread over 64 bits, told apart from another's


class SeenKeys:
    """A set of 64-bit keys: 8 bytes a key in a sorted array, the newest in a Python set until
    MERGE_AT of them are merged in."""

    MERGE_AT = 1 << 17

    def __init__(self) -> None:
        self.old = np.empty(0, np.uint64)
        self.new: set[int] = set()

    def __len__(self) -> int:
        return len(self.old) + len(self.new)

    def contains(self, found: np.ndarray) -> np.ndarray:
        """Which of ``found`` are here."""
        new = self.new
        return _contains(self.old, found) | np.fromiter(map(new.__contains__, found.tolist()), bool, len(found))

    def add(self, found: np.ndarray) -> np.ndarray:
        """Add ``found`` (distinct keys); returns which were not here before."""
        fresh = ~self.contains(found)
        self.insert(found[fresh])
        return fresh

    def insert(self, found: np.ndarray) -> None:
        """Add ``found``: distinct keys not here yet."""
        new = self.new
        new.update(found.tolist())
        if len(new) >= self.MERGE_AT:  # into the sorted array, one new array the size of both
            added = np.sort(np.fromiter(new, np.uint64, len(new)))
            self.old, self.new = np.insert(self.old, np.searchsorted(self.old, added), added), set()


def _run_keys(group_ids: list[str]) -> np.ndarray:
    """Groups' keys for the run's own use (Python's string hash: the same within a process,
    cached in the strings, and not stored anywhere)."""
    return np.fromiter(map(hash, group_ids), np.int64, len(group_ids)).view(np.uint64)


def _contains(sorted_keys: np.ndarray, found: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(found), bool)
    at = np.minimum(np.searchsorted(sorted_keys, found), len(sorted_keys) - 1)
    return sorted_keys[at] == found


def _located(batch: DigestBatch, rows: np.ndarray, pair_keys: np.ndarray) -> np.ndarray:
    """For each pair (its group's row in ``batch``, -1 for none, and its key): its place in the
    batch's pair columns, or -1 where its group's digest does not know it."""
    if not len(batch.pair_keys):
        return np.full(len(pair_keys), -1, np.int64)
    table = batch.pair_keys ^ (batch.pair_group.astype(np.uint64) * _SPREAD)
    wanted = pair_keys ^ (rows.astype(np.uint64) * _SPREAD)
    order = np.argsort(table)
    in_order = table[order]
    at = np.minimum(np.searchsorted(in_order, wanted), len(table) - 1)
    found = (in_order[at] == wanted) & (rows >= 0) & (batch.pair_group[order[at]] == rows)
    return np.where(found, order[at], -1)


class QualitySection:
    """The quality section of one run (``enabled``: with its figures; the filters apply either
    way)."""

    def __init__(
        self,
        conn: redis.Redis,
        s3: Any,
        settings: Settings,
        project: str,
        strategy: str,
        filters: ExportFilters,
        enabled: bool,
    ) -> None:
        self.conn, self.pk, self.filters, self.enabled = conn, keys.ProjectKeys(project), filters, enabled
        self.max_pairs, self.strategy = settings.max_pairs_per_group, strategy
        self.suspects: frozenset[str] = frozenset()
        self.suspects_at: float | None = None
        if enabled or filters.exclude_suspect_voters:
            found, self.suspects_at = current_suspects(conn, s3, settings, project)
            self.suspects = frozenset(found)
        self.tally = Tally(self.suspects, self.max_pairs, strategy)
        self.counted = SeenKeys()  # the groups the figures counted
        self.left_out: Counter[str] = Counter()
        self.left_out_pairs = 0
        self.digests_queued = 0  # groups handed back to the pairing job for want of a current digest

    @property
    def wants_views(self) -> bool:
        """Whether the run should hand over the groups it has (its figures or filters read them)."""
        return self.enabled or self.filters.active

    @property
    def wants_facts(self) -> bool:
        """Whether pairs' facts read off their records spare reading their groups' digests for
        them (the figures without filters: then only the groups not counted yet are read)."""
        return self.enabled and not self.filters.active

    def pairs(
        self,
        items: list[Added],
        facts: Facts | None = None,
        digests: Mapping[str, bytes | None] | None = None,
        view: GroupView | None = None,
    ) -> list[Added]:
        """The chunk's pairs the filters keep, tallied; ``facts``: each pair's source (its place
        in digest.SOURCES) and answer lengths, when the caller read them off its record;
        ``digests``: stored digests the caller read with the chunk (with ``facts``: those of the
        groups ``uncounted`` named; without: those of all the chunk's groups); ``view``: the
        group of them all, when the caller has it (a compacted group's snapshot). Groups in Redis
        are read as the digests pairing keeps of them, and whole only where a digest is missing
        or a suspect voter gave feedback in the group. A group counts in the figures once one of
        its pairs is kept."""
        if not items or not self.wants_views:
            return items
        if facts is not None and view is None and self.wants_facts:
            self._tally_known(items, facts, digests)
            return items
        group_ids = [gid for _, gid, _ in items]
        if view is not None:
            batch, views = self._made([view]), {view.group_id: view}
        else:
            chunk = list(dict.fromkeys(group_ids))
            try:  # the caller read them all with the chunk, as a rule
                stored = None if digests is None else [digests[gid] for gid in chunk]
            except KeyError:
                stored = None
            batch, views = self._read(chunk, stored)
        row_of_group = {gid: row for row, gid in enumerate(batch.group_ids)}
        rows = np.fromiter((row_of_group.get(gid, -1) for gid in group_ids), np.int64, len(items))
        pair_keys = keys64([pid for pid, _, _ in items])
        at = _located(batch, rows, pair_keys)
        kept = self._kept(batch, group_ids, pair_keys, at, views) if self.filters.active else None
        if self.enabled:
            self._tally(batch, items, group_ids, rows, pair_keys, at, kept, views)
        if kept is None or kept.all():
            return items
        return [x for x, keep in zip(items, kept.tolist(), strict=True) if keep]

    def _wants_whole(self) -> bool:
        """Whether a group where a suspect gave feedback is read whole (paired again without them)."""
        return bool(self.suspects) and (self.enabled or self.filters.exclude_suspect_voters)

    def _read(
        self, group_ids: list[str], stored: list[bytes | None] | None = None
    ) -> tuple[DigestBatch, dict[str, GroupView]]:
        """The groups' digests (``stored``, or read with one command), and the groups read whole
        that need to be."""
        if stored is None:
            stored = self.conn.hmget(self.pk.quality_digests, group_ids)
        batch, missing = decode_batch(group_ids, stored)
        views = read_views(self.conn, self.pk, missing) if missing else {}
        self._hand_back([gid for gid, v in views.items() if v.responses])
        if views:  # digests made of the groups read whole, decoded with the others (seldom)
            made = {gid: encode(view_digest(v, self.max_pairs, self.strategy)) for gid, v in views.items()}
            batch, _ = decode_batch(group_ids, [made.get(gid, raw) for gid, raw in zip(group_ids, stored, strict=True)])
        if self._wants_whole():
            self.tally.learn(batch)
            touched = [batch.group_ids[row] for row in self.tally.touched(batch)]
            unread = [gid for gid in touched if gid not in views and gid not in self.tally.kept_without_suspects]
            if unread:  # digests made before these suspects were known
                views.update(read_views(self.conn, self.pk, unread))
                self._hand_back(unread)
        return batch, views

    def _made(self, views: Sequence[GroupView]) -> DigestBatch:
        return batch_of([view_digest(v, self.max_pairs, self.strategy) for v in views])

    def _hand_back(self, group_ids: list[str]) -> None:
        """Groups read whole for want of a current digest go back to the pairing job
        (gather.hand_back), scheduled when the run ends (``finish``)."""
        hand_back(self.conn, self.pk, group_ids)
        self.digests_queued += len(group_ids)

    def _kept(
        self,
        batch: DigestBatch,
        group_ids: list[str],
        pair_keys: np.ndarray,
        at: np.ndarray,
        views: Mapping[str, GroupView],
    ) -> np.ndarray:
        """Which pairs the filters keep; counts why the others are left out. A pair its group's
        feedback no longer makes (the group waits for pairing) is left out as ``not_current``."""
        filters, facts = self.filters, batch.pair_facts
        current_ = at >= 0
        failed: dict[str, np.ndarray] = {"not_current": ~current_}
        found = facts[np.where(current_, at, 0)] if len(facts) else np.zeros((len(at), facts.shape[1]), np.int64)
        if filters.exclude_suspect_voters and self.suspects:
            touched = {batch.group_ids[row] for row in self.tally.touched(batch)}
            failed["exclude_suspect_voters"] = current_ & np.fromiter(
                (
                    gid in touched and key not in self.tally.without_suspects(gid, views.get(gid))
                    for gid, key in zip(group_ids, pair_keys.tolist(), strict=True)
                ),
                bool,
                len(group_ids),
            )
        if filters.min_voters:
            failed["min_voters"] = current_ & (found[:, _VOTERS] < filters.min_voters)
        if filters.min_margin:
            failed["min_margin"] = current_ & (found[:, _MARGIN] < filters.min_margin)
        out = np.zeros(len(at), bool)
        for name, mask in failed.items():
            if n := int(np.count_nonzero(mask)):
                self.left_out[name] += n
            out |= mask
        self.left_out_pairs += int(np.count_nonzero(out))
        return ~out

    def _tally(
        self,
        batch: DigestBatch,
        items: list[Added],
        group_ids: list[str],
        rows: np.ndarray,
        pair_keys: np.ndarray,
        at: np.ndarray,
        kept: np.ndarray | None,
        views: Mapping[str, GroupView],
    ) -> None:
        """Written pairs into the figures (by their digests' facts), and their groups once."""
        written = np.ones(len(items), bool) if kept is None else kept
        groups = np.unique(rows[written & (rows >= 0)])
        fresh = self.counted.add(_run_keys([batch.group_ids[row] for row in groups.tolist()]))
        self.tally.batch(batch, groups[fresh], views)
        known = written & (at >= 0)
        facts = batch.pair_facts[at[known]]
        if known.all():
            ids = group_ids
        else:
            ids = [gid for gid, k in zip(group_ids, known.tolist(), strict=True) if k]
        self.tally.pairs(ids, pair_keys[known], facts[:, _SOURCE], facts[:, _CHOSEN], facts[:, _REJECTED])
        unknown = np.nonzero(written & (at < 0))[0]
        if len(unknown):  # pairs their group's digest does not know (made by older rules): records say
            found = [row_of(*items[i]) for i in unknown.tolist()]
            self.tally.pairs(
                [r.group_id for r, _ in found],
                pair_keys[unknown],
                np.array([SOURCE_CODES[r.source] for r, _ in found], np.int64),
                np.array([r.chosen_chars for r, _ in found], np.int64),
                np.array([r.rejected_chars for r, _ in found], np.int64),
            )

    def uncounted(self, group_ids: list[str]) -> list[str]:
        """Of groups (each once), those the figures have not counted yet."""
        counted = self.counted.contains(_run_keys(group_ids))
        return [gid for gid, done in zip(group_ids, counted.tolist(), strict=True) if not done]

    def _tally_known(self, items: list[Added], facts: Facts, digests: Mapping[str, bytes | None] | None) -> None:
        """Pairs whose facts the caller read, all written: only groups not counted yet are read
        (``digests``: those the caller read with the chunk)."""
        group_ids = [gid for _, gid, _ in items]
        chunk = list(dict.fromkeys(group_ids))
        if digests is not None:  # the caller read those ``uncounted`` named; the others are counted
            new = [gid for gid in chunk if gid in digests]
            self.counted.insert(_run_keys(new))
        else:
            fresh = self.counted.add(_run_keys(chunk))
            new = [gid for gid, f in zip(chunk, fresh.tolist(), strict=True) if f]
        if new:
            batch, views = self._read(new, None if digests is None else [digests[gid] for gid in new])
            self.tally.batch(batch, None, views)
        sources, chosen, rejected = (np.array(column, np.int64) for column in facts)
        self.tally.pairs(group_ids, [pid for pid, _, _ in items], sources, chosen, rejected)

    def finish(self) -> dict[str, Any]:
        """The section: the figures, the filters and what they left out."""
        section: dict[str, Any] = {
            "filters": self.filters.as_dict(),
            "left_out": {"pairs": self.left_out_pairs, "by_filter": dict(sorted(self.left_out.items()))},
            "suspect_voters_computed_at": None if self.suspects_at is None else round(self.suspects_at, 3),
        }
        if self.enabled:
            self.counted = SeenKeys()  # let go before the figures' own arrays are made
            section["figures"] = self.tally.result()
        if self.digests_queued:
            schedule_pairing(self.conn, self.pk.project)
        return section
