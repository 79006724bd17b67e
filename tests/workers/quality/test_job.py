"""The quality job and its cache: results computed once and read by every request; the suspect
voters they hold are user data, so erasure and retention reach them (the cache is looked for
everywhere in Redis), and a job that started before an erasure leaves nothing behind."""

import json
import time

from likeloop_server import erasures, keys, projects, quality_cache
from tests.support import P, feedback, make_key, response, store_and_pair
from tests.workers.erasure.everywhere import USER, redis_text
from workers.erasure.run import erase_project, retain_project
from workers.quality.job import compute, current_suspects

PK = keys.ProjectKeys(P)


def clicker_traffic(conn, settings):
    """USER likes 35 answers in 7 seconds (a suspect by both rules); ann votes like a person,
    disliking every other answer and liking two of USER's (so two pairs stand without USER)."""
    now = time.time()
    events = []
    for i in range(35):
        events += [response(f"c{i}a", f"answer {i}", f"Prompt {i}?"), response(f"c{i}b", f"other {i}", f"Prompt {i}?")]
        events += [feedback("like", f"c{i}a", USER, timestamp=now - 30 + i * 0.2)]
        events += [feedback("dislike", f"c{i}b", "ann", timestamp=now - 3600 + i * 100)]
    events += [feedback("like", f"c{i}a", "ann", timestamp=now - 60 - i * 100) for i in (0, 1)]
    store_and_pair(conn, settings, *events)


def test_the_job_caches_the_report_and_the_suspects(conn, s3, settings):
    make_key(conn, P)
    clicker_traffic(conn, settings)
    assert compute(conn, s3, settings, P, None, None)
    report = quality_cache.read(conn, P, quality_cache.range_field(None, None))
    assert report["figures"]["suspect_voters"] == {"value": 1, "pairs_resting_on_them": 33}
    suspects = quality_cache.read(conn, P, quality_cache.SUSPECTS)
    assert [(v["user_id"], v["rules"], v["likes"]) for v in suspects["voters"]] == [(USER, ["same_vote", "rate"], 35)]
    # an export reuses them while they are recent, and computes them again when they are not
    found, at = current_suspects(conn, s3, settings, P)
    assert set(found) == {USER} and at == suspects["computed_at"]
    _, later = current_suspects(conn, s3, settings, P, max_age_s=0)
    assert later > at
    assert 0 < conn.ttl(PK.quality) <= 86400


def test_the_cache_keeps_a_bounded_number_of_ranges(conn, s3, settings):
    make_key(conn, P)
    gen = quality_cache.generation(conn, P)
    for day in range(1, 30):
        assert quality_cache.write(conn, P, quality_cache.range_field(f"2026-01-{day:02d}", None), {"n": day}, gen)
    fields = conn.hkeys(PK.quality)
    assert len(fields) <= quality_cache.MAX_RANGES and b"r:2026-01-29:" in fields


def test_erasure_takes_the_person_out_of_the_cached_results(conn, s3, settings):
    make_key(conn, P)
    clicker_traffic(conn, settings)
    compute(conn, s3, settings, P, None, None)
    assert USER in redis_text(conn)
    started_before = quality_cache.generation(conn, P)  # a job running while the erasure runs
    erasures.request_erasure(conn, settings.secret_key, P, user_id=USER)
    erase_project(conn, s3, settings, P, wait=False)
    assert USER not in redis_text(conn), "everywhere in Redis, the quality cache included"
    stale = {"computed_at": time.time(), "rules": {}, "voters": [{"user_id": USER}]}
    assert not quality_cache.write(conn, P, quality_cache.SUSPECTS, stale, started_before)
    assert not conn.exists(PK.quality)
    # computed again, the person is nowhere: their votes are gone from every store
    compute(conn, s3, settings, P, None, None)
    assert json.loads(conn.hget(PK.quality, quality_cache.SUSPECTS))["voters"] == []


def test_retention_drops_the_cached_results(conn, s3, settings):
    make_key(conn, P)
    projects.update_config(conn, P, retention_days=30)
    clicker_traffic(conn, settings)
    compute(conn, s3, settings, P, None, None)
    assert conn.exists(PK.quality)
    retain_project(conn, s3, settings, P)
    assert not conn.exists(PK.quality)
