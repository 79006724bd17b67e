"""LikeLoop with its data on a real Redis Cluster (three primaries of the bundled redis-server in
cluster mode) and the job queue on a Redis of its own: the SDK sends through ``likeloop serve``,
a real ``likeloop worker`` pairs and exports, then the archive, compaction, a compacted group
brought back by new feedback, and a rebuild of the flushed cluster from S3. Each project's keys
live on one primary (its hash tag), and projects spread over the primaries. With replicas, a
primary killed costs 503s (or waits) until its replica takes over, and nothing acknowledged
(and replicated) is lost. The judge, the read limits, the quality job, erasure and retention too."""

import dataclasses
import json
import time

import likeloop
import pytest
import redis

from likeloop_cli import stack
from likeloop_server import apikeys, exports, keys
from likeloop_server.connections import connect, is_cluster
from tests.support import LiveService, likeloop_cli, run_worker_burst
from tests.workers.history import snapshot_rows
from workers.archive.run import archive_project
from workers.compaction.compact import compact_project
from workers.dataset import refs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    nodes = stack.start_cluster(tmp_path_factory.mktemp("cluster"), primaries=3)
    yield nodes
    nodes.stop()


@pytest.fixture(scope="module")
def queue_server(tmp_path_factory):
    server = stack.start_redis(tmp_path_factory.mktemp("queue"))
    yield server
    server.stop(grace=2)


@pytest.fixture
def on_cluster(cluster, queue_server, settings, s3):
    for url in [n.url for n in cluster.nodes] + [queue_server.url]:
        redis.Redis.from_url(url).flushall()
    return dataclasses.replace(settings, redis_url=cluster.url, redis_cluster=True, queue_redis_url=queue_server.url)


def node_of(conn, project: str) -> str:
    return conn.get_node_from_key(keys.ProjectKeys(project).base).name


def spread_projects(conn, n: int) -> list[str]:
    """Project names whose keys land on ``n`` different primaries."""
    chosen: dict[str, str] = {}
    for i in range(1000):
        name = f"shop-{i}"
        chosen.setdefault(node_of(conn, name), name)
        if len(chosen) == n:
            return sorted(chosen.values())
    raise AssertionError("no spread found")


def send_groups(url: str, key: str, project: str, n: int) -> None:
    client = likeloop.Client(api_key=key, url=url, flush_interval=0.05)
    for g in range(n):
        prompt = f"{project}: question {g}?"
        good = client.log(prompt=prompt, response=f"a good answer {g}", model="m1")
        bad = client.log(prompt=prompt, response=f"a bad answer {g}", model="m2")
        client.like(good, user_id=f"u{g}")
        client.dislike(bad, user_id=f"u{g}")
    assert client.flush(timeout=30)
    client.shutdown()


def test_the_pipeline_runs_on_a_cluster_with_the_queue_apart(on_cluster, s3, tmp_path):
    conn = connect(on_cluster)
    assert is_cluster(conn)
    projects = spread_projects(conn, 3)
    secrets = {p: apikeys.create_key(conn, p, ("ingest", "read", "admin"))[0] for p in projects}
    service = LiveService(on_cluster, tmp_path / "service.log")
    try:
        for project in projects:
            send_groups(service.url, secrets[project], project, 5)
        run_worker_burst(on_cluster)  # migrates (a fresh store: nothing to move), pairs
    finally:
        service.stop()
    for project in projects:
        pk = keys.ProjectKeys(project)
        assert conn.hlen(pk.pair_records) == 5, project
        assert int(conn.hget(pk.stats_total, "pairs")) == 5
    # each project on one primary, and the three on three
    primaries = primaries_of(conn)
    for project in projects:
        holders = [i for i, node in enumerate(primaries) if any(node.scan_iter(match=f"ll:p:{{{project}}}:*"))]
        assert len(holders) == 1, (project, holders)
    assert len({node_of(conn, p) for p in projects}) == 3
    assert not [k for k in redis.Redis.from_url(on_cluster.queue_redis_url).scan_iter() if not k.startswith(b"rq:")]

    # an export through the queue, the archive, compaction, and a snapshot of compacted groups
    shop = projects[0]
    assert likeloop_cli("export", "--project", shop, settings=on_cluster).returncode == 0
    run_worker_burst(on_cluster)
    pk = keys.ProjectKeys(shop)
    (record,) = [conn.hgetall(pk.export(e.decode())) for e in conn.zrange(pk.exports, 0, -1)]
    assert record[b"status"] == b"succeeded" and record[b"pairs"] == b"5"
    before = snapshot_rows(conn, s3, on_cluster, shop)[1]
    assert len(before) == 5
    archive_project(conn, s3, on_cluster, shop)
    assert compact_project(conn, s3, on_cluster, shop, older_than_days=0).groups == 5
    assert snapshot_rows(conn, s3, on_cluster, shop)[1] == before
    # new feedback on a compacted answer brings its group back and pairs it again
    service = LiveService(on_cluster, tmp_path / "service2.log")
    try:
        client = likeloop.Client(api_key=secrets[shop], url=service.url, flush_interval=0.05)
        good, bad = answers_of(conn, s3, on_cluster, shop, f"{shop}: question 0?")
        client.dislike(good, user_id="u0")
        client.like(bad, user_id="u0")
        assert client.flush(timeout=30)
        client.shutdown()
        run_worker_burst(on_cluster)
    finally:
        service.stop()
    after = snapshot_rows(conn, s3, on_cluster, shop)[1]
    assert (f"{shop}: question 0?", "a bad answer 0", "a good answer 0") in [r[:3] for r in after]

    # the whole cluster lost: rebuilt from S3
    archive_project(conn, s3, on_cluster, shop)
    for node in primaries_of(conn):
        node.flushall()
    assert likeloop_cli("rebuild", "--project", shop, settings=on_cluster).returncode == 0
    assert snapshot_rows(conn, s3, on_cluster, shop)[1] == after


def primaries_of(conn) -> list[redis.Redis]:
    return [node.redis_connection for node in sorted(conn.get_primaries(), key=lambda n: n.name)]


def answers_of(conn, s3, settings, project: str, prompt: str) -> tuple[str, str]:
    """The chosen and the rejected response id of the pair of ``prompt``, as a snapshot has it."""
    from tests.support import read_jsonl_gz
    from workers.export.run import export_project

    manifest = export_project(conn, s3, settings, project, exports.new_export_id(), "snapshot")
    (data,) = [f for f in manifest["files"] if f["kind"] == "pairs" and f["format"] == "trl"]
    for row in read_jsonl_gz(s3, settings.s3_bucket, data["key"]):
        if row["prompt"] == prompt:
            meta = json.loads(row["metadata"])
            return meta["chosen"]["response_id"], meta["rejected"]["response_id"]
    raise AssertionError(f"no pair of {prompt!r}")


@pytest.fixture
def replicated(tmp_path):
    nodes = stack.start_cluster(tmp_path / "replicated", primaries=3, replicas=1)
    yield nodes
    nodes.stop()


def post_events(url: str, key: str, events: list[dict]) -> int:
    import urllib.error
    import urllib.request

    body = json.dumps({"events": events}).encode()
    request = urllib.request.Request(
        url + "/v1/events", data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_primary_lost_to_failover_costs_503s_or_waits_then_ingest_resumes(
    replicated, queue_server, settings, tmp_path
):
    """Kill the primary that holds a project: while its replica takes over, ingest answers 503
    (the SDK retries such answers) or waits out the takeover in the cluster client's retries,
    then answers 200 again; every event acknowledged before (replicated: the test waits for the
    replica's offset) and after is there."""
    on = dataclasses.replace(settings, redis_url=replicated.url, redis_cluster=True, queue_redis_url=queue_server.url)
    redis.Redis.from_url(queue_server.url).flushall()
    conn = connect(on)
    key = apikeys.create_key(conn, "shop", ("ingest", "read"))[0]
    pk = keys.ProjectKeys("shop")
    service = LiveService(on, tmp_path / "service.log")
    try:

        def batch(i: int) -> list[dict]:
            return [{"type": "response", "response_id": f"r{i}", "prompt": f"Q{i}?", "response": "A", "model": "m"}]

        assert all(post_events(service.url, key, batch(i)) == 200 for i in range(20))
        holder = conn.get_node_from_key(pk.base)
        primary = redis.Redis(host=holder.host, port=holder.port)
        offset = primary.info("replication")["master_repl_offset"]
        (replica_info,) = [v for k, v in primary.info("replication").items() if k.startswith("slave")]
        deadline = time.monotonic() + 10
        while primary.info("replication")["slave0"]["offset"] < offset and time.monotonic() < deadline:
            time.sleep(0.05)
        assert replica_info["state"] == "online"
        (dead,) = [n for n in replicated.nodes if n.url.endswith(f":{holder.port}/0")]
        dead.kill()
        codes, acknowledged = [], []
        deadline = time.monotonic() + 60
        i = 20
        while time.monotonic() < deadline:
            code = post_events(service.url, key, batch(i))
            codes.append(code)
            if code == 200:
                acknowledged.append(i)
                if len(acknowledged) >= 5:
                    break
            i += 1
            time.sleep(0.1)
        # 503 while no node holds the slot, or 200 when the cluster client's own retries outlast
        # the takeover: never another answer, and ingest resumes
        assert set(codes) <= {200, 503}, codes
        assert len(acknowledged) >= 5, codes
    finally:
        service.stop()
    alive = [n.url for n in replicated.nodes if n.alive()][0]
    conn = connect(dataclasses.replace(on, redis_url=alive))
    for n in [*range(20), *acknowledged]:
        assert conn.exists(pk.response(f"r{n}")), n


def test_the_judge_erasure_retention_quality_and_limits_work_on_a_cluster(on_cluster, s3, monkeypatch):
    """The rest of the features on the cluster: the LLM judge (against the local OpenAI-compatible
    server), stats behind the per-key read limit, the quality job, every endpoint the dashboard
    reads, an erasure that leaves the person nowhere in any primary, and retention."""
    from likeloop_server import projects
    from service import create_app
    from tests.llm_server import LlmServer
    from tests.support import auth, feedback, response, store
    from tests.workers.erasure.everywhere import redis_text
    from workers.ai.judge import judge_project
    from workers.erasure.run import erase_project, retain_project
    from workers.pairing.drain import drain
    from workers.quality.job import compute

    limited = dataclasses.replace(on_cluster, read_rate_limit="3/minute")
    conn = connect(limited)
    key = apikeys.create_key(conn, "shop", ("ingest", "read", "admin"))[0]
    events = [
        response("a1", "answer one", prompt="Q1"), response("b1", "answer two correct", prompt="Q1"),
        response("a2", "good", prompt="Q2"), response("b2", "bad", prompt="Q2"),
        feedback("like", "a2", "ann"), feedback("dislike", "b2", "ann"), feedback("like", "a2", "bob"),
    ]  # fmt: skip
    store(conn, limited, *events, project="shop")
    llm = LlmServer()
    monkeypatch.setenv("JUDGE_KEY", "sk-test-judge")
    try:
        projects.update_config(
            conn, "shop", judge={"base_url": llm.url, "model": "judge-1", "api_key_env": "JUDGE_KEY"}
        )
        assert judge_project(conn, "shop")["verdicts"] == 1
    finally:
        llm.close()
    drain(conn, "shop", 100, time.monotonic() + 30, schedule=False, settings=limited)
    pk = keys.ProjectKeys("shop")
    sources = sorted(refs.metadata(r)["source"] for r in conn.hvals(pk.pair_records))
    assert sources == ["judge", "vote"]

    app = create_app(limited, {"TESTING": True}).test_client()
    answers = [app.get("/v1/stats", headers=auth(key)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].get_json()["totals"]["pairs"] == 2

    assert compute(conn, s3, limited, "shop", None, None)
    report = json.loads(conn.hget(pk.quality, "r::"))
    assert report["figures"]["pairs_by_source"]["sources"] == {"judge": 1, "vote": 1}

    # what the dashboard reads, with a key of its own (the first one has used its reads)
    board = apikeys.create_key(conn, "shop", ("read",))[0]
    group = conn.hget(pk.response("a2"), "group").decode()
    for path in ("/v1/quality", "/v1/voters?suspect=true", "/v1/leaderboard"):
        assert app.get(path, headers=auth(board)).status_code == 200, path
    board = apikeys.create_key(conn, "shop", ("read",))[0]
    for path in ("/v1/pipeline", f"/v1/prompts/{group}", "/v1/responses/a2"):
        assert app.get(path, headers=auth(board)).status_code == 200, path
    board = apikeys.create_key(conn, "shop", ("read",))[0]
    for path in ("/v1/comments", "/v1/exports"):
        assert app.get(path, headers=auth(board)).status_code == 200, path

    assert app.post("/v1/erasures", json={"user_id": "ann"}, headers=auth(key)).status_code == 202
    assert erase_project(conn, s3, limited, "shop", wait=False)["votes"] == 2
    drain(conn, "shop", 100, time.monotonic() + 30, schedule=False, settings=limited)
    everything = "\n".join(redis_text(node) for node in primaries_of(conn))
    assert "'good'" in everything and "ann" not in everything  # the data is there, the person is not

    projects.update_config(conn, "shop", retention_days=1)
    assert retain_project(conn, s3, limited, "shop", now=time.time() + 3 * 86400) is not None
    assert not conn.exists(pk.response("a2"))


def test_with_wait_a_batch_is_on_a_replica_before_it_is_acknowledged(replicated, queue_server, settings):
    """LIKELOOP_REDIS_WAIT_REPLICAS=1: a batch is answered 200 only once a replica has it, so a
    primary killed right after the answer loses nothing; asking for more replicas than there are
    answers 503 (the client sends it again; its ids make that a no-op where it was stored)."""
    from service import create_app

    on = dataclasses.replace(
        settings, redis_url=replicated.url, redis_cluster=True, queue_redis_url=queue_server.url,
        redis_wait_replicas=1, redis_wait_timeout_ms=2000,
    )  # fmt: skip
    redis.Redis.from_url(queue_server.url).flushall()
    conn = connect(on)
    key = apikeys.create_key(conn, "shop", ("ingest",))[0]
    app = create_app(on, {"TESTING": True}).test_client()
    pk = keys.ProjectKeys("shop")
    for i in range(10):
        event = {"type": "response", "response_id": f"r{i}", "prompt": f"Q{i}?", "response": "A", "event_id": f"e{i}"}
        answer = app.post("/v1/events", json={"events": [event]}, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.get_json()
    holder = conn.get_node_from_key(pk.base)
    (dead,) = [n for n in replicated.nodes if n.url.endswith(f":{holder.port}/0")]
    dead.kill()  # at once: no waiting for replication
    alive = connect(dataclasses.replace(on, redis_url=[n.url for n in replicated.nodes if n.alive()][0]))
    deadline = time.monotonic() + 30
    while True:
        try:
            found = [bool(alive.exists(pk.response(f"r{i}"))) for i in range(10)]
            break
        except redis.RedisError:
            assert time.monotonic() < deadline, "the replica did not take over"
            time.sleep(0.2)
            alive = connect(dataclasses.replace(on, redis_url=[n.url for n in replicated.nodes if n.alive()][0]))
    assert found == [True] * 10

    too_many = dataclasses.replace(on, redis_url=[n.url for n in replicated.nodes if n.alive()][0],
                                   redis_wait_replicas=2, redis_wait_timeout_ms=50)  # fmt: skip
    event = {"type": "response", "response_id": "r10", "prompt": "Q10?", "response": "A", "event_id": "e10"}
    answer = (
        create_app(too_many, {"TESTING": True})
        .test_client()
        .post("/v1/events", json={"events": [event]}, headers={"Authorization": f"Bearer {key}"})
    )
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "storage_unavailable"
