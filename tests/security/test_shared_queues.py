"""One project's admin cannot fill the queues every project shares: at most one queued export per
mode (a new request answers the queued one), a limit on exports an hour (429), and the event
archive on a queue of its own, which a worker takes before exports. Real app, Redis, SeaweedFS and
`likeloop worker`."""

import json
from dataclasses import replace

from likeloop_server import exports, keys
from likeloop_server.queues import ALL_QUEUES, ARCHIVE_QUEUE, EXPORT_QUEUE, queue
from service import create_app
from tests.support import auth, feedback, make_key, response, run_worker_burst, store
from workers.jobs import archive_all_projects


def test_many_requests_queue_one_export_per_mode(client, conn):
    admin = make_key(conn, "acme")
    answers = [client.post("/v1/exports", json={}, headers=auth(admin)) for _ in range(50)]
    assert [a.status_code for a in answers] == [202] + [200] * 49
    assert len({a.get_json()["id"] for a in answers}) == 1
    snapshot = client.post("/v1/exports", json={"mode": "snapshot"}, headers=auth(admin))
    assert snapshot.status_code == 202 and snapshot.get_json()["id"] != answers[0].get_json()["id"]
    assert queue(EXPORT_QUEUE, conn).count == 2
    assert len(exports.list_exports(conn, "acme")) == 2


def test_a_project_past_its_exports_an_hour_gets_429(settings, conn):
    client = create_app(replace(settings, exports_per_hour=3)).test_client()
    admin = make_key(conn, "acme")
    for _ in range(3):
        started = client.post("/v1/exports", json={}, headers=auth(admin))
        assert started.status_code == 202
        exports.update_export(conn, "acme", started.get_json()["id"], status="succeeded")  # as if it ran
    over = client.post("/v1/exports", json={}, headers=auth(admin))
    err = over.get_json()["error"]
    assert (over.status_code, err["code"]) == (429, "rate_limited") and "LIKELOOP_EXPORTS_PER_HOUR" in err["message"]
    assert 1 <= int(over.headers["Retry-After"]) <= 3600
    other = make_key(conn, "globex")  # another project's hour is its own
    assert client.post("/v1/exports", json={}, headers=auth(other)).status_code == 202
    assert len(exports.list_exports(conn, "acme")) == 3


def test_a_queued_name_left_by_a_lost_job_does_not_block_the_next_request(client, conn):
    admin = make_key(conn, "acme")
    first = client.post("/v1/exports", json={}, headers=auth(admin)).get_json()["id"]
    exports.update_export(conn, "acme", first, status="failed")  # its job died
    second = client.post("/v1/exports", json={}, headers=auth(admin))
    assert second.status_code == 202 and second.get_json()["id"] != first
    assert conn.get(keys.ProjectKeys("acme").export_queued("incremental")).decode() == second.get_json()["id"]


def test_archive_runs_have_their_own_queue_taken_before_exports(conn, s3, settings, client):
    assert ALL_QUEUES.index(ARCHIVE_QUEUE) < ALL_QUEUES.index(EXPORT_QUEUE)
    projects = ("acme", "globex", "initech")
    for project in projects:
        key = make_key(conn, project)
        store(conn, settings, response("r1", "A"), feedback("like", "r1", "u1"), project=project)
        client.post("/v1/exports", json={"mode": "snapshot"}, headers=auth(key))
    assert sorted(archive_all_projects(conn)) == sorted(projects)
    assert queue(ARCHIVE_QUEUE, conn).count == 3 and queue(EXPORT_QUEUE, conn).count == 3
    run_worker_burst(settings)
    archived_at = []
    for project in projects:
        prefix = f"{settings.archive_prefix}/{project}/_commits/"
        (commit,) = s3.list_objects_v2(Bucket=settings.archive_bucket, Prefix=prefix)["Contents"]
        body = json.loads(s3.get_object(Bucket=settings.archive_bucket, Key=commit["Key"])["Body"].read())
        archived_at.append(body["committed_at"])
    exported_at = [float(exports.list_exports(conn, p)[0]["started_at"]) for p in projects]
    assert max(archived_at) < min(exported_at)  # every archive run went before the first export
