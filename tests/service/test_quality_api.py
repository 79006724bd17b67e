"""GET /v1/quality and GET /v1/voters: a request never computes; it queues the project's one
quality job and answers 202 until a real worker has cached the result, then 200."""

from likeloop_server import keys
from tests.support import P, auth, make_key, run_worker_burst, store_and_pair
from tests.workers.quality.test_report import bot_and_its_groups, honest


def test_the_report_and_the_suspects_come_from_the_job(client, conn, s3, settings):
    key = make_key(conn, P)
    store_and_pair(conn, settings, *honest(), *bot_and_its_groups())
    first = client.get("/v1/quality", headers=auth(key))
    assert first.status_code == 202 and first.headers["Retry-After"] == "5"
    assert first.get_json() == {"status": "computing", "queued_now": True, "retry_after": 5, "last": None}
    again = client.get("/v1/voters?suspect=true", headers=auth(key))
    assert again.status_code == 202 and again.get_json()["queued_now"] is False  # one job per project
    assert conn.exists(keys.ProjectKeys(P).quality_job)

    run_worker_burst(settings)
    report = client.get("/v1/quality", headers=auth(key))
    assert report.status_code == 200, report.get_json()
    body = report.get_json()
    assert body["status"] == "ready" and body["since"] is None and body["until"] is None
    assert body["figures"]["pairs_by_source"]["value"] == 43
    assert body["figures"]["suspect_voters"] == {"value": 1, "pairs_resting_on_them": 40}
    voters = client.get("/v1/voters?suspect=true", headers=auth(key)).get_json()
    assert voters["count"] == 1 and voters["voters"] == [
        {"user_id": "bot", "rules": ["same_vote", "rate"], "votes": 40, "likes": 40, "dislikes": 0,
         "most_in_a_minute": 40},
    ]  # fmt: skip
    assert not conn.exists(keys.ProjectKeys(P).quality_job)

    # another range is another report: queued, computed, answered
    ranged = client.get("/v1/quality?since=2020-01-01&until=2020-01-02T05", headers=auth(key))
    assert ranged.status_code == 202
    run_worker_burst(settings)
    old = client.get("/v1/quality?since=2020-01-01&until=2020-01-02T05", headers=auth(key)).get_json()
    assert old["since"] == "2020-01-01" and old["figures"]["pairs_by_source"]["value"] == 0


def test_bad_requests_get_a_clear_error(client, conn):
    key = make_key(conn, P)
    reader = make_key(conn, P, "ingest")
    cases = [
        ("/v1/quality?since=yesterday", key, 400, "since"),
        ("/v1/quality?until=2026-13-01", key, 400, "until"),
        ("/v1/quality?since=2026-02-02&until=2026-02-01", key, 400, "until"),
        ("/v1/voters", key, 400, "suspect"),
        ("/v1/voters?suspect=false", key, 400, "suspect"),
        ("/v1/voters?suspect=true&limit=0", key, 400, "limit"),
    ]
    for url, secret, status, field in cases:
        answer = client.get(url, headers=auth(secret))
        assert answer.status_code == status and answer.get_json()["error"]["field"] == field, (url, answer.get_json())
    assert client.get("/v1/quality").status_code == 401
    assert client.get("/v1/voters?suspect=true", headers=auth(reader)).status_code == 403
    assert not conn.exists(keys.ProjectKeys(P).quality_job)  # nothing was queued by a bad request
