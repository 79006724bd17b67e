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

from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

import redis

from likeloop_server import keys
from likeloop_server.export_filters import ExportFilters
from likeloop_server.settings import Settings
from workers.pairing.digest import GroupDigest, PairFacts
from workers.pairing.population import GroupView
from workers.quality.figures import Tally, view_digest
from workers.quality.gather import READ_GROUPS, read_digests, read_views, row_of
from workers.quality.job import current_suspects

from .logscan import Added


def _facts(pair_id: str, group_id: str, raw: bytes) -> PairFacts:
    """A pair's facts as its stored record gives them (its voters and margin unknown: 0)."""
    row, at = row_of(pair_id, group_id, raw)
    return PairFacts(row.source, row.chosen_chars, row.rejected_chars, 0, 0, at)


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
        enabled: bool = True,
    ) -> None:
        self.conn, self.pk, self.filters, self.enabled = conn, keys.ProjectKeys(project), filters, enabled
        self.max_pairs, self.strategy = settings.max_pairs_per_group, strategy
        self.suspects: frozenset[str] = frozenset()
        self.suspects_at: float | None = None
        if enabled or filters.exclude_suspect_voters:
            found, self.suspects_at = current_suspects(conn, s3, settings, project)
            self.suspects = frozenset(found)
        self.tally = Tally(self.suspects, self.max_pairs, strategy)
        self.facts: dict[str, Mapping[str, PairFacts]] = {}  # group read -> its pairs' facts
        # groups read whose pairs are not tallied yet: (digest, the group read whole if it was,
        # whether the digest was made from it)
        self.untallied: dict[str, tuple[GroupDigest, GroupView | None, bool]] = {}
        # group -> (the ids of the pairs its feedback makes, those a filter leaves out -> which)
        self.verdicts: dict[str, tuple[frozenset[str], dict[str, list[str]]]] = {}
        self.left_out: Counter[str] = Counter()
        self.left_out_pairs = 0

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
            self._group(view.group_id, None, view)
        else:
            self._read(sorted({gid for _, gid, _ in items if gid not in self.facts}))
        if self.filters.active:
            items = [x for x in items if self._kept(x[0], x[1])]
        if self.enabled and items:
            self._tally(items)
        return items

    def _read(self, group_ids: list[str]) -> None:
        for start in range(0, len(group_ids), READ_GROUPS):
            chunk = group_ids[start : start + READ_GROUPS]
            digests = read_digests(self.conn, self.pk, chunk)
            whole = [gid for gid in chunk if gid not in digests or digests[gid].touches(self.suspects)]
            views = read_views(self.conn, self.pk, whole) if whole else {}
            for gid in chunk:
                if gid in digests or gid in views:
                    self._group(gid, digests.get(gid), views.get(gid))

    def _group(self, gid: str, found: GroupDigest | None, view: GroupView | None) -> None:
        """Keep a group's digest (made from the group itself when it has none) until one of its
        pairs is tallied, and decide which of its pairs the filters keep."""
        if gid in self.facts:
            return
        made = found is None
        if found is None:
            assert view is not None
            found = view_digest(view, self.max_pairs, self.strategy)
        self.facts[gid] = found.pairs
        self.untallied[gid] = (found, view, made)
        if self.filters.active:
            self.verdicts[gid] = self._judge(found, view)

    def _tally(self, items: list[Added]) -> None:
        """Written pairs into the figures (by their digests' facts), and their groups once."""
        none: Mapping[str, PairFacts] = {}
        get = self.facts.get
        found = [get(gid, none).get(pid) for pid, gid, _ in items]
        if None in found:  # a pair its group's digest does not know (made by older rules): its record says
            found = [f or _facts(pid, gid, raw) for f, (pid, gid, raw) in zip(found, items, strict=True)]
        pair_ids, group_ids, _ = zip(*items, strict=True)
        for gid in self.untallied.keys() & set(group_ids):
            digest, view, made = self.untallied.pop(gid)
            if made and view is not None:
                self.tally.group(view, digest)
            else:
                self.tally.digest(digest, view)
        sources, chosen, rejected, *_ = zip(*cast(list[PairFacts], found), strict=True)
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
        made, failing = self.verdicts.get(group_id, (frozenset(), {}))
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
        return section
