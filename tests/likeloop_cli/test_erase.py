"""``likeloop erase`` as an operator runs it: with a worker (--wait) and in its own process
(--inline); it prints the request's record, with keyed hashes and counts, never the ids."""

import json

from likeloop_server import erasures, keys
from tests.support import P, feedback, likeloop_cli, make_key, response, running_worker, store_and_pair, vote_of


def test_erase_a_user_with_a_worker_and_a_response_inline(conn, s3, settings):
    make_key(conn, P)
    store_and_pair(
        conn,
        settings,
        response("r-zed", "zed's answer", "Q?", user_id="zed-cli"),
        response("r-ann", "ann's answer", "Q?", user_id="ann"),
        feedback("like", "r-ann", "zed-cli"),
        feedback("dislike", "r-zed", "bob"),
    )
    pk = keys.ProjectKeys(P)
    with running_worker(settings):
        done = likeloop_cli(
            "erase", "--project", P, "--user", "zed-cli", "--wait", "--timeout", "120", settings=settings
        )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "done" and "zed-cli" not in done.stdout
    assert record["subjects"] == [erasures.subject_hash(settings.secret_key, P, "u", "zed-cli")]
    assert not conn.exists(pk.response("r-zed")) and vote_of(conn, pk, "r-ann", "zed-cli") is None

    inline = likeloop_cli("erase", "--project", P, "--response", "r-ann", "--inline", settings=settings)
    assert inline.returncode == 0, inline.stderr
    assert json.loads(inline.stdout)["counts"]["responses"] == 1 and not conn.exists(pk.response("r-ann"))
    missing = likeloop_cli("erase", "--project", "nope", "--user", "x", settings=settings)
    assert missing.returncode != 0 and "nope" in missing.stderr


def test_project_sets_redaction_and_retention_and_refuses_a_bad_pattern(conn, s3, settings):
    make_key(conn, P)
    setting = '{"builtin": ["email", "card"], "patterns": ["(?i)order #[0-9]+"]}'
    done = likeloop_cli("project", "--project", P, "--redact", setting, "--retention-days", "30", settings=settings)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["redact"] == json.loads(setting) and shown["retention_days"] == 30
    bad = likeloop_cli("project", "--project", P, "--redact", '{"patterns": ["(a)\\\\1"]}', settings=settings)
    assert bad.returncode != 0 and "redact.patterns[0]" in bad.stderr and "backreferences" in bad.stderr
    none = likeloop_cli("retention", "--project", P, settings=settings)
    assert none.returncode == 0, none.stderr  # 30 days kept: nothing that old, nothing removed
    off = likeloop_cli("project", "--project", P, "--retention-days", "0", settings=settings)
    assert off.returncode == 0
    refused = likeloop_cli("retention", "--project", P, settings=settings)
    assert refused.returncode != 0 and "keeps everything" in refused.stderr


def test_an_unreachable_s3_is_said_plainly(conn, settings):
    from dataclasses import replace

    make_key(conn, P)
    nowhere = replace(settings, s3_endpoint="http://127.0.0.1:9")
    failed = likeloop_cli("retention", "--project", P, "--days", "1", settings=nowhere)
    assert failed.returncode == 1 and failed.stderr.startswith("error: S3:") and "Traceback" not in failed.stderr
