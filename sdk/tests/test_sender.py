"""The SDK's own delivery logic, with a scripted transport standing in for the network.

End-to-end delivery against the real service is in test_client_e2e.py.
"""

import gzip
import json
import threading

import likeloop
import pytest
from likeloop._transport import Response, TransportError


class ScriptedTransport:
    """Answers each post with the next scripted outcome; records what was sent."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.bodies = []
        self.lock = threading.Lock()

    def post(self, path, body, headers):
        with self.lock:
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            events = json.loads(body)["events"]
            self.bodies.append(events)
            outcome = self.outcomes.pop(0) if self.outcomes else 200
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, Response):
            return outcome
        results = [{"index": i, "status": "accepted"} for i in range(len(events))]
        return Response(outcome, {}, {"results": results})

    def close(self):
        pass


class HeldTransport(ScriptedTransport):
    """Holds every post until the gate opens: a service that does not answer yet."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def post(self, path, body, headers):
        self.gate.wait(5)
        return super().post(path, body, headers)


class NoWaiting:
    """A retry policy that waits for nothing and remembers what it was asked."""

    def __init__(self):
        self.asked = []

    def delay(self, attempt, retry_after=None):
        self.asked.append((attempt, retry_after))
        return 0.0


def client_with(transport, retry=None, **kw):
    """A client whose batches go to ``transport``, retrying without waiting."""
    return likeloop.Client(
        api_key="k",
        url="http://127.0.0.1:9",
        flush_interval=0.05,
        transport=transport,
        retry=retry or NoWaiting(),
        **kw,
    )


def test_connection_errors_and_5xx_are_retried_until_delivered():
    transport = ScriptedTransport(TransportError("refused"), 503, 500, 200)
    c = client_with(transport)
    c.like("r1")
    assert c.flush(5)
    assert len(transport.bodies) == 4
    assert c.stats()["sent"] == 1 and c.stats()["retries"] == 3
    c.shutdown()


def test_429_honours_retry_after():
    transport = ScriptedTransport(Response(429, {"retry-after": "7"}, None), 200)
    waits = NoWaiting()
    c = client_with(transport, retry=waits)
    c.like("r1")
    assert c.flush(5)
    assert waits.asked == [(1, 7.0)]
    c.shutdown()


def test_other_4xx_is_not_retried_and_is_reported():
    errors = []
    transport = ScriptedTransport(Response(401, {}, {"error": {"code": "invalid_api_key"}}))
    c = client_with(transport, on_error=errors.append)
    c.like("r1")
    assert c.flush(5)
    assert len(transport.bodies) == 1
    assert c.stats()["failed"] == 1
    assert isinstance(errors[0], likeloop.DeliveryError) and errors[0].status == 401
    c.shutdown()


def test_retries_are_bounded():
    transport = ScriptedTransport(*([503] * 10))
    c = client_with(transport, max_retries=3)
    c.like("r1")
    assert c.flush(5)
    assert len(transport.bodies) == 4 and c.stats()["failed"] == 1
    c.shutdown()


def test_per_event_rejections_do_not_sink_the_batch():
    errors = []
    rejected = Response(
        207,
        {},
        {
            "results": [
                {"index": 0, "status": "accepted"},
                {"index": 1, "status": "rejected", "error": {"message": "events[1].value: bad"}},
            ]
        },
    )
    transport = ScriptedTransport(rejected)
    c = client_with(transport, on_error=errors.append, flush_at=2)
    c.like("r1")
    c.comment("r1", "x")
    assert c.flush(5)
    assert c.stats()["sent"] == 1 and c.stats()["rejected"] == 1
    assert errors[0].events[0]["type"] == "comment"
    c.shutdown()


def test_batches_close_on_count():
    transport = ScriptedTransport()
    c = client_with(transport, flush_at=10)
    for i in range(25):
        c.like(f"r{i}")
    assert c.flush(5)
    assert [len(b) for b in transport.bodies] == [10, 10, 5]
    c.shutdown()


def test_batches_close_on_bytes():
    transport = ScriptedTransport()
    c = client_with(transport, flush_at=100, max_batch_bytes=2000)
    for i in range(10):
        c.comment(f"r{i}", "x" * 500)
    assert c.flush(5)
    assert len(transport.bodies) >= 3 and sum(len(b) for b in transport.bodies) == 10
    c.shutdown()


def test_a_full_queue_drops_and_counts():
    gate = threading.Event()
    c = client_with(HeldTransport(gate), max_queue=5, flush_at=1)
    accepted = [c.like(f"r{i}") for i in range(20)]
    assert accepted.count(False) >= 10
    assert c.stats()["dropped_queue_full"] == accepted.count(False)
    gate.set()
    c.shutdown(5)


def test_flush_is_bounded_when_the_service_never_answers():
    import time

    gate = threading.Event()

    class Hanging(ScriptedTransport):
        def post(self, path, body, headers):
            gate.wait(10)
            raise TransportError("timeout")

    c = client_with(Hanging())
    c.like("r1")
    start = time.monotonic()
    assert c.flush(0.3) is False
    assert time.monotonic() - start < 2
    gate.set()
    c.shutdown(0.5)


def test_misuse_never_raises_unless_debug():
    errors = []
    c = client_with(ScriptedTransport(), on_error=errors.append)
    assert c.rate("r1", 9) is False
    assert c.log(prompt="Q") is None
    assert c.log(prompt="Q", messages=[], response="A") is None
    assert len(errors) == 3 and all(isinstance(e, likeloop.UsageError) for e in errors)
    debug = client_with(ScriptedTransport(), debug=True)
    with pytest.raises(likeloop.UsageError):
        debug.rate("r1", 9)
    c.shutdown()
    debug.shutdown()


def test_disabled_client_sends_nothing():
    transport = ScriptedTransport()
    c = client_with(transport, enabled=False)
    assert c.like("r1") is False
    assert isinstance(c.log(prompt="Q", response="A"), str)
    assert c.flush(1) and transport.bodies == []


def test_public_api_is_pinned():
    assert sorted(likeloop.__all__) == sorted(
        [
            "Client",
            "DeliveryError",
            "LikeLoopError",
            "RedactionError",
            "UsageError",
            "__version__",
            "comment",
            "compare",
            "correct",
            "default_client",
            "dislike",
            "flush",
            "like",
            "log",
            "rank",
            "rate",
            "shutdown",
            "wrap_anthropic",
            "wrap_openai",
        ]
    )


def test_the_byte_bound_drops_new_events_and_counts_them():
    gate = threading.Event()
    c = client_with(HeldTransport(gate), max_queue_bytes=20_000, flush_at=1000)
    results = [c.comment("r1", "x" * 1000) for _ in range(50)]
    assert 10 <= results.count(True) < 20
    assert c.stats()["dropped_queue_full"] == results.count(False)
    assert c.stats()["pending_bytes"] <= 20_000
    gate.set()
    c.shutdown(5)
