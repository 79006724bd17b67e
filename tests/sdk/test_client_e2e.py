"""The SDK against the real service over HTTP (gunicorn, real Redis)."""

import likeloop

from likeloop_cli.stack import free_port
from tests.support import LiveService, make_key


def test_logged_responses_and_feedback_reach_the_service(live_service, conn):
    import json
    import urllib.request

    key = make_key(conn, "acme")
    ll = likeloop.Client(api_key=key, url=live_service.url, flush_interval=0.05)
    rid = ll.log(prompt="What is 2+2?", response="4", model="m1", metadata={"route": "math"})
    ll.like(rid, user_id="u1")
    ll.rate(rid, 5, user_id="u2")
    ll.comment(rid, "short and right")
    ll.correct(rid, "2+2 is 4.")
    assert ll.flush(10)
    assert ll.stats()["sent"] == 5 and ll.stats()["failed"] == 0
    req = urllib.request.Request(f"{live_service.url}/v1/responses/{rid}", headers={"Authorization": f"Bearer {key}"})
    body = json.loads(urllib.request.urlopen(req, timeout=5).read())
    assert body["metadata"] == {"route": "math"}
    fb = body["feedback"]
    assert fb["likes"] == 1 and fb["ratings"] == [{"value": 5, "scale": 5}]
    assert fb["comments"][0]["text"] == "short and right" and fb["correction"] == "2+2 is 4."
    ll.shutdown()


def test_a_comparison_from_the_sdk_becomes_an_exported_pair(live_service, conn, settings, s3):
    import json

    from likeloop_server import exports
    from tests.support import read_jsonl_gz, run_worker_burst

    key = make_key(conn, "acme")
    ll = likeloop.Client(api_key=key, url=live_service.url, flush_interval=0.05)
    a = ll.log(prompt="Which is the capital of Australia?", response="Canberra.", model="m1")
    b = ll.log(prompt="Which is the capital of Australia?", response="Sydney.", model="m2")
    ll.like(b, user_id="fan-of-sydney")  # votes say b; the users who compared the two say a
    assert ll.compare(a, b, choice="a", user_id="u1") and ll.compare(b, a, choice="b", user_id="u2")
    assert ll.compare(a, a) is False and ll.compare(a, b, choice="left") is False  # refused in the SDK
    assert ll.flush(10) and ll.stats()["rejected"] == 0
    ll.shutdown()
    run_worker_burst(settings)
    export_id = exports.request_export(conn, "acme", "incremental", trigger="test")
    run_worker_burst(settings)
    record = exports.get_export(conn, "acme", export_id)
    assert record["status"] == "succeeded" and record["pairs"] == 1, record
    bucket, manifest_key = record["manifest"].removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    (pairs,) = [f for f in manifest["files"] if f["kind"] == "pairs"]
    (row,) = read_jsonl_gz(s3, bucket, pairs["key"])
    assert (row["chosen"], row["rejected"]) == ("Canberra.", "Sydney.")
    assert json.loads(row["metadata"])["source"] == "comparison"


def test_events_logged_during_an_outage_arrive_after_recovery(settings, conn, tmp_path):
    key = make_key(conn, "acme")
    port = free_port()
    ll = likeloop.Client(api_key=key, url=f"http://127.0.0.1:{port}", flush_interval=0.05, max_retries=50)
    rids = [ll.log(prompt=f"Q{i}", response="A") for i in range(20)]
    assert ll.flush(0.5) is False  # nothing listens yet
    service = LiveService(settings, tmp_path / "svc.log", port=port)
    try:
        assert ll.flush(60)
        assert ll.stats()["sent"] == 20
        assert all(conn.exists(f"ll:p:{{acme}}:resp:{rid}") for rid in rids)
    finally:
        ll.shutdown(1)
        service.stop()


def test_a_wrong_key_is_reported_not_raised(live_service, conn):
    errors = []
    ll = likeloop.Client(api_key="llk_wrong", url=live_service.url, flush_interval=0.05, on_error=errors.append)
    ll.like("r1")
    assert ll.flush(10)
    assert ll.stats()["failed"] == 1 and errors[0].status == 401
    ll.shutdown()


def test_a_browser_token_works_over_http_for_its_response_only(live_service, conn):
    import json
    import time
    import urllib.error
    import urllib.request

    from likeloop import _token

    key = make_key(conn, "acme")
    ll = likeloop.Client(api_key=key, url=live_service.url, sync=True)
    rid = ll.log(prompt="Q", response="A")
    other = ll.log(prompt="Q2", response="B")

    def post(token: str, response_id: str) -> tuple[int, dict]:
        req = urllib.request.Request(
            f"{live_service.url}/v1/feedback",
            method="POST",
            data=json.dumps({"type": "like", "response_id": response_id}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert post(ll.feedback_token(rid), rid)[0] == 201
    status, body = post(ll.feedback_token(rid), other)
    assert status == 403 and body["error"]["code"] == "token_response_mismatch"
    expired = _token.mint(key, rid, 60, now=time.time() - 3600)
    status, body = post(expired, rid)
    assert status == 401 and body["error"]["code"] == "expired_token"
    ll.shutdown()


def test_a_ranking_from_the_sdk_pairs_every_answer_above_another(live_service, conn, settings):
    import json
    import urllib.request

    from tests.support import run_worker_burst

    key = make_key(conn, "acme")
    ll = likeloop.Client(api_key=key, url=live_service.url, flush_interval=0.05)
    ids = [ll.log(prompt="Name a prime.", response=text, model=f"m{i}") for i, text in enumerate(["7", "9", "1", "4"])]
    assert ll.rank([ids[0], [ids[2], ids[3]], ids[1]], user_id="reviewer")
    assert ll.rank([ids[0]]) is False and ll.rank([ids[0], ids[0]]) is False  # refused in the SDK
    assert ll.flush(10) and ll.stats()["rejected"] == 0
    ll.shutdown()
    run_worker_burst(settings)
    req = urllib.request.Request(f"{live_service.url}/v1/stats", headers={"Authorization": f"Bearer {key}"})
    totals = json.loads(urllib.request.urlopen(req, timeout=5).read())["totals"]
    assert (totals["rankings"], totals["pairs"]) == (1, 5)  # 7 over each; 1 and 4 (equal) over 9
