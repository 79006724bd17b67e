"""Pairing jobs drain the dirty set in claimed batches: several workers share a project's groups
without pairing one twice, a killed worker loses nothing, a lost job is replaced within seconds."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from rq import Queue

from likeloop_server import apikeys, keys
from likeloop_server.queues import PAIRING_QUEUE, schedule_pairing
from tests.support import P, labelled, server_env, store
from workers.pairing.claims import Claims
from workers.pairing.drain import drain, sweep_dirty


def many_groups(conn, settings, n):
    events = [e for i in range(n) for e in labelled(i)]
    for start in range(0, len(events), 400):
        store(conn, settings, *events[start : start + 400])


def log_adds(conn):
    entries = conn.xrange(keys.ProjectKeys(P).pair_log)
    return Counter(f[b"pair"] for _, f in entries if f[b"op"] == b"add")


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (RQ's work horse runs in a session of its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_one_drain_pairs_every_dirty_group(conn, settings):
    many_groups(conn, settings, 450)  # more than two batches
    totals = drain(conn, P, 100, time.monotonic() + 60)
    pk = keys.ProjectKeys(P)
    assert totals["groups"] == 450 and totals["added"] == 450
    assert conn.zcard(pk.dirty) == 0 and conn.hlen(pk.pair_claims) == 0
    assert int(conn.hget(pk.stats_total, "pairs")) == 450


def test_concurrent_drains_share_the_work_and_pair_each_group_once(conn, settings):
    many_groups(conn, settings, 900)
    results = []

    def worker():
        results.append(drain(conn.__class__.from_url(settings.redis_url), P, 100, time.monotonic() + 60))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    adds = log_adds(conn)
    assert len(adds) == 900 and set(adds.values()) == {1}  # every pair written once, by one worker
    assert sum(r["groups"] for r in results) == 900
    assert int(conn.hget(keys.ProjectKeys(P).stats_total, "pairs")) == 900


def test_a_vote_during_a_batch_makes_its_group_paired_again(conn, settings):
    many_groups(conn, settings, 3)
    import workers.pairing.drain as pairing

    real_read, reads = pairing.read_groups, []

    def racing_read(c, k, gids):
        out = real_read(c, k, gids)
        if not reads:  # flips group 1 after it was read: good1 is now disliked too
            store(conn, settings, {"type": "dislike", "response_id": "good1", "user_id": "u2"})
        reads.append(len(gids))
        return out

    pairing.read_groups = racing_read
    try:
        totals = drain(conn, P, 100, time.monotonic() + 60)
    finally:
        pairing.read_groups = real_read
    assert reads == [3, 1] and totals["changed"] == 1
    assert totals["groups"] == 3 and totals["added"] == 2  # group 1 has no liked answer left
    assert conn.zcard(keys.ProjectKeys(P).dirty) == 0


def test_a_claimed_group_is_left_alone_until_its_claim_lapses(conn, settings):
    many_groups(conn, settings, 4)
    pk = keys.ProjectKeys(P)
    # A worker claims two groups and dies before writing them.
    _, taken = Claims(conn, pk, lease_s=1).claim(time.time(), limit=2)
    assert len(taken) == 2
    assert drain(conn, P, 100, time.monotonic() + 60)["groups"] == 2  # the other two
    assert sorted(g.decode() for g in conn.zrange(pk.dirty, 0, -1)) == sorted(taken)
    time.sleep(1.1)
    assert drain(conn, P, 100, time.monotonic() + 60)["groups"] == 2  # lapsed: paired now
    assert conn.zcard(pk.dirty) == 0 and set(log_adds(conn).values()) == {1}


def test_a_worker_killed_mid_drain_loses_nothing(conn, settings):
    apikeys.create_key(conn, P, ("ingest",))
    many_groups(conn, settings, 3000)
    fast_lease = {"LIKELOOP_PAIRING_LEASE_S": "1"}
    assert schedule_pairing(conn, P)
    worker = subprocess.Popen(
        [sys.executable, "-m", "likeloop_cli", "worker", "--burst"],
        env={**server_env(settings), **fast_lease},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pk = keys.ProjectKeys(P)
    deadline = time.monotonic() + 60
    while conn.zcard(pk.dirty) > 2000 and time.monotonic() < deadline:  # it has paired some
        time.sleep(0.01)
    for pid in [*children_of(worker.pid), worker.pid]:  # its work horse too, as when its machine dies
        os.kill(pid, signal.SIGKILL)
    worker.wait()
    left = conn.zcard(pk.dirty)
    assert 0 < left < 3000, left
    time.sleep(1.1)  # the dead worker's claims lapse
    assert drain(conn, P, 100, time.monotonic() + 60)["groups"] == left
    assert conn.zcard(pk.dirty) == 0
    adds = log_adds(conn)
    assert len(adds) == 3000 and set(adds.values()) == {1}
    assert int(conn.hget(pk.stats_total, "pairs")) == 3000


def test_a_job_named_but_never_enqueued_is_replaced_by_the_sweep(conn, settings):
    apikeys.create_key(conn, P, ("ingest",))
    many_groups(conn, settings, 2)
    pk = keys.ProjectKeys(P)
    conn.set(pk.pairing_job, "pairing-acme-lost")  # the service died between naming and enqueuing
    conn.zadd(pk.dirty, {g: time.time() - 10 for g in conn.zrange(pk.dirty, 0, -1)}, xx=True)
    assert not schedule_pairing(conn, P)  # the name blocks a second job ...
    assert sweep_dirty(conn=conn) == 1  # ... until the sweep finds it names no live job
    assert conn.get(pk.pairing_job) != b"pairing-acme-lost"
    assert Queue(PAIRING_QUEUE, connection=conn).count == 1
    assert sweep_dirty(conn=conn) == 0
