"""The SDK inside real processes against the real service: exit, fork, crash and spool replay,
serverless sync mode, sampling."""

import json
import subprocess
import sys
import textwrap

import likeloop

from likeloop_server import keys
from tests.support import make_key


def run_script(code: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_responses(conn, project="acme"):
    return sorted(conn.hget(k, "prompt").decode() for k in conn.scan_iter(keys.ProjectKeys(project).response("*")))


def test_pending_events_are_flushed_at_process_exit(live_service, conn):
    key = make_key(conn, "acme")
    result = run_script(
        """
        import likeloop
        ll = likeloop.Client(flush_interval=60, flush_at=1000)   # nothing would be sent before exit
        for i in range(50):
            ll.log(prompt=f"exit {i}", response="A")
        # no flush(), no shutdown(): the interpreter exits with 50 events queued
    """,
        LIKELOOP_API_KEY=key,
        LIKELOOP_URL=live_service.url,
    )
    assert result.returncode == 0, result.stderr
    assert len(stored_responses(conn)) == 50


def test_events_from_parent_and_forked_child_are_each_sent_once(live_service, conn):
    key = make_key(conn, "acme")
    result = run_script(
        """
        import os, likeloop
        ll = likeloop.Client(flush_interval=60, flush_at=1000)
        ll.log(prompt="parent before fork", response="A")       # still queued at fork time
        pid = os.fork()
        if pid == 0:
            ll.log(prompt="child", response="A")
            ll.flush(10)
            os._exit(0 if ll.stats()["sent"] == 1 else 3)        # the child sends only its own event
        ll.log(prompt="parent after fork", response="A")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert ll.flush(10)
        print(ll.stats()["sent"])
    """,
        LIKELOOP_API_KEY=key,
        LIKELOOP_URL=live_service.url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
    assert stored_responses(conn) == ["child", "parent after fork", "parent before fork"]
    total = conn.hget("ll:p:{acme}:stats", "responses")
    assert int(total) == 3


def test_a_spool_survives_a_crash_during_an_outage_and_is_replayed(live_service, conn, tmp_path):
    key = make_key(conn, "acme")
    spool = tmp_path / "spool"
    from likeloop_cli.stack import free_port

    down = f"http://127.0.0.1:{free_port()}"
    crashed = run_script(
        f"""
        import os, time, likeloop
        ll = likeloop.Client(spool_dir={str(spool)!r}, flush_interval=0.05, flush_at=10)
        for i in range(35):
            ll.log(prompt=f"spooled {{i}}", response="A")
        deadline = time.monotonic() + 20
        while ll.stats()["spooled"] < 35 and time.monotonic() < deadline:
            time.sleep(0.05)
        print(ll.stats()["spooled"], flush=True)
        os._exit(9)   # a crash: no atexit, no flush
    """,
        LIKELOOP_API_KEY=key,
        LIKELOOP_URL=down,
    )
    assert crashed.returncode == 9 and crashed.stdout.strip() == "35", crashed.stderr
    # A batch being replayed when the process died is renamed *.batch.claimed-<pid>; the next
    # process releases it. Either way it is one of the batches on disk.
    batches = sorted(spool.glob("*.batch*"))
    assert len(batches) >= 4
    (spool / "00000000000000000000-1-000001.batch").write_bytes(b"LLSPOOL1 deadbeef 3 x\n{not json")

    ll = likeloop.Client(api_key=key, url=live_service.url, spool_dir=spool, flush_interval=0.05)
    try:
        import time

        deadline = time.monotonic() + 30
        while list(spool.glob("*.batch")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(spool.glob("*.batch")) == []
        assert len(list(spool.glob("*.corrupt"))) == 1  # set aside with a warning, not a crash
        assert stored_responses(conn) == sorted(f"spooled {i}" for i in range(35))
        assert ll.stats()["replayed"] == 35
    finally:
        ll.shutdown(2)


def test_shutdown_during_an_outage_keeps_events_in_the_spool(conn, tmp_path):
    from likeloop_cli.stack import free_port

    spool = tmp_path / "spool"
    ll = likeloop.Client(api_key="k", url=f"http://127.0.0.1:{free_port()}", spool_dir=spool, flush_interval=60)
    for i in range(5):
        ll.like(f"r{i}")
    assert ll.shutdown(1) is True  # nothing lost: it is on disk
    assert ll.stats()["spooled"] == 5 and ll.stats()["failed"] == 0
    assert sum(int(p.read_bytes().split(b" ")[2]) for p in spool.glob("*.batch")) == 5


def test_sync_mode_sends_before_returning(live_service, conn):
    key = make_key(conn, "acme")
    ll = likeloop.Client(api_key=key, url=live_service.url, sync=True)
    rid = ll.log(prompt="serverless", response="A")
    assert conn.exists(f"ll:p:{{acme}}:resp:{rid}")  # stored before log() returned
    ll.like(rid)
    assert ll.stats()["sent"] == 2
    ll.shutdown()


def test_sampling_keeps_a_response_and_its_feedback_together(live_service, conn):
    key = make_key(conn, "acme")
    ll = likeloop.Client(api_key=key, url=live_service.url, sample_rate=0.5, flush_interval=0.05)
    rids = [ll.log(prompt=f"s{i}", response="A") for i in range(200)]
    for rid in rids:
        ll.like(rid)
    assert ll.flush(20)
    kept = stored_responses(conn)
    assert 50 < len(kept) < 150
    stats = json.loads(json.dumps({k.decode(): int(v) for k, v in conn.hgetall("ll:p:{acme}:stats").items()}))
    assert stats["likes"] == len(kept)  # every kept response got its like; no like without its response
    assert conn.keys("ll:p:{acme}:pending:*") == []
    ll.shutdown()
