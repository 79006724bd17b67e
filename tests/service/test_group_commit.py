"""Group commit: concurrent requests share script calls, yet each gets exactly its own answer."""

import random
import threading
import time

import pytest

from likeloop_server import keys
from likeloop_server.batch_store import BatchStore
from likeloop_server.ingest import prepare
from service.group_commit import DirectCommit, GroupCommit


def run_threads(target, n):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a request never got its answer"


def test_concurrent_requests_on_real_redis_each_get_their_own_statuses(conn, settings):
    store = BatchStore(conn, settings)
    dirty: list[tuple[str, list[str]]] = []
    commit = GroupCommit(store.store, lambda project, groups: dirty.append((project, groups)))
    answers: dict[tuple[int, int], list[str]] = {}

    def client(i):
        for k in range(30):
            project = "acme" if (i + k) % 3 else "other"
            events = [{"type": "response", "response_id": f"r{i}-{k}", "prompt": "Q", "response": f"A{i}.{k}"}]
            if k % 5 == 0:  # a batch: a retried response, and a like of another thread's response
                events += [dict(events[0]), {"type": "like", "response_id": f"r{(i + 1) % 12}-0", "user_id": f"u{i}"}]
            answers[(i, k)] = commit.commit(project, [prepare(e) for e in events])
            time.sleep(random.random() / 1000)

    run_threads(client, 12)
    for (_, k), statuses in answers.items():
        if k % 5:
            assert statuses == ["accepted"]
        else:  # the same response twice in one request: stored once; the like waits or applies
            assert statuses[:2] == ["accepted", "duplicate"] and statuses[2] in ("accepted", "pending")
    for project in ("acme", "other"):
        responses = [(i, k) for i in range(12) for k in range(30) if ((i + k) % 3 != 0) == (project == "acme")]
        total = conn.hget(keys.ProjectKeys(project).stats_total, "responses")
        assert int(total) == len(responses)
    assert all(groups for _, groups in dirty)


def test_requests_that_arrive_during_a_call_share_the_next_one():
    calls: list[list[str]] = []
    first_call_started, release_first = threading.Event(), threading.Event()

    def slow_store(project, events):
        calls.append([e["id"] for e in events])
        if len(calls) == 1:
            first_call_started.set()
            release_first.wait(10)
        return [f"ok:{e['id']}" for e in events], []

    commit = GroupCommit(slow_store, lambda *_: None, max_events=5)
    answers = {}

    def client(i):
        events = [{"id": f"{i}.{j}"} for j in range(1 if i else 2)]
        answers[i] = commit.commit("p", events)

    leader = threading.Thread(target=client, args=(0,))
    leader.start()
    assert first_call_started.wait(10)
    followers = [threading.Thread(target=client, args=(i,)) for i in range(1, 8)]
    for t in followers:
        t.start()
    deadline = time.monotonic() + 10
    while len(commit._queue) < 7 and time.monotonic() < deadline:  # all seven are waiting
        time.sleep(0.001)
    release_first.set()
    for t in [leader, *followers]:
        t.join(10)
    assert calls[0] == ["0.0", "0.1"]
    assert [len(c) for c in calls[1:]] == [5, 2]  # seven waiting requests in two calls of at most 5
    for i in range(8):
        assert answers[i] == [f"ok:{i}.{j}" for j in range(1 if i else 2)]


def test_a_request_larger_than_a_call_goes_alone_and_is_never_split():
    calls: list[int] = []

    def store(project, events):
        calls.append(len(events))
        return ["ok"] * len(events), []

    commit = GroupCommit(store, lambda *_: None, max_events=3)
    assert commit.commit("p", [{}] * 10) == ["ok"] * 10
    assert calls == [10]


def test_a_failed_call_fails_the_requests_it_carried_and_the_next_ones_proceed():
    def store(project, events):
        if project == "broken":
            raise ConnectionError("redis is away")
        return ["ok"] * len(events), []

    commit = GroupCommit(store, lambda *_: None)
    errors, answers = [], []

    def client(i):
        try:
            answers.append(commit.commit("broken" if i % 2 else "fine", [{}]))
        except ConnectionError as exc:
            errors.append(exc)

    run_threads(client, 20)
    assert len(errors) == 10 and answers == [["ok"]] * 10
    assert commit.commit("fine", [{}]) == ["ok"]
    assert not commit._leading and not commit._queue


def test_stale_groups_are_reported_once_per_call_after_the_requests_are_answered():
    reported = []
    commit = GroupCommit(lambda p, events: (["ok"] * len(events), ["g1", "g2"]), lambda p, g: reported.append((p, g)))
    assert commit.commit("p", [{}]) == ["ok"]
    assert reported == [("p", ["g1", "g2"])]
    with pytest.raises(RuntimeError):
        GroupCommit(lambda p, e: (_ for _ in ()).throw(RuntimeError("boom")), lambda *_: None).commit("p", [{}])


def test_direct_commit_stores_at_once_and_reports_dirty_groups(conn, settings):
    dirty: list[tuple[str, list[str]]] = []
    commit = DirectCommit(BatchStore(conn, settings).store, lambda project, groups: dirty.append((project, groups)))
    assert commit.commit("acme", []) == []
    events = [{"type": "response", "response_id": "r1", "prompt": "Q", "response": "A"}]
    assert commit.commit("acme", [prepare(e) for e in events]) == ["accepted"]
    assert commit.commit("acme", [prepare(e) for e in events]) == ["duplicate"]
    assert dirty == []  # a response alone leaves nothing to pair
    like = [prepare({"type": "like", "response_id": "r1", "user_id": "u"})]
    assert commit.commit("acme", like) == ["accepted"]
    assert len(dirty) == 1 and dirty[0][0] == "acme" and len(dirty[0][1]) == 1
