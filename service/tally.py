"""Metric updates summed in process memory and written to the Prometheus metrics once a second.

Under gunicorn every ``inc`` or ``observe`` of a prometheus_client metric is a locked write to a
memory-mapped file the workers share; here a request adds to a dict instead, and a daemon
thread writes the sums every ``interval_s`` (docs/benchmarks.md has the cost of both). The
scraping process writes its own first, so a scrape sees other workers' counts at most a second
late; a worker that exits normally writes what is left (a killed one loses at most a second).
"""

from __future__ import annotations

import atexit
import bisect
import os
import threading
import time
from typing import Any

FLUSH_INTERVAL_S = 1.0


class Tally:
    """``inc(counter_child, n)`` and ``observe(histogram_child, value)``, batched.

    ``counter_child`` and ``histogram_child`` are labelled prometheus_client metrics
    (``COUNTER.labels(...)``). Histograms are written as prometheus_client keeps them: a count per
    bucket (the first whose upper bound is at least the value) and a sum.
    """

    def __init__(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        self._histograms: dict[Any, list[float]] = {}  # child -> [count per bucket..., sum]
        self._bounds: dict[Any, list[float]] = {}
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget_thread)
        atexit.register(self.flush)

    def _forget_thread(self) -> None:
        # A forked child has no copy of the parent's thread; its first update starts its own.
        self._thread = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        """Start this process's flushing thread (called with the lock held, so only one starts)."""
        self._thread = threading.Thread(target=self._run, name="likeloop-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            self.flush()

    def inc(self, child: Any, n: float = 1) -> None:
        with self._lock:
            self._counts[child] = self._counts.get(child, 0) + n
            if self._thread is None:
                self._start()

    def observe(self, child: Any, value: float) -> None:
        bounds = self._bounds.get(child)
        if bounds is None:
            bounds = self._bounds[child] = list(child._upper_bounds)
        index = bisect.bisect_left(bounds, value)  # the first bound >= value, as observe() picks
        with self._lock:
            slots = self._histograms.get(child)
            if slots is None:
                slots = self._histograms[child] = [0.0] * (len(bounds) + 1)
            slots[index] += 1
            slots[-1] += value
            if self._thread is None:
                self._start()

    def flush(self) -> None:
        """Write what was gathered since the last flush to the metrics."""
        with self._lock:
            counts, self._counts = self._counts, {}
            histograms, self._histograms = self._histograms, {}
        for child, n in counts.items():
            child.inc(n)
        for child, slots in histograms.items():
            # prometheus_client has no public call for "n observations in bucket i"; these are
            # the values its observe() increments (tests/service/test_tally.py checks they agree).
            for i, n in enumerate(slots[:-1]):
                if n:
                    child._buckets[i].inc(n)
            child._sum.inc(slots[-1])
