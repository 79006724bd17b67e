"""The job queue on a Redis of its own (LIKELOOP_QUEUE_REDIS_URL): the whole pipeline runs with
the service, a real worker and the CLI, RQ's keys and the queued jobs' names are all on the
queue's server, and the data server holds nothing of RQ's."""

import dataclasses
import json
import time
import urllib.request

import pytest
import redis

from likeloop_cli import stack
from likeloop_server import keys
from likeloop_server.connections import connect, queue_redis
from tests.support import LiveService, P, auth, likeloop_cli, make_key, run_worker_burst


@pytest.fixture
def queue_server(tmp_path):
    server = stack.start_redis(tmp_path / "queue-redis")
    yield server
    server.stop(grace=2)


def post(url, key, path, body):
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={**auth(key), "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def get(url, key, path):
    with urllib.request.urlopen(urllib.request.Request(url + path, headers=auth(key)), timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def test_one_client_finds_the_queue_through_the_data_redis(settings, queue_server):
    same = connect(settings)
    assert queue_redis(same) is same  # by default the queue lives with the data
    apart = connect(dataclasses.replace(settings, queue_redis_url=queue_server.url))
    queue_redis(apart).set("written-through-the-queue-client", 1)
    assert redis.Redis.from_url(queue_server.url).get("written-through-the-queue-client") == b"1"
    assert not apart.exists("written-through-the-queue-client")


def test_the_pipeline_runs_with_the_queue_apart(conn, s3, settings, queue_server, tmp_path):
    apart = dataclasses.replace(settings, queue_redis_url=queue_server.url)
    queue = redis.Redis.from_url(queue_server.url)
    key = make_key(conn, P)
    service = LiveService(apart, tmp_path / "service.log")
    try:
        events = [
            {"type": "response", "response_id": "r1", "prompt": "Q?", "response": "A good answer", "model": "m1"},
            {"type": "response", "response_id": "r2", "prompt": "Q?", "response": "A bad one", "model": "m2"},
            {"type": "like", "response_id": "r1", "user_id": "u1"},
            {"type": "dislike", "response_id": "r2", "user_id": "u1"},
        ]
        assert post(service.url, key, "/v1/events", {"events": events})[0] == 200
        pk = keys.ProjectKeys(P)
        assert queue.exists(pk.pairing_job) and not conn.exists(pk.pairing_job)  # named where it is queued
        assert get(service.url, key, "/v1/pipeline")[1]["pairing_job_queued"] is True
        assert get(service.url, key, "/v1/quality")[0] == 202 and queue.exists(pk.quality_job)
        run_worker_burst(apart)
        assert len(conn.hkeys(pk.pair_records)) == 1  # paired by the worker, in the data Redis
        assert get(service.url, key, "/v1/quality")[1]["figures"]["pairs_by_source"]["value"] == 1
        assert likeloop_cli("export", "--project", P, settings=apart).returncode == 0  # queued
        run_worker_burst(apart)
        records = [conn.hgetall(pk.export(e.decode())) for e in conn.zrange(pk.exports, 0, -1)]
        assert [r[b"status"] for r in records] == [b"succeeded"] and records[0][b"pairs"] == b"1"
        assert not queue.exists(pk.pairing_job) and not queue.exists(pk.quality_job)
    finally:
        service.stop()
    on_queue = [k.decode() for k in queue.scan_iter(count=1000)]
    on_data = [k.decode() for k in conn.scan_iter(count=1000)]
    assert any(k.startswith("rq:") for k in on_queue)
    assert [k for k in on_data if k.startswith("rq:")] == []
    assert [k for k in on_queue if not k.startswith("rq:")] == []  # nothing of the data


def test_an_export_lost_with_the_queue_is_queued_again(conn, settings, queue_server):
    from likeloop_server import exports

    data = connect(dataclasses.replace(settings, queue_redis_url=queue_server.url))
    first, queued = exports.request(data, P, "snapshot")
    assert queued and exports.request(data, P, "snapshot") == (first, False)  # one queued a mode
    redis.Redis.from_url(queue_server.url).flushall()  # the queue's Redis lost, the data's not
    assert exports.request(data, P, "snapshot") == (first, False)  # just requested: its job may be on its way
    conn.hset(keys.ProjectKeys(P).export(first), "requested_at", repr(time.time() - 120))
    second, queued = exports.request(data, P, "snapshot")
    assert queued and second != first
