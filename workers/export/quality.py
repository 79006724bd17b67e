"""An export's quality section (docs/quality.md): the quality figures over exactly the pairs the
run writes, what its filters left out, and when the suspect voters were computed.

The run hands every chunk of pairs to ``QualitySection.pairs`` before writing it: with filters,
the groups of the chunk are read (or taken from their compacted snapshots) and paired again as
the filters say, and only the pairs they keep come back; every pair written is tallied. Groups
are tallied once each: when a filter read them, or at the end, read from Redis a few hundred at a
time (``finish``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from likeloop_server import keys
from likeloop_server.export_filters import ExportFilters
from likeloop_server.settings import Settings
from workers.pairing.rules import Pair
from workers.quality.figures import Tally
from workers.quality.gather import READ_GROUPS, read_views, row_of
from workers.quality.job import current_suspects
from workers.quality.population import GroupView

from .logscan import Added


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
        self.tallied: set[str] = set()
        # group -> (the ids of the pairs its feedback makes now, those a filter leaves out -> which)
        self.verdicts: dict[str, tuple[frozenset[str], dict[str, list[str]]]] = {}
        self.left_out: Counter[str] = Counter()
        self.left_out_pairs = 0

    @property
    def wants_views(self) -> bool:
        """Whether the run should hand over the groups it has (its figures or filters read them)."""
        return self.enabled or self.filters.active

    def pairs(self, items: list[Added], view: GroupView | None = None) -> list[Added]:
        """The chunk's pairs the filters keep, tallied; ``view``: the group of them all, when the
        caller has it (a compacted group's snapshot)."""
        if not items:
            return items
        if view is not None:
            self._group(view)
        if self.filters.active:
            todo = sorted({gid for _, gid, _ in items if gid not in self.verdicts})
            for start in range(0, len(todo), READ_GROUPS):
                for found in read_views(self.conn, self.pk, todo[start : start + READ_GROUPS]).values():
                    self._group(found)
            items = [x for x in items if self._kept(x[0], x[1])]
        if self.enabled:
            self.tally.rows(row_of(pid, gid, raw)[0] for pid, gid, raw in items)
        return items

    def _group(self, view: GroupView) -> None:
        """Tally a group once, and decide which of its pairs the filters keep."""
        if view.group_id in self.tallied:
            return
        self.tallied.add(view.group_id)
        if self.enabled:
            self.tally.group(view)
        if self.filters.active:
            self.verdicts[view.group_id] = self._judge(view)

    def _judge(self, view: GroupView) -> tuple[frozenset[str], dict[str, list[str]]]:
        """The pairs the group's feedback makes now, and those a filter leaves out (with which)."""
        made = view.pairs(self.max_pairs, self.strategy)
        without: set[str] | None = None
        if self.filters.exclude_suspect_voters and view.people & self.suspects:
            without = {p.id for p in view.pairs(self.max_pairs, self.strategy, without=self.suspects)}
        failing = {p.id: failed for p in made if (failed := self._failed(view, p, without))}
        return frozenset(p.id for p in made), failing

    def _kept(self, pair_id: str, group_id: str) -> bool:
        """Whether the filters keep a stored pair; counts why not. A pair its group's feedback no
        longer makes (the group waits for pairing) is left out as ``not_current``."""
        made, failing = self.verdicts.get(group_id, (frozenset(), {}))
        failed = failing.get(pair_id, []) if pair_id in made else ["not_current"]
        if failed:
            self.left_out.update(failed)
            self.left_out_pairs += 1
        return not failed

    def _failed(self, view: GroupView, pair: Pair, without: set[str] | None) -> list[str]:
        f = self.filters
        failed = []
        if without is not None and pair.id not in without:
            failed.append("exclude_suspect_voters")
        if f.min_voters and len(view.voters_of(pair)) < f.min_voters:
            failed.append("min_voters")
        if f.min_margin and pair.margin < f.min_margin:
            failed.append("min_margin")
        return failed

    def finish(self) -> dict[str, Any]:
        """The section: the figures (the groups not tallied yet are read now), the filters and
        what they left out."""
        section: dict[str, Any] = {
            "filters": self.filters.as_dict(),
            "left_out": {"pairs": self.left_out_pairs, "by_filter": dict(sorted(self.left_out.items()))},
            "suspect_voters_computed_at": None if self.suspects_at is None else round(self.suspects_at, 3),
        }
        if self.enabled:
            todo = sorted(set(self.tally.pair_groups) - self.tallied)
            for start in range(0, len(todo), READ_GROUPS):
                for view in read_views(self.conn, self.pk, todo[start : start + READ_GROUPS]).values():
                    self._group(view)
            section["figures"] = self.tally.result()
        return section
