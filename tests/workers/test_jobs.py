"""The queue's entry points: workers/jobs.py holds every function a job may name, the allow-list
in likeloop_server/queues.py names exactly those, and jobs that older versions queued under the
old module paths still run (RQ keeps a job's function by name in Redis)."""

import inspect

from likeloop_server import exports, keys
from likeloop_server.queues import (
    EXPORT_QUEUE,
    JOB_FUNCTIONS,
    PAIRING_QUEUE,
    RENAMED_JOBS,
    fetch_job,
    queue,
)
from tests.support import P, feedback, make_key, response, run_worker_burst, store
from workers import jobs


def test_the_allow_list_names_exactly_the_entry_points():
    defined = {
        f"workers.jobs.{name}"
        for name, fn in inspect.getmembers(jobs, inspect.isfunction)
        if fn.__module__ == jobs.__name__ and not name.startswith("_")
    }
    assert defined == set(JOB_FUNCTIONS) == {f"workers.jobs.{name}" for name in jobs.__all__}


def test_every_old_name_leads_to_an_entry_point():
    assert set(RENAMED_JOBS.values()) <= JOB_FUNCTIONS
    assert not set(RENAMED_JOBS) & JOB_FUNCTIONS


def test_jobs_queued_under_their_old_names_still_run(conn, settings, s3):
    make_key(conn, P)
    store(
        conn,
        settings,
        response("g", "good", prompt="Old jobs?"),
        response("b", "bad", prompt="Old jobs?"),
        feedback("like", "g", "u1"),
        feedback("dislike", "b", "u1"),
    )
    group = conn.zrange(keys.ProjectKeys(P).dirty, 0, 0)[0].decode()
    export_id = exports.request_export(conn, P, retry=False)
    export_queue, pairing_queue = queue(EXPORT_QUEUE, conn), queue(PAIRING_QUEUE, conn)
    for job_id in export_queue.job_ids + pairing_queue.job_ids:  # queued by this version: replaced below
        fetch_job(conn, job_id).delete()

    args = {
        "workers.pairing.pair_group": (P, group),
        "workers.pairing.drain_project": (P,),
        "workers.pairing.sweep_dirty": (),
        "workers.export.run_export": (P, export_id, "incremental", None, None, None),
        "workers.export.export_all_projects": (),
        "workers.archive.run_archive": (P,),
        "workers.archive.archive_all_projects": (),
        "workers.stats_rollup.roll_up_all_projects": (),
        "workers.compaction.compact_all_projects": (),
        "workers.judge.judge_all_projects": (),
        "workers.reference.reference_all_projects": (),
    }
    assert args.keys() == RENAMED_JOBS.keys()
    queued = {}
    for old, call in args.items():  # one queue, so they run in this order
        queued[old] = export_queue.enqueue(old, args=call, result_ttl=600).id

    run_worker_burst(settings)

    outcome = {old: fetch_job(conn, job_id).get_status() for old, job_id in queued.items()}
    assert outcome == {old: "finished" for old in args}
    assert exports.get_export(conn, P, export_id)["status"] == "succeeded"
    assert fetch_job(conn, queued["workers.pairing.pair_group"]).return_value()["pairs"] == 1
    assert fetch_job(conn, queued["workers.archive.run_archive"]).return_value() > 0
