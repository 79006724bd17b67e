"""Batched metric updates: what a flush writes equals what updating each time would have."""

import random
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.tally import Tally

BUCKETS = (0.001, 0.01, 0.1, 1.0)


def metrics(registry_name):
    registry = CollectorRegistry()
    histogram = Histogram(f"{registry_name}_seconds", "h", ["route"], buckets=BUCKETS, registry=registry)
    counter = Counter(f"{registry_name}_total", "c", ["outcome"], registry=registry)
    return registry, histogram, counter


def samples(registry):
    """Exposition lines without the metric name prefix and creation times."""
    lines = generate_latest(registry).decode().splitlines()
    return sorted(line.split("_", 1)[1] for line in lines if not line.startswith("#") and "_created" not in line)


def test_a_flush_writes_what_direct_updates_would_have():
    direct_registry, direct_h, direct_c = metrics("x")
    batched_registry, batched_h, batched_c = metrics("x")
    tally = Tally(interval_s=3600)  # no timed flush during the test
    rng = random.Random(7)
    edges = [0.0, 0.001, 0.0010001, 0.05, 1.0, 7.5]  # on, just past and beyond the bucket bounds
    values = [rng.choice(edges) for _ in range(500)] + [rng.random() for _ in range(500)]
    for i, value in enumerate(values):
        route, outcome = ("a", "b")[i % 2], ("ok", "bad")[i % 3 == 0]
        direct_h.labels(route).observe(value)
        direct_c.labels(outcome).inc(2)
        tally.observe(batched_h.labels(route), value)
        tally.inc(batched_c.labels(outcome), 2)
    assert samples(batched_registry) != samples(direct_registry)  # nothing written yet
    tally.flush()
    assert samples(batched_registry) == samples(direct_registry)
    tally.flush()  # a second flush adds nothing
    assert samples(batched_registry) == samples(direct_registry)


def test_updates_from_many_threads_are_all_counted_and_written_by_the_timer():
    registry, histogram, counter = metrics("y")
    tally = Tally(interval_s=0.05)

    def work():
        for _ in range(1000):
            tally.inc(counter.labels("ok"))
            tally.observe(histogram.labels("r"), 0.005)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 5
    while registry.get_sample_value("y_total", {"outcome": "ok"}) != 8000 and time.monotonic() < deadline:
        time.sleep(0.02)
    text = generate_latest(registry).decode()
    assert 'y_total{outcome="ok"} 8000.0' in text
    assert 'y_seconds_bucket{le="0.01",route="r"} 8000.0' in text
    assert 'y_seconds_bucket{le="0.001",route="r"} 0.0' in text
