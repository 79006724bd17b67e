"""Request ids, JSON logs and Prometheus metrics."""

import json
import re
import time
import urllib.request

from tests.support import METRICS_TOKEN, auth, make_key, scrape


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the first sample of ``name`` with these labels, in Prometheus text (0 if none)."""
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if (
            not line.startswith("#")
            and head.split("{")[0] == name
            and all(f'{k}="{v}"' in head for k, v in labels.items())
        ):
            return float(value)
    return 0.0


def test_metrics_count_events_requests_and_pipeline_state(client, key, conn):
    body = {"events": [
        {"type": "response", "response_id": "a", "prompt": "Q", "response": "good"},
        {"type": "response", "response_id": "b", "prompt": "Q", "response": "bad"},
        {"type": "like", "response_id": "a"}, {"type": "dislike", "response_id": "b"},
        {"type": "rating", "response_id": "a", "value": 99},
    ]}  # fmt: skip
    before = scrape(client)
    client.post("/v1/events", json=body, headers=auth(key))
    client.post("/v1/responses", json={"prompt": 1}, headers=auth(key))
    text = scrape(client)
    assert (
        metric(text, "likeloop_events_total", outcome="accepted", reason="")
        - metric(before, "likeloop_events_total", outcome="accepted", reason="")
        == 4
    )

    def added(name, **labels):  # counters are the process's, shared by every test: compare with before
        return metric(text, name, **labels) - metric(before, name, **labels)

    assert added("likeloop_events_total", outcome="rejected", reason="value") == 1
    assert added("likeloop_request_errors_total", code="wrong_type") == 1  # the single event's prompt: 1
    assert added("likeloop_request_duration_seconds_count", endpoint="/v1/events", method="POST", status="207") == 1
    assert added("likeloop_request_duration_seconds_count", endpoint="/v1/responses", method="POST", status="400") == 1
    assert metric(text, "likeloop_queue_depth", queue="likeloop-pairing") == 1  # one dirty group, one job
    assert metric(text, "likeloop_groups_dirty", project="acme") == 1
    # One batch stored something (the invalid single event did not): it waits for the archive.
    assert metric(text, "likeloop_archive_pending_batches", project="acme") == 1
    assert 'likeloop_archive_lag_seconds{project="acme"}' in text
    assert 0 <= metric(text, "likeloop_archive_lag_seconds", project="acme") < 60


def test_request_ids_are_echoed_or_minted(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    minted = client.get("/healthz", headers={"X-Request-ID": "not valid!"})
    assert re.fullmatch(r"[0-9a-f]{32}", minted.headers["X-Request-ID"])


def test_the_served_service_logs_json_lines_with_request_ids_and_merges_worker_metrics(live_service, conn):
    key = make_key(conn, "acme")
    req = urllib.request.Request(f"{live_service.url}/v1/stats", headers={**auth(key), "X-Request-ID": "trace-42"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["X-Request-ID"] == "trace-42"
    # The worker that answered may not be the one scraped: its counts arrive within a second.
    deadline = time.monotonic() + 5
    while True:
        scraping = urllib.request.Request(f"{live_service.url}/metrics", headers=auth(METRICS_TOKEN))
        with urllib.request.urlopen(scraping, timeout=5) as resp:
            text = resp.read().decode()
        name = "likeloop_request_duration_seconds_count"
        count = metric(text, name, endpoint="/v1/stats", method="GET", status="200")
        if count or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert count == 1
    lines = [json.loads(x) for x in live_service.log_path.read_text().splitlines() if x.startswith("{")]
    access = [x for x in lines if x.get("request_id") == "trace-42"]
    assert access and access[0]["path"] == "/v1/stats" and access[0]["status"] == 200
    assert access[0]["project"] == "acme"


def test_rejections_are_labelled_by_field_name_never_by_position(client, key):
    def rejected(text, reason):
        return metric(text, "likeloop_events_total", outcome="rejected", reason=reason)

    events = [["not an object"], {"type": "nope"}, {"type": "like", "response_id": "r1", "value": 3}]
    before = scrape(client)
    client.post("/v1/events", json={"events": events * 3}, headers=auth(key))
    text = scrape(client)
    assert [rejected(text, r) - rejected(before, r) for r in ("event", "type", "value")] == [3, 3, 3]
    assert "events[" not in text
