"""``flush(timeout=T)`` and ``shutdown(timeout=T)`` return within T and a little, whatever the
service does: here a service that accepts connections, reads the request and never answers
(against it, ``shutdown(timeout=2)`` once took 4.1 s). What could not be sent is spooled when
there is a spool, else counted as failed: never silently dropped."""

import socket
import threading
import time

import likeloop
import pytest

SLACK_S = 0.5  # "a little": thread wake-ups and a spool write on a busy machine


@pytest.fixture
def stalled_url():
    """A TCP server that reads whatever comes and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def timed(call):
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def log_twelve_and_shut_down(ll):
    """(what shutdown(timeout=1) returned, the client's stats) after 12 logged responses."""
    for i in range(12):
        ll.log(prompt="Q", response=f"A{i}")
    ok, took = timed(lambda: ll.shutdown(timeout=1.0))
    assert took < 1.0 + SLACK_S, took
    return ok, ll.stats()


def test_shutdown_returns_in_time_and_counts_what_it_could_not_send(stalled_url):
    ok, stats = log_twelve_and_shut_down(likeloop.Client(api_key="k", url=stalled_url, flush_at=5))
    assert ok is False and stats["failed"] == 12 and stats["sent"] == 0


def test_shutdown_keeps_what_it_could_not_send_in_the_spool(stalled_url, tmp_path):
    ll = likeloop.Client(api_key="k", url=stalled_url, flush_at=5, spool_dir=tmp_path)
    ok, stats = log_twelve_and_shut_down(ll)
    assert ok is True and stats["failed"] == 0 and stats["spooled"] == 12


def test_flush_returns_in_time(stalled_url):
    ll = likeloop.Client(api_key="k", url=stalled_url, flush_at=5)
    ll.like("r1")
    ok, took = timed(lambda: ll.flush(timeout=0.5))
    assert ok is False and took < 0.5 + SLACK_S, took
    _, took = timed(lambda: ll.shutdown(timeout=0.5))
    assert took < 0.5 + SLACK_S


def test_a_call_in_sync_mode_waits_at_most_its_bound(stalled_url):
    # sync=True sends in the caller's thread, each call for at most 5 s (not the 10 s socket
    # timeout), and a shutdown after it is immediate.
    ll = likeloop.Client(api_key="k", url=stalled_url, sync=True)
    _, took = timed(lambda: ll.like("r1"))
    assert 4.5 < took < 5.0 + SLACK_S, took
    assert ll.stats()["failed"] == 1
    ok, took = timed(lambda: ll.shutdown(timeout=0.5))
    assert ok is True and took < 0.5 + SLACK_S
