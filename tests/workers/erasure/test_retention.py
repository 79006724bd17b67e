"""Retention: data stamped before the cut leaves Redis, the archive, compacted snapshots and past
exports, as an erasure would take it; aggregate counters without a user id stay, and newer data
is whole. Real Redis, real S3; the CLI as a user runs it."""

import json
import time

from likeloop_server import exports, keys, projects
from likeloop_server.erasures import ledger
from tests.support import P, feedback, likeloop_cli, make_key, response, store_and_pair
from tests.workers.erasure.everywhere import USER, redis_text, s3_texts
from tests.workers.erasure.test_erase import zed_traffic
from tests.workers.history import pair_all
from workers.archive.run import archive_project
from workers.compaction.compact import compact_project
from workers.erasure.run import retain_project
from workers.export.run import export_project

PK = keys.ProjectKeys(P)
TEXTS = ("ZEDPROMPT", "ZEDANSWER", "ZEDCOMMENT", "answer a1", "answer b1", "other good", "other bad", USER, "ann")


def test_retention_of_zero_days_takes_everything_stamped_before_now(conn, s3, settings):
    make_key(conn, P)
    projects.update_config(conn, P, formats=("trl", "openai", "kto"), parquet=True)
    zed_traffic(conn, settings)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot")
    archive_project(conn, s3, settings, P)
    compact_project(conn, s3, settings, P, older_than_days=0)
    likes_before = int(conn.hget(PK.stats_total, "likes"))
    time.sleep(0.01)

    result = likeloop_cli("retention", "--project", P, "--days", "0", settings=settings)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert counts["archive_rows"] > 20 and counts["export_rows_dropped"] > 0, counts
    found = [("redis", redis_text(conn)), *s3_texts(s3, settings)]
    assert [(where, t) for where, text in found for t in TEXTS if t in text] == []
    # what carries no user id stays; no ledger: data gone by age is not refused when it comes again
    assert int(conn.hget(PK.stats_total, "likes")) == likes_before
    assert not [k for k in conn.hkeys(PK.stats_total) if b"|u:" in k]
    assert ledger(conn, P) == {}
    assert conn.hlen(PK.pair_records) == 0 and conn.zcard(PK.group_changed) == 0


def test_retention_keeps_what_is_newer_than_the_cut(conn, s3, settings):
    make_key(conn, P)
    old = time.time() - 10 * 86400
    store_and_pair(
        conn,
        settings,
        response("old-1", "OLDTEXT good", "Old?", user_id="ann", timestamp=old),
        response("old-2", "OLDTEXT bad", "Old?", user_id="bob", timestamp=old),
        feedback("like", "old-1", "cy", timestamp=old),
        feedback("dislike", "old-2", "cy", timestamp=old),
        response("new-1", "fresh good", "New?", user_id="ann"),
        response("new-2", "fresh bad", "New?", user_id="bob"),
        feedback("like", "new-1", "cy"),
        feedback("dislike", "new-2", "cy"),
        # a new vote on an old response: the response goes, and everything about it
        feedback("comment", "old-1", "dee", text="said lately"),
    )
    pair_all(conn, settings)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    archive_project(conn, s3, settings, P)
    projects.update_config(conn, P, retention_days=5)

    counts = retain_project(conn, s3, settings, P)
    assert counts is not None and counts["responses"] == 2, counts
    texts = [("redis", redis_text(conn)), *s3_texts(s3, settings)]
    assert [where for where, text in texts if "OLDTEXT" in text or "said lately" in text] == []
    assert conn.hget(PK.response("new-1"), "response") == b"fresh good"
    assert conn.hlen(PK.pair_records) == 1
    assert "fresh good" in " ".join(text for _, text in texts)
    # a project without a retention keeps everything
    projects.update_config(conn, P, retention_days=0)
    assert retain_project(conn, s3, settings, P) is None
