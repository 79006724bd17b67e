"""``likeloop quality`` as an operator runs it: the report as JSON or text, and a clear error for
a bad range."""

import json

from tests.support import P, likeloop_cli, make_key, running_worker, store_and_pair
from tests.workers.quality.test_report import bot_and_its_groups, honest


def test_the_report_as_json_and_as_text(conn, s3, settings):
    make_key(conn, P)
    store_and_pair(conn, settings, *honest(), *bot_and_its_groups())
    as_json = likeloop_cli("quality", "--project", P, "--json", settings=settings)
    assert as_json.returncode == 0, as_json.stderr
    figures = json.loads(as_json.stdout)["figures"]
    assert figures["pairs_by_source"]["value"] == 43 and figures["suspect_voters"]["pairs_resting_on_them"] == 40
    text = likeloop_cli("quality", "--project", P, "--since", "2000-01-01T05", settings=settings)
    assert text.returncode == 0 and "quality of 43 pairs" in text.stdout and "length_bias: 0.9535" in text.stdout
    bad = likeloop_cli("quality", "--project", P, "--since", "last week", settings=settings)
    assert bad.returncode != 0 and "--since: a UTC day YYYY-MM-DD or hour YYYY-MM-DDTHH" in bad.stderr


def test_a_project_and_a_run_can_leave_the_figures_out(conn, s3, settings):
    make_key(conn, P)
    store_and_pair(conn, settings, *honest())
    off = likeloop_cli("project", "--project", P, "--no-export-quality", settings=settings)
    assert off.returncode == 0 and json.loads(off.stdout)["export_quality"] is False, off.stderr
    run = likeloop_cli("export", "--project", P, "--mode", "snapshot", "--inline", settings=settings)
    assert run.returncode == 0, run.stderr
    with running_worker(settings):  # the run's word goes through the queue to a worker's job
        asked = likeloop_cli(
            "export", "--project", P, "--mode", "snapshot", "--quality", "--wait", "--timeout", "60", settings=settings
        )
    assert asked.returncode == 0, asked.stderr
    manifests = [_manifest(s3, settings, json.loads(r.stdout)["manifest"]) for r in (run, asked)]
    assert "figures" not in manifests[0]["quality"] and manifests[1]["quality"]["figures"]["groups"]["value"] == 3


def _manifest(s3, settings, url):
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
