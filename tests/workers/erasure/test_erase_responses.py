"""Erasing responses by id, and what a replayed SDK spool does after an erasure. Real Redis, real
S3, the real SDK against ``likeloop serve``."""

import time

import likeloop

from likeloop_server import apikeys, erasures, exports, keys
from tests.support import P, auth, feedback, group_pair_ids, make_key, response, store_and_pair, vote_of
from tests.workers.erasure.everywhere import redis_text, s3_texts
from tests.workers.history import pair_all
from workers.archive.run import archive_project
from workers.erasure.run import erase_project
from workers.export.run import export_project
from workers.rebuild import rebuild_project

PK = keys.ProjectKeys(P)
GONE = "resp-gone-7c2e"  # unique enough that any occurrence is the erased response's
GONE_TEXT = "GONETEXT answer"


def test_erasing_a_response_takes_it_and_all_feedback_on_it_everywhere(conn, client, s3, settings):
    secret, _ = apikeys.create_key(conn, P, ("ingest", "read", "admin"))
    store_and_pair(
        conn,
        settings,
        response(GONE, GONE_TEXT, "Which?", user_id="ann"),
        response("kept-1", "kept answer", "Which?", user_id="ann"),
        feedback("like", GONE, "bob"),
        feedback("dislike", "kept-1", "bob"),
        feedback("comment", GONE, "cy", text="GONECOMMENT about it"),
        {"type": "comparison", "response_id": GONE, "other_response_id": "kept-1", "choice": "a", "user_id": "dee"},
        {"type": "ranking", "response_ids": ["kept-1", GONE], "user_id": "eve"},
        response("kept-2", "another", "Other?", user_id="ann"),
        response("kept-3", "and another", "Other?", user_id="bob"),
        feedback("like", "kept-2", "bob"),
        feedback("dislike", "kept-3", "ann"),
    )
    pair_all(conn, settings)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    archive_project(conn, s3, settings, P)
    pairs_of_other = set(group_pair_ids(conn, PK, conn.hget(PK.response("kept-2"), "group").decode()))

    erasure_id = erasures.request_erasure(conn, settings.secret_key, P, response_ids=[GONE])
    counts = erase_project(conn, s3, settings, P, wait=False)
    assert counts["responses"] == 1 and counts["archive_rows"] >= 5, counts
    for where, text in [("redis", redis_text(conn)), *s3_texts(s3, settings)]:
        for marker in (GONE, GONE_TEXT, "GONECOMMENT"):
            assert marker not in text, (where, marker)
    record = erasures.get_erasure(conn, P, erasure_id)
    assert record["status"] == "done" and GONE not in str(record)
    # the rest stays: kept-1 and its dislike, the other prompt's pair
    assert vote_of(conn, PK, "kept-1", "bob") is not None
    assert set(group_pair_ids(conn, PK, conn.hget(PK.response("kept-2"), "group").decode())) == pairs_of_other
    # feedback about the erased response is refused from now on, and after a rebuild
    late = client.post("/v1/events", json={"events": [feedback("like", GONE, "fay")]}, headers=auth(secret))
    assert late.get_json()["results"][0]["status"] == "erased"
    conn.flushall()
    rebuild_project(conn, s3, settings, P)
    after = redis_text(conn)
    assert GONE not in after and erasures.subject_hash(settings.secret_key, P, "r", GONE) in after
    assert not conn.exists(PK.response(GONE)) and conn.exists(PK.response("kept-1"))


def test_a_replayed_spool_does_not_bring_an_erased_user_back(live_service, conn, s3, settings, tmp_path):
    key = make_key(conn, P)
    spool = tmp_path / "spool"
    # an outage: the SDK keeps zed's events on disk
    offline = likeloop.Client(api_key=key, url="http://127.0.0.1:9", spool_dir=spool, flush_interval=60)
    rid = offline.log(prompt="SPOOLPROMPT?", response="spooled answer", user_id="zed-spool")
    offline.like(rid, user_id="zed-spool")
    offline.shutdown(timeout=5)
    assert offline.stats()["spooled"] == 2
    time.sleep(0.01)
    erasures.request_erasure(conn, settings.secret_key, P, user_id="zed-spool")
    erase_project(conn, s3, settings, P, wait=False)
    # back online: the spool is replayed, and refused
    online = likeloop.Client(api_key=key, url=live_service.url, spool_dir=spool, flush_interval=0.05)
    try:
        deadline = time.monotonic() + 20
        while list(spool.glob("*.batch")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(spool.glob("*.batch")) == []
        assert online.stats()["failed"] == 0
    finally:
        online.shutdown(timeout=5)
    assert "zed-spool" not in redis_text(conn) and "SPOOLPROMPT" not in redis_text(conn)
    # zed's next event is new data
    later = likeloop.Client(api_key=key, url=live_service.url, sync=True)
    later.log(prompt="new prompt", response="new answer", user_id="zed-spool")
    assert "zed-spool" in redis_text(conn)


def test_without_an_archive_every_group_in_redis_is_looked_at(conn, s3, settings):
    from dataclasses import replace

    no_archive = replace(settings, archive=False)
    store_and_pair(
        conn,
        no_archive,
        response("n1", "NOARCHIVE answer", "Here?", user_id="zed-local"),
        response("n2", "other answer", "Here?", user_id="ann"),
        feedback("like", "n2", "zed-local"),
        feedback("dislike", "n1", "bob"),
    )
    erasures.request_erasure(conn, settings.secret_key, P, user_id="zed-local")
    counts = erase_project(conn, s3, no_archive, P, wait=False)
    assert counts["responses"] == 1 and counts["votes"] == 1, counts
    text = redis_text(conn)
    assert "zed-local" not in text and "NOARCHIVE" not in text and conn.exists(PK.response("n2"))
