"""Per-project settings over the API: read, change, and a new strategy re-pairs the groups."""

from rq import Queue

from likeloop_server import keys
from likeloop_server.queues import PAIRING_QUEUE
from tests.support import auth, make_key


def test_settings_can_be_read_and_changed(client, conn):
    admin = make_key(conn, "acme")
    assert client.get("/v1/project", headers=auth(admin)).get_json() == {
        "project": "acme",
        "strategy": "all",
        "formats": ["trl"],
        "parquet": False,
        "test_ratio": 0.0,
        "nightly_mode": "incremental",
        "stats_metadata_keys": [],
        "retention_days": 0,
        "redact": {"builtin": [], "patterns": []},
        "judge": None,
        "reference": None,
        "exclude_suspect_voters": False,
        "min_voters": 0,
        "min_margin": 0.0,
        "export_quality": True,
    }
    changed = client.patch(
        "/v1/project", json={"formats": ["openai", "trl-chat"], "parquet": True, "test_ratio": 0.1}, headers=auth(admin)
    )
    assert changed.status_code == 200
    assert changed.get_json()["formats"] == ["openai", "trl-chat"] and changed.get_json()["test_ratio"] == 0.1
    read_key = make_key(conn, "acme", "read")
    read_back = client.get("/v1/project", headers=auth(read_key)).get_json()
    assert (read_back["formats"], read_back["parquet"], read_back["test_ratio"]) == (["openai", "trl-chat"], True, 0.1)
    assert read_back["strategy"] == "all"  # what the change did not name is kept
    filters = {"exclude_suspect_voters": True, "min_voters": 2, "min_margin": 1.5}
    assert client.patch("/v1/project", json=filters, headers=auth(admin)).status_code == 200
    read_back = client.get("/v1/project", headers=auth(read_key)).get_json()
    assert {k: read_back[k] for k in filters} == filters and read_back["formats"] == ["openai", "trl-chat"]
    for bad, field in (({"min_voters": -1}, "min_voters"), ({"min_margin": "x"}, "min_margin"),
                       ({"exclude_suspect_voters": "maybe"}, "exclude_suspect_voters")):  # fmt: skip
        refused = client.patch("/v1/project", json=bad, headers=auth(admin))
        assert refused.status_code == 400 and refused.get_json()["error"]["field"] == field, refused.get_json()
    refused = client.post("/v1/exports", json={"mode": "incremental", "min_voters": 2}, headers=auth(admin))
    assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "mode"
    accepted = client.post("/v1/exports", json={"mode": "snapshot", "min_voters": 2}, headers=auth(admin))
    assert accepted.status_code == 202


def test_an_admin_key_follows_the_export_it_started(client, conn):
    admin_only = make_key(conn, "acme", "admin")
    started = client.post("/v1/exports", json={}, headers=auth(admin_only))
    assert started.status_code == 202
    export_id = started.get_json()["id"]
    status = client.get(f"/v1/exports/{export_id}", headers=auth(admin_only))
    assert status.status_code == 200 and status.get_json()["status"] == "queued"
    listed = client.get("/v1/exports", headers=auth(admin_only)).get_json()["exports"]
    assert [e["id"] for e in listed] == [export_id]
    assert client.get("/v1/project", headers=auth(admin_only)).status_code == 200
    # still no reads of the data itself
    assert client.get("/v1/stats", headers=auth(admin_only)).status_code == 403


def test_bad_settings_are_refused_by_name(client, conn):
    admin = make_key(conn, "acme")
    for body, field in (
        ({"strategy": "random"}, "strategy"),
        ({"formats": ["csv"]}, "formats"),
        ({"test_ratio": 1.0}, "test_ratio"),
        ({"nightly_mode": "hourly"}, "nightly_mode"),
        ({"stats_metadata_keys": ["a,b"]}, "stats_metadata_keys"),
        ({"stats_metadata_keys": [f"k{i}" for i in range(11)]}, "stats_metadata_keys"),
        ({"retention_days": -1}, "retention_days"),
        ({"retention_days": 1.5}, "retention_days"),
        ({"redact": {"builtin": ["ssn"]}}, "redact.builtin"),
        ({"redact": {"patterns": ["(?<=a)b"]}}, "redact.patterns[0]"),
        ({"judge": {"base_url": "ftp://x", "model": "m", "api_key_env": "K"}}, "judge.base_url"),
        ({"judge": {"base_url": "http://x", "model": "m", "api_key_env": "sk-live-123"}}, "judge.api_key_env"),
        ({"judge": {"base_url": "http://x", "model": "m", "api_key_env": "K", "sample_rate": 2}}, "judge.sample_rate"),
        (
            {"judge": {"base_url": "http://x", "model": "m", "api_key_env": "K", "template": "no slots"}},
            "judge.template",
        ),
    ):
        resp = client.patch("/v1/project", json=body, headers=auth(admin))
        assert resp.status_code == 400 and resp.get_json()["error"]["field"].startswith(field)
    read_only = make_key(conn, "acme", "read")
    assert client.patch("/v1/project", json={"parquet": True}, headers=auth(read_only)).status_code == 403


def test_a_new_strategy_re_pairs_every_group(client, conn):
    admin = make_key(conn, "acme")
    events = [
        {"type": "response", "response_id": f"r{i}", "prompt": f"Q{i % 3}", "response": f"A{i}"} for i in range(6)
    ]
    client.post("/v1/events", json={"events": events}, headers=auth(admin))
    Queue(PAIRING_QUEUE, connection=conn).empty()
    client.patch("/v1/project", json={"strategy": "best_worst"}, headers=auth(admin))
    assert conn.zcard(keys.ProjectKeys("acme").dirty) == 3  # every group, drained by one job
    assert Queue(PAIRING_QUEUE, connection=conn).count == 1


def test_the_quality_figures_can_be_turned_off_for_the_project_and_asked_for_by_a_run(client, conn):
    from likeloop_server.queues import EXPORT_QUEUE, queue

    admin = make_key(conn, "acme")
    assert client.get("/v1/project", headers=auth(admin)).get_json()["export_quality"] is True
    changed = client.patch("/v1/project", json={"export_quality": False}, headers=auth(admin))
    assert changed.status_code == 200 and changed.get_json()["export_quality"] is False
    assert client.get("/v1/project", headers=auth(admin)).get_json()["export_quality"] is False
    refused = client.patch("/v1/project", json={"export_quality": "maybe"}, headers=auth(admin))
    assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "export_quality"
    refused = client.post("/v1/exports", json={"mode": "snapshot", "quality": "maybe"}, headers=auth(admin))
    assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "quality"
    # a run's word goes to its job (the worker's export_project: tests/workers/export)
    assert (
        client.post("/v1/exports", json={"mode": "snapshot", "quality": True}, headers=auth(admin)).status_code == 202
    )
    assert client.post("/v1/exports", json={"mode": "incremental"}, headers=auth(admin)).status_code == 202
    jobs = {job.args[2]: job.args[7] for job in queue(EXPORT_QUEUE, conn).jobs}
    assert jobs == {"snapshot": True, "incremental": None}  # None: the project's setting, read when it runs
