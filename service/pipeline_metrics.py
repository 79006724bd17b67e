"""Pipeline state read from Redis when Prometheus scrapes: queue depths, failed jobs, pairs,
groups waiting for pairing, the last exports, the event archive's backlog. It covers the
workers, which serve no metrics."""

from __future__ import annotations

import time
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily

from likeloop_server import exports, keys
from likeloop_server.apikeys import list_projects
from likeloop_server.counters import PAIRS_EXPORTED
from likeloop_server.queues import queue_states
from likeloop_server.stats import JUDGE_COUNTERS, REFERENCE_COUNTERS


class PipelineCollector:
    """Pipeline state read from Redis when Prometheus scrapes."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def collect(self):  # type: ignore[no-untyped-def]
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

    def _pipeline(self):  # type: ignore[no-untyped-def]
        depth = GaugeMetricFamily("likeloop_queue_depth", "Jobs waiting in each queue", labels=["queue"])
        failed = GaugeMetricFamily("likeloop_jobs_failed", "Jobs in each queue's failed registry", labels=["queue"])
        for state in queue_states(self.conn):
            depth.add_metric([state["name"]], state["queued"])
            failed.add_metric([state["name"]], state["failed"])
        pairs = GaugeMetricFamily("likeloop_pairs", "Current preference pairs", labels=["project"])
        exported = GaugeMetricFamily("likeloop_pairs_exported", "Pairs in the exported dataset", labels=["project"])
        dirty = GaugeMetricFamily("likeloop_groups_dirty", "Prompt groups waiting for pairing", labels=["project"])
        duration = GaugeMetricFamily(
            "likeloop_last_export_duration_seconds",
            "Duration of the last finished export",
            labels=["project", "status"],
        )
        size = GaugeMetricFamily(
            "likeloop_last_export_pairs", "Pairs written by the last finished export", labels=["project"]
        )
        judge = GaugeMetricFamily(
            "likeloop_judge", "The LLM judge's totals: calls, tokens, verdicts, unparseable, errors, ms",
            labels=["project", "counter"],
        )  # fmt: skip
        reference = GaugeMetricFamily(
            "likeloop_reference", "The reference model's totals: calls, tokens, answers, errors, ms",
            labels=["project", "counter"],
        )  # fmt: skip
        archive_pending = GaugeMetricFamily(
            "likeloop_archive_pending_batches", "Stored batches not yet in the S3 event archive", labels=["project"]
        )
        archive_lag = GaugeMetricFamily(
            "likeloop_archive_lag_seconds", "Age of the oldest stored batch not yet archived (0: none)",
            labels=["project"],
        )  # fmt: skip
        now = time.time()
        for project in list_projects(self.conn):
            pk = keys.ProjectKeys(project)
            archive_pending.add_metric([project], self.conn.xlen(pk.archive_log))
            oldest = self.conn.xrange(pk.archive_log, count=1)
            stamp = int(oldest[0][0].split(b"-")[0]) / 1000 if oldest else now
            archive_lag.add_metric([project], round(max(0.0, now - stamp), 3))
            counts = self.conn.hmget(pk.stats_total, "pairs", PAIRS_EXPORTED, *JUDGE_COUNTERS, *REFERENCE_COUNTERS)
            pairs.add_metric([project], int(counts[0] or 0))
            exported.add_metric([project], int(counts[1] or 0))
            for name, value in zip((*JUDGE_COUNTERS, *REFERENCE_COUNTERS), counts[2:], strict=True):
                if value is not None:
                    family = judge if name.startswith("judge_") else reference
                    family.add_metric([project, name.split("_", 1)[1]], int(value))
            dirty.add_metric([project], self.conn.zcard(pk.dirty))
            for record in exports.list_exports(self.conn, project, limit=5):
                if record.get("status") in exports.FINAL_STATUSES and "started_at" in record:
                    duration.add_metric(
                        [project, record["status"]], float(record["finished_at"]) - float(record["started_at"])
                    )
                    size.add_metric([project], int(record.get("pairs", 0)))
                    break
        yield from (depth, failed, pairs, exported, dirty, duration, size, judge, reference)
        yield from (archive_pending, archive_lag)
