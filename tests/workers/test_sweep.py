"""A cron job over every project runs each on its own: one project's failure is recorded for it
and the others still run."""

import logging

from likeloop_server import exports, keys
from tests.support import make_key
from workers import jobs
from workers.sweep import each_project


def test_one_projects_failure_is_recorded_and_the_rest_run(caplog):
    def run(project):
        if project == "b":
            raise RuntimeError("its data is odd")
        return project.upper()

    with caplog.at_level(logging.ERROR):
        assert each_project("a test job", ["a", "b", "c"], run) == {
            "a": "A",
            "b": {"error": "RuntimeError: its data is odd"},
            "c": "C",
        }
    assert "a test job of project b failed" in caplog.text


def test_the_nightly_export_skips_a_project_whose_settings_cannot_be_read(conn):
    for project in ("broken", "good"):
        make_key(conn, project)
    conn.hset(keys.ProjectKeys("broken").config, "judge", "{not json")  # as no version writes it
    (export_id,) = jobs.export_all_projects(conn)
    assert [e["id"] for e in exports.list_exports(conn, "good")] == [export_id]
    assert exports.list_exports(conn, "broken") == []
