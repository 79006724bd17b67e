"""Pipeline state read from Redis when Prometheus scrapes: queue depths, failed jobs, pairs,
groups waiting for pairing, the last exports, the event archive's backlog. It covers the
workers, which serve no metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, Metric

from likeloop_server import exports, keys
from likeloop_server.apikeys import list_projects
from likeloop_server.counters import PAIRS_EXPORTED
from likeloop_server.queues import queue_states
from likeloop_server.stats import JUDGE_COUNTERS, REFERENCE_COUNTERS


class PipelineCollector:
    """Pipeline state read from Redis when Prometheus scrapes."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("likeloop_redis_up", "Whether Redis answered this scrape")
        try:
            families = list(self._pipeline())
        except redis.RedisError:
            up.add_metric([], 0)
            yield up  # the service's own metrics still go out when Redis is down
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _pipeline(self) -> list[Metric]:
        return self._queues() + _ProjectFamilies().collect(self.conn)

    def _queues(self) -> list[Metric]:
        depth = GaugeMetricFamily("likeloop_queue_depth", "Jobs waiting in each queue", labels=["queue"])
        failed = GaugeMetricFamily("likeloop_jobs_failed", "Jobs in each queue's failed registry", labels=["queue"])
        for state in queue_states(self.conn):
            depth.add_metric([state["name"]], state["queued"])
            failed.add_metric([state["name"]], state["failed"])
        return [depth, failed]


class _ProjectFamilies:
    """The per-project gauges of one scrape."""

    def __init__(self) -> None:
        self.pairs = GaugeMetricFamily("likeloop_pairs", "Current preference pairs", labels=["project"])
        self.exported = GaugeMetricFamily(
            "likeloop_pairs_exported", "Pairs in the exported dataset", labels=["project"]
        )
        self.dirty = GaugeMetricFamily("likeloop_groups_dirty", "Prompt groups waiting for pairing", labels=["project"])
        self.duration = GaugeMetricFamily(
            "likeloop_last_export_duration_seconds",
            "Duration of the last finished export",
            labels=["project", "status"],
        )
        self.size = GaugeMetricFamily(
            "likeloop_last_export_pairs", "Pairs written by the last finished export", labels=["project"]
        )
        self.judge = GaugeMetricFamily(
            "likeloop_judge", "The LLM judge's totals: calls, tokens, verdicts, unparseable, errors, ms",
            labels=["project", "counter"],
        )  # fmt: skip
        self.reference = GaugeMetricFamily(
            "likeloop_reference", "The reference model's totals: calls, tokens, answers, errors, ms",
            labels=["project", "counter"],
        )  # fmt: skip
        self.archive_pending = GaugeMetricFamily(
            "likeloop_archive_pending_batches", "Stored batches not yet in the S3 event archive", labels=["project"]
        )
        self.archive_lag = GaugeMetricFamily(
            "likeloop_archive_lag_seconds", "Age of the oldest stored batch not yet archived (0: none)",
            labels=["project"],
        )  # fmt: skip

    def collect(self, conn: Any) -> list[Metric]:
        now = time.time()
        for project in list_projects(conn):
            pk = keys.ProjectKeys(project)
            self._archive(conn, pk, now)
            self._counters(conn, pk)
            self.dirty.add_metric([project], conn.zcard(pk.dirty))
            self._last_export(conn, project)
        return [
            *(self.pairs, self.exported, self.dirty, self.duration, self.size, self.judge, self.reference),
            *(self.archive_pending, self.archive_lag),
        ]

    def _archive(self, conn: Any, pk: keys.ProjectKeys, now: float) -> None:
        self.archive_pending.add_metric([pk.project], conn.xlen(pk.archive_log))
        oldest = conn.xrange(pk.archive_log, count=1)
        stamp = int(oldest[0][0].split(b"-")[0]) / 1000 if oldest else now
        self.archive_lag.add_metric([pk.project], round(max(0.0, now - stamp), 3))

    def _counters(self, conn: Any, pk: keys.ProjectKeys) -> None:
        counts = conn.hmget(pk.stats_total, "pairs", PAIRS_EXPORTED, *JUDGE_COUNTERS, *REFERENCE_COUNTERS)
        self.pairs.add_metric([pk.project], int(counts[0] or 0))
        self.exported.add_metric([pk.project], int(counts[1] or 0))
        for name, value in zip((*JUDGE_COUNTERS, *REFERENCE_COUNTERS), counts[2:], strict=True):
            if value is not None:
                family = self.judge if name.startswith("judge_") else self.reference
                family.add_metric([pk.project, name.split("_", 1)[1]], int(value))

    def _last_export(self, conn: Any, project: str) -> None:
        for record in exports.list_exports(conn, project, limit=5):
            if record.get("status") in exports.FINAL_STATUSES and "started_at" in record:
                started, finished = float(record["started_at"]), float(record["finished_at"])
                self.duration.add_metric([project, record["status"]], finished - started)
                self.size.add_metric([project], int(record.get("pairs", 0)))
                break
