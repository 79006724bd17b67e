"""The event archive: every stored event in S3 as Parquet, once, read back as readers read it
(pyarrow's dataset API, DuckDB over S3). Real Redis, the bundled S3 server."""

import json
import time
from dataclasses import replace
from urllib.parse import urlparse

import pyarrow.dataset as ds
import pyarrow.fs
import pytest

import workers.archive.run as archive
from likeloop_server import apikeys, keys
from likeloop_server.settings import Settings
from tests.support import P, auth, feedback, likeloop_cli, response, run_worker_burst, store
from workers.archive import state as archive_state
from workers.archive.layout import ArchiveLayout
from workers.archive.rows import SCHEMA, SCHEMA_VERSION
from workers.archive.run import ArchiveBusy, archive_project
from workers.storage.run_lock import ArchiveLock

PK = keys.ProjectKeys(P)


def archived(s3, settings: Settings, project: str = P) -> list[dict]:
    """Every row under the project's events/ prefix, read as a Hive-partitioned Parquet dataset."""
    endpoint = urlparse(settings.s3_endpoint)
    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint.netloc, scheme=endpoint.scheme, access_key="x", secret_key="x", region="us-east-1"
    )
    layout = ArchiveLayout(settings, project)
    base = f"{layout.bucket}/{layout.events}"
    try:
        dataset = ds.dataset(base, filesystem=fs, format="parquet", partitioning="hive")
    except FileNotFoundError:
        return []
    return dataset.to_table().to_pylist()


def commits(s3, settings: Settings) -> list[dict]:
    layout = ArchiveLayout(settings, P)
    listed = s3.list_objects_v2(Bucket=layout.bucket, Prefix=layout.commits).get("Contents", [])
    return [json.loads(s3.get_object(Bucket=layout.bucket, Key=o["Key"])["Body"].read()) for o in listed]


def every_kind() -> list[dict]:
    return [
        response("r1", "Paris.", "Capital of France?", model="m-1", metadata={"plan": "pro"}, user_id="ann"),
        response("r2", "Lyon.", "Capital of France?", model="m-2", event_id="e-r2"),
        feedback("like", "r1", "ann", event_id="e-like"),
        feedback("dislike", "r2", "bob"),
        feedback("rating", "r1", "cy", value=4, scale=5),
        feedback("comment", "r2", "bob", text="wrong city"),
        feedback("correction", "r2", "bob", text="Paris."),
        {"type": "comparison", "response_id": "r1", "other_response_id": "r2", "choice": "a", "user_id": "dee"},
        {"type": "ranking", "response_ids": ["r2", "r1"], "user_id": "eve"},
    ]


def test_every_stored_event_is_archived_once_as_stored(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    before = time.time()
    statuses, _ = store(conn, settings, *every_kind())
    assert set(statuses) == {"accepted"}
    # Retries of a stored response and like: duplicates, stored nothing, archived nothing.
    again, _ = store(conn, settings, response("r2", "Lyon.", "Capital of France?", event_id="e-r2"))
    assert again == ["duplicate"]
    assert conn.xlen(PK.archive_log) == 1  # the batch of retries added no entry

    (run,) = archive_project(conn, s3, settings, P)
    assert run.events == 9 and len(run.parts) == 1
    rows = {(r["type"], r["response_id"]): r for r in archived(s3, settings)}
    assert len(rows) == 9
    r1, r2 = rows[("response", "r1")], rows[("response", "r2")]
    assert (r1["prompt"], r1["response"], r1["model"], json.loads(r1["metadata"])) == (
        "Capital of France?",
        "Paris.",
        "m-1",
        {"plan": "pro"},
    )
    assert r1["group_id"] == r2["group_id"] and r1["group_id"]
    assert r2["event_id"] == "e-r2" and r1["user_id"] == "ann"
    assert rows[("like", "r1")]["event_id"] == "e-like"
    assert (rows[("rating", "r1")]["value"], rows[("rating", "r1")]["scale"]) == (4, 5)
    assert rows[("comment", "r2")]["text"] == "wrong city"
    assert rows[("correction", "r2")]["text"] == "Paris."
    comparison = rows[("comparison", "r1")]
    assert (comparison["other_response_id"], comparison["choice"], comparison["user_id"]) == ("r2", "a", "dee")
    assert rows[("ranking", "r2")]["ranking"] == [["r2"], ["r1"]]
    for row in rows.values():
        assert row["credential"] == "key" and row["status"] == "accepted"
        assert before - 1 <= row["received_at"].timestamp() <= time.time()
        assert row["dt"] == row["received_at"].strftime("%Y-%m-%d")  # the Hive partition
    assert len({r["event_id"] for r in rows.values()}) == 9

    # Committed: the cursor moved, the log is trimmed, the commit record names the part.
    assert conn.xlen(PK.archive_log) == 0 and conn.get(PK.archive_run) is None
    (record,) = commits(s3, settings)
    assert record["version"] == SCHEMA_VERSION and record["events"] == 9
    assert [p["key"] for p in record["parts"]] == [p["key"] for p in run.parts]
    assert conn.get(PK.archive_cursor).decode() == record["end"]
    assert archive_project(conn, s3, settings, P) == []  # nothing new: nothing written


def test_the_parts_carry_the_documented_schema(conn, s3, settings):
    import pyarrow.parquet as pq

    apikeys.create_key(conn, P, ("ingest",))
    store(conn, settings, response("r1"), feedback("like", "r1"))
    (run,) = archive_project(conn, s3, settings, P)
    body = s3.get_object(Bucket=settings.archive_bucket, Key=run.parts[0]["key"])["Body"].read()
    import io

    parquet = pq.ParquetFile(io.BytesIO(body))
    assert parquet.schema_arrow.equals(SCHEMA, check_metadata=False)
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    assert parquet.schema_arrow.metadata[b"likeloop.archive.schema_version"] == str(SCHEMA_VERSION).encode()


def test_feedback_posted_with_a_token_is_archived_as_token_borne(client, conn, s3, settings):
    import likeloop

    secret, _ = apikeys.create_key(conn, P, ("ingest",))
    minting = likeloop.Client(api_key=secret, url="http://127.0.0.1:9", enabled=False)
    assert client.post("/v1/responses", json=response("r1"), headers=auth(secret)).status_code == 201
    token = minting.feedback_token("r1")
    assert client.post("/v1/feedback", json=feedback("like", "r1"), headers=auth(token)).status_code == 201
    archive_project(conn, s3, settings, P)
    rows = {r["type"]: r for r in archived(s3, settings)}
    assert rows["response"]["credential"] == "key"
    assert rows["like"]["credential"] == "token" and rows["like"]["user_id"]


def test_feedback_waiting_for_its_response_is_archived_when_it_lands(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    assert store(conn, settings, feedback("like", "late"))[0] == ["pending"]
    store(conn, settings, response("late"))
    archive_project(conn, s3, settings, P)
    got = sorted((r["type"], r["status"]) for r in archived(s3, settings))
    assert got == [("like", "pending"), ("response", "accepted")]  # the like once, as it came


def test_events_stored_between_runs_go_to_the_next_run(conn, s3, settings, monkeypatch):
    apikeys.create_key(conn, P, ("ingest",))
    monkeypatch.setattr(archive, "RUN_EVENTS", 3)  # a run ends after 3 events: several runs, parts
    for n in range(5):
        store(conn, settings, response(f"a{n}"), feedback("like", f"a{n}"))
    runs = archive_project(conn, s3, settings, P)
    assert [r.events for r in runs] == [4, 4, 2]  # whole batches: a run ends after the one that reaches 3
    store(conn, settings, response("b"))
    (later,) = archive_project(conn, s3, settings, P)
    assert later.start == runs[-1].end and later.events == 1
    ids = [r["response_id"] for r in archived(s3, settings) if r["type"] == "response"]
    assert sorted(ids) == ["a0", "a1", "a2", "a3", "a4", "b"]
    assert len(commits(s3, settings)) == 4


class FailingS3:
    """The S3 client with one kind of request failing, as an outage would make it."""

    def __init__(self, s3, fails_on: str) -> None:
        self._s3, self._fails_on = s3, fails_on

    def __getattr__(self, name):
        attr = getattr(self._s3, name)
        if name != "put_object":
            return attr

        def put_object(**kwargs):
            if self._fails_on in kwargs["Key"]:
                raise ConnectionError(f"S3 is unreachable ({kwargs['Key']})")
            return attr(**kwargs)

        return put_object


def test_a_run_that_dies_after_its_parts_is_redone_without_duplicates(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    store(conn, settings, response("r1"), feedback("like", "r1"))
    with pytest.raises(ConnectionError):
        archive_project(conn, FailingS3(s3, "/_commits/"), settings, P)
    # The part went up, the commit did not: the range waits in Redis, the log is whole.
    assert len(archived(s3, settings)) == 2 and commits(s3, settings) == []
    planned = json.loads(conn.get(PK.archive_run))
    assert conn.xlen(PK.archive_log) == 1 and conn.get(PK.archive_lock) is None
    store(conn, settings, response("r2"))  # arrives before the next run
    runs = archive_project(conn, s3, settings, P)
    assert runs[0].redone and (runs[0].start, runs[0].end) == (planned["start"], planned["end"])
    assert [r.events for r in runs] == [2, 1]
    got = sorted((r["type"], r["response_id"]) for r in archived(s3, settings))
    assert got == [("like", "r1"), ("response", "r1"), ("response", "r2")]
    assert len(commits(s3, settings)) == 2


def test_a_run_whose_upload_fails_leaves_everything_for_the_next(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    store(conn, settings, response("r1"))
    with pytest.raises(ConnectionError):
        archive_project(conn, FailingS3(s3, "/events/"), settings, P)
    assert archived(s3, settings) == [] and conn.xlen(PK.archive_log) == 1
    (run,) = archive_project(conn, s3, settings, P)
    assert run.events == 1 and run.redone
    assert len(archived(s3, settings)) == 1


def test_one_run_per_project_at_a_time(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    store(conn, settings, response("r1"))
    ArchiveLock(conn, PK.archive_lock, "someone-else", 60).acquire()
    with pytest.raises(ArchiveBusy):
        archive_project(conn, s3, settings, P)
    assert conn.xlen(PK.archive_log) == 1


def test_nothing_is_kept_for_the_archive_when_it_is_off(conn, settings):
    apikeys.create_key(conn, P, ("ingest",))
    store(conn, replace(settings, archive=False), response("r1"), feedback("like", "r1"))
    assert conn.exists(PK.archive_log) == 0


def test_likeloop_archive_returns_once_committed_and_fails_loudly(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    store(conn, settings, response("r1"), feedback("like", "r1"))
    unreachable = replace(settings, s3_endpoint="http://127.0.0.1:9")
    failed = likeloop_cli("archive", "--project", P, settings=unreachable)
    assert failed.returncode == 1 and "archive run failed" in failed.stderr
    assert conn.xlen(PK.archive_log) == 1  # nothing lost

    done = likeloop_cli("archive", "--project", P, settings=settings)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["project"] == P and summary["events"] == 2 and len(summary["parts"]) == 1
    assert len(archived(s3, settings)) == 2

    unknown = likeloop_cli("archive", "--project", "nobody", settings=settings)
    assert unknown.returncode == 2 and "nobody" in unknown.stderr


def test_cron_archives_every_project_with_new_events(conn, s3, settings):
    from rq.cron import CronScheduler

    from workers.cron import register_jobs

    for project in (P, "globex"):
        apikeys.create_key(conn, project, ("ingest",))
    store(conn, settings, response("r1"))
    scheduler = CronScheduler(connection=conn)
    register_jobs(scheduler, settings)
    job = {j.name: j for j in scheduler.get_jobs()}["archive"]
    assert job.interval == settings.archive_interval_s == 60
    # acme for its event; globex, with no events, for its state (settings, keys) not yet in S3.
    assert archive.archive_all_projects(conn) == [P, "globex"]
    assert archive.archive_all_projects(conn) == []  # their jobs are queued already
    run_worker_burst(settings)
    assert len(archived(s3, settings)) == 1
    assert conn.get(PK.archive_job) is None
    assert archive.archive_all_projects(conn) == []  # nothing new: nothing queued
    _, key = apikeys.create_key(conn, "globex", ("read",))
    assert archive.archive_all_projects(conn) == ["globex"]  # a new key is state to archive
    run_worker_burst(settings)
    state = json.loads(
        s3.get_object(Bucket=settings.archive_bucket, Key=ArchiveLayout(settings, "globex").state)["Body"].read()
    )
    assert sorted(k["id"] for k in state["keys"]) == sorted(k.id for k in apikeys.list_keys(conn, "globex"))
    assert all("digest" in k and "token_secret" not in k for k in state["keys"]) and key.project == "globex"
    assert state["signature"] == archive_state.signature(state, settings.secret_key)


def test_duckdb_reads_the_archive_in_s3_as_it_is(conn, s3, settings):
    import pathlib

    import duckdb
    import duckdb_extension_httpfs

    apikeys.create_key(conn, P, ("ingest",))
    store(conn, settings, *every_kind())
    archive_project(conn, s3, settings, P)
    # The httpfs extension from its PyPI package: nothing is downloaded.
    ext = next(pathlib.Path(duckdb_extension_httpfs.__file__).parent.glob("extensions/*/httpfs.duckdb_extension"))
    db = duckdb.connect()
    db.sql(f"LOAD '{ext}'")
    endpoint = urlparse(settings.s3_endpoint)
    db.sql(
        "CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'x', REGION 'us-east-1', "
        f"ENDPOINT '{endpoint.netloc}', URL_STYLE 'path', USE_SSL false)"
    )
    layout = ArchiveLayout(settings, P)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    query = f"""
        SELECT type, count(*) AS n FROM read_parquet('s3://{layout.bucket}/{layout.events}*/*.parquet',
            hive_partitioning = true)
        WHERE dt = '{today}' GROUP BY type ORDER BY type"""
    got = dict(db.sql(query).fetchall())
    kinds = ("comment", "comparison", "correction", "dislike", "like", "ranking", "rating")
    assert got == {**dict.fromkeys(kinds, 1), "response": 2}


def test_a_run_killed_while_its_parts_go_up_loses_and_doubles_nothing(conn, s3, settings):
    import signal
    import subprocess
    import sys

    from tests.support import server_env

    apikeys.create_key(conn, P, ("ingest",))
    stored = 0
    for b in range(80):
        batch = [response(f"r{b}-{i}", "an answer " * 20, f"Q{i}") for i in range(500)]
        stored += store(conn, settings, *batch)[0].count("accepted")
    env = {**server_env(settings), "LIKELOOP_ARCHIVE_LOCK_TTL_S": "1"}
    run = subprocess.Popen(
        [sys.executable, "-m", "likeloop_cli", "archive", "--project", P], env=env, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while conn.get(PK.archive_run) is None:  # the range is planned: its parts are going up now
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
        time.sleep(0.001)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert conn.get(PK.archive_run) is not None and conn.xlen(PK.archive_log) == 80  # not committed

    again = likeloop_cli("archive", "--project", P, settings=settings)  # waits out the dead run's lock
    assert again.returncode == 0, again.stderr
    ids = [r["response_id"] for r in archived(s3, settings)]
    assert len(ids) == stored == 40_000 and len(set(ids)) == stored
    assert conn.xlen(PK.archive_log) == 0
