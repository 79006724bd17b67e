"""The whole pipeline on real parts: SDK -> service over HTTP (gunicorn) -> Redis -> RQ worker
(pairing) -> export job -> objects in a real S3 server (SeaweedFS), read back and checked."""

import json
import urllib.request
from collections import Counter

import likeloop

from tests.support import likeloop_cli, make_key, read_jsonl_gz, run_worker_burst

# prompt -> {answer text: {user: +1 like / -1 dislike}}; later entries of a user replace earlier ones.
SCRIPT = {
    "What is the capital of France?": {
        "Paris.": {"u1": 1, "u2": 1, "u3": -1},
        "Lyon.": {"u1": -1, "u2": -1},
        "France has no capital.": {"u3": -1},
    },
    "Write a haiku about rain.": {
        "Soft rain on the roof / ...": {"u1": 1},
        "Rain is wet.": {"u2": -1, "u3": -1},
        "Here is a limerick instead": {"u1": -1, "u2": 1},  # tie: no label
    },
    "Summarise this article.": {
        "A short summary.": {"u1": 1, "u2": 1},
        "A long rambling summary.": {"u1": -1},
        "No.": {"u2": -1, "u3": -1},
    },
    "Say hello.": {  # only likes: no pair
        "Hello!": {"u1": 1},
        "Hi.": {"u2": 1},
    },
}
FLIPS = [("Summarise this article.", "A long rambling summary.", "u1", 1)]  # u1 changes a dislike to a like


def final_votes():
    votes = {p: {a: dict(v) for a, v in answers.items()} for p, answers in SCRIPT.items()}
    for prompt, answer, user, value in FLIPS:
        votes[prompt][answer][user] = value
    return votes


def expected_pairs():
    pairs = set()
    for prompt, answers in final_votes().items():
        scores = {a: sum(v.values()) for a, v in answers.items()}
        for c, cs in scores.items():
            for r, rs in scores.items():
                if cs > 0 and rs < 0:
                    pairs.add((prompt, c, r))
    return pairs


def api_get(url, key):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


def test_thumbs_up_to_dataset_in_s3(live_service, conn, s3, settings):
    key = make_key(conn, "acme")
    ll = likeloop.Client(api_key=key, url=live_service.url, flush_interval=0.05)
    ids = {}
    for prompt, answers in SCRIPT.items():
        for answer in answers:
            ids[(prompt, answer)] = ll.log(prompt=prompt, response=answer, model=f"model-{len(answer) % 2}")
    for prompt, answers in SCRIPT.items():
        for answer, votes in answers.items():
            for user, value in votes.items():
                (ll.like if value > 0 else ll.dislike)(ids[(prompt, answer)], user_id=user)
    for prompt, answer, user, value in FLIPS:
        (ll.like if value > 0 else ll.dislike)(ids[(prompt, answer)], user_id=user)
    ll.comment(ids[("Say hello.", "Hi.")], "friendly")
    assert ll.flush(15) and ll.stats()["failed"] == 0 and ll.stats()["rejected"] == 0
    ll.shutdown()

    run_worker_burst(settings)  # pairing jobs
    queued = likeloop_cli("export", "--project", "acme", settings=settings)
    assert queued.returncode == 0, queued.stderr
    export_id = json.loads(queued.stdout)["id"]
    run_worker_burst(settings)  # the export job

    record = api_get(f"{live_service.url}/v1/exports/{export_id}", key)
    assert record["status"] == "succeeded", record
    bucket, manifest_key = record["manifest"].removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    rows = []
    for f in [f for f in manifest["files"] if f["kind"] == "pairs"]:
        rows += read_jsonl_gz(s3, bucket, f["key"])
    got = Counter((r["prompt"], r["chosen"], r["rejected"]) for r in rows)
    assert set(got) == expected_pairs()
    assert max(got.values()) == 1  # every expected pair exactly once
    assert manifest["counts"]["pairs"] == len(expected_pairs()) == 5
    # The export's record sums up its objects as its manifest lists them.
    assert record["files"] == len(manifest["files"]) and record["bytes"] == sum(f["bytes"] for f in manifest["files"])
    assert record["pairs"] == 5 and record["kto"] == manifest["counts"]["kto"]

    # The stats endpoint agrees with what was sent.
    votes = final_votes()
    all_votes = [v for answers in votes.values() for per_user in answers.values() for v in per_user.values()]
    stats = api_get(f"{live_service.url}/v1/stats", key)["totals"]
    assert stats["responses"] == sum(len(a) for a in SCRIPT.values())
    assert stats["likes"] == all_votes.count(1)
    assert stats["dislikes"] == all_votes.count(-1)
    assert stats["comments"] == 1
    assert stats["pairs"] == 5 and stats["pairs_exported"] == 5

    # A second export finds nothing new.
    again = likeloop_cli("export", "--project", "acme", "--inline", settings=settings)
    assert again.returncode == 0, again.stderr
    record = json.loads(again.stdout)  # the finished record, as --wait prints it, and in the history
    assert (record["status"], record["pairs"], record["kto"], record["retractions"]) == ("succeeded", 0, 0, 0)
    assert record["manifest"].startswith("s3://") and record["trigger"] == "cli"
    listed = api_get(f"{live_service.url}/v1/exports", key)["exports"]
    assert listed[0]["id"] == record["id"]
