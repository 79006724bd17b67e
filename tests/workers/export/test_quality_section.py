"""Each export's quality section over exactly its rows, and the filters that leave the doubtful
pairs out, on the real stack: the traffic of tests/workers/quality/test_report.py (43 pairs, 40
of which rest on a bot's likes alone)."""

import gzip
import json
import time

import pytest

from likeloop_server import exports, projects
from likeloop_server.errors import InvalidValue
from tests.support import P, all_rows, make_key, response, store_and_pair
from tests.workers.quality.test_report import NOW, bot_and_its_groups, honest, vote
from workers.archive.run import archive_project
from workers.export.quality import QualitySection
from workers.export.run import export_project
from workers.pairing.drain import drain
from workers.quality.report import range_report


@pytest.fixture
def traffic(conn, s3, settings):
    make_key(conn, P)
    store_and_pair(conn, settings, *honest())
    archive_project(conn, s3, settings, P)
    store_and_pair(conn, settings, *bot_and_its_groups())


def snapshot(conn, s3, settings, **filters):
    return export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot", filters=filters or None)


def chosen_ids(s3, settings, manifest):
    """The chosen response of each trl row the run wrote."""
    ids = []
    for f in manifest["files"]:
        if f["kind"] == "pairs" and f["format"] == "trl":
            body = gzip.decompress(s3.get_object(Bucket=settings.s3_bucket, Key=f["key"])["Body"].read())
            ids += [json.loads(json.loads(line)["metadata"])["chosen"]["response_id"] for line in body.splitlines()]
    return sorted(ids)


def test_the_section_holds_the_figures_of_exactly_the_rows(conn, s3, settings, traffic):
    manifest = snapshot(conn, s3, settings)
    quality = manifest["quality"]
    assert quality["figures"] == range_report(conn, s3, settings, P)["figures"]  # the same 43 pairs
    assert quality["figures"]["suspect_voters"] == {"value": 1, "pairs_resting_on_them": 40}
    assert quality["left_out"] == {"pairs": 0, "by_filter": {}} and not any(quality["filters"].values())
    card = s3.get_object(Bucket=settings.s3_bucket, Key=f"{settings.s3_prefix}/{P}/README.md")["Body"].read().decode()
    assert "## Quality" in card
    assert "| suspect voters (`suspect_voters`) | 1 | pairs_resting_on_them 40 |" in card
    assert "| pairs whose chosen answer is the longer (`length_bias`) | 0.9535 |" in card


def test_excluding_suspect_voters_drops_exactly_the_pairs_resting_on_the_bot(conn, s3, settings, traffic):
    bot_liked = sorted(f"b{i}a" for i in range(40))
    assert chosen_ids(s3, settings, snapshot(conn, s3, settings)) == sorted(["r1a", "r2a", "r3a", *bot_liked])
    filtered = snapshot(conn, s3, settings, exclude_suspect_voters=True)
    assert chosen_ids(s3, settings, filtered) == ["r1a", "r2a", "r3a"]
    q = filtered["quality"]
    assert q["left_out"] == {"pairs": 40, "by_filter": {"exclude_suspect_voters": 40}}
    assert q["figures"]["pairs_by_source"]["value"] == 3
    assert q["figures"]["suspect_voters"]["pairs_resting_on_them"] == 0
    assert q["filters"]["exclude_suspect_voters"] is True
    # nothing is lost: the next snapshot without the filter has them all again
    assert snapshot(conn, s3, settings)["counts"]["pairs"] == 43


def test_min_voters_and_min_margin(conn, s3, settings, traffic):
    # r1 rests on h1, h2, h3; each bot group on the bot and one person; r2 on h1 alone, r3 on h2 alone
    two = snapshot(conn, s3, settings, min_voters=2)
    assert two["counts"]["pairs"] == 41
    assert two["quality"]["left_out"] == {"pairs": 2, "by_filter": {"min_voters": 2}}
    # r1's margin is 3 (scores +1 and -2); every other pair's is 2 (+1 and -1)
    three = snapshot(conn, s3, settings, min_margin=3)
    assert three["counts"]["pairs"] == 1
    assert three["quality"]["left_out"] == {"pairs": 42, "by_filter": {"min_margin": 42}}
    both = snapshot(conn, s3, settings, min_voters=3, exclude_suspect_voters=True)
    assert both["counts"]["pairs"] == 1
    assert both["quality"]["left_out"] == {"pairs": 42, "by_filter": {"exclude_suspect_voters": 40, "min_voters": 42}}


def test_the_projects_defaults_apply_to_its_snapshots_and_a_run_overrides_them(conn, s3, settings, traffic):
    projects.update_config(conn, P, exclude_suspect_voters=True)
    assert snapshot(conn, s3, settings)["counts"]["pairs"] == 3
    assert snapshot(conn, s3, settings, exclude_suspect_voters=False)["counts"]["pairs"] == 43
    # an incremental export ignores the project's snapshot filters, and refuses a run's own
    assert export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")["counts"]["pairs"] == 43
    with pytest.raises(InvalidValue, match="snapshot exports only"):
        export_project(conn, s3, settings, P, exports.new_export_id(), "incremental", filters={"min_voters": 2})


def test_filters_are_checked(conn, traffic):
    for bad in ({"min_voters": -1}, {"min_voters": 10_000}, {"min_margin": float("nan")}, {"min_voters": True}):
        with pytest.raises(InvalidValue):
            projects.update_config(conn, P, **bad)


def test_compacted_groups_count_as_the_rows_they_give(conn, s3, settings, traffic):
    """Groups compacted to the archive are read from their snapshots, filters and figures alike."""
    from workers.compaction.compact import compact_project

    before = snapshot(conn, s3, settings)["quality"]
    # the bot's groups, read whole once the suspects were known, went back to the pairing job
    # (compaction waits for it), which keeps in their digests what they make without the bot
    drain(conn, P, 100, time.monotonic() + 30, schedule=False, settings=settings)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")  # compaction waits for it
    archive_project(conn, s3, settings, P)
    assert compact_project(conn, s3, settings, P, older_than_days=0).groups == 43
    after = snapshot(conn, s3, settings)
    assert after["counts"]["pairs"] == 43 and after["quality"]["figures"] == before["figures"]
    filtered = snapshot(conn, s3, settings, exclude_suspect_voters=True)
    assert filtered["counts"]["pairs"] == 3
    assert filtered["quality"]["left_out"] == {"pairs": 40, "by_filter": {"exclude_suspect_voters": 40}}


def test_groups_without_a_digest_are_read_whole_to_the_same_figures_and_filters(conn, s3, settings, traffic):
    """Groups paired before digests were kept (their digests deleted here) read whole give the
    same section, filters and range report as the digests the pairing job keeps."""
    from likeloop_server import keys

    pk = keys.ProjectKeys(P)
    filtered = snapshot(conn, s3, settings, min_voters=3, exclude_suspect_voters=True)["quality"]
    whole = snapshot(conn, s3, settings)["quality"]
    report = range_report(conn, s3, settings, P, now=0.0)
    assert conn.hlen(pk.quality_digests) == 43
    conn.delete(pk.quality_digests)
    records, log = conn.hgetall(pk.pair_records), conn.xlen(pk.pair_log)
    assert snapshot(conn, s3, settings, min_voters=3, exclude_suspect_voters=True)["quality"] == filtered
    assert snapshot(conn, s3, settings)["quality"] == whole
    assert range_report(conn, s3, settings, P, now=0.0) == report
    # the groups read whole went back to the pairing job, which keeps their digests again and
    # changes nothing else
    assert conn.zcard(pk.dirty) == 43
    drain(conn, P, 100, time.monotonic() + 30, schedule=False, settings=settings)
    assert conn.hlen(pk.quality_digests) == 43 and not conn.zcard(pk.dirty)
    assert conn.hgetall(pk.pair_records) == records and conn.xlen(pk.pair_log) == log
    assert snapshot(conn, s3, settings)["quality"] == whole
    assert range_report(conn, s3, settings, P, now=0.0) == report
    assert whole["figures"]["duplicate_prompts"]["near_duplicates"] == 2
    # the filtered figures count the one group whose pair was kept: r1's (h1, h2, h3; 5 votes)
    assert filtered["figures"]["groups"] == {"value": 1}
    assert filtered["figures"]["voters"] == {"value": 3, "votes": 5}


def four_answer_groups():
    """Six groups of four answers, two liked and two disliked by two people: four pairs each."""
    events = []
    for g in range(6):
        prompt = f"Group {g}: which of four answers is best for case {g * 11}?"
        for a in range(4):
            rid = f"q{g}a{a}"
            events.append(response(rid, f"answer {a} of group {g}" + " more" * a, prompt))
            events += [vote("like" if a < 2 else "dislike", rid, f"p{u}", NOW - 900 + g * 10 + u) for u in range(2)]
    return events


def section_of(conn, s3, settings, items, size, **filters):
    """A quality section fed ``items`` ``size`` at a time: its section, the pairs it kept, and
    how many groups it knows it counted."""
    from likeloop_server.export_filters import ExportFilters

    section = QualitySection(conn, s3, settings, P, "all", ExportFilters().overridden(filters or None), True)
    kept = []
    for start in range(0, len(items), size):
        kept += [pid for pid, _, _ in section.pairs(items[start : start + size])]
    counted = len(section.counted)
    return section.finish(), kept, counted


def test_the_section_is_the_same_however_the_pairs_come(conn, s3, settings, traffic):
    """However a run's pairs come (one at a time, shuffled, a group's pairs in different
    chunks, or all at once), each group counts once and the section is the same; what it keeps
    between chunks is the counted groups' keys."""
    import random

    from likeloop_server import keys, stored

    store_and_pair(conn, settings, *four_answer_groups())
    records = all_rows(conn, keys.ProjectKeys(P))
    items = sorted((*stored.record_ids(stored.parse_record(raw)), raw) for raw in records.values())
    assert len(items) == 43 + 6 * 4
    random.Random(7).shuffle(items)
    for filters in ({}, {"exclude_suspect_voters": True, "min_voters": 2}):
        whole, kept, counted = section_of(conn, s3, settings, items, len(items), **filters)
        assert whole["figures"]["groups"]["value"] == counted == (49 if not filters else 7)
        for size in (1, 5):
            assert section_of(conn, s3, settings, items, size, **filters) == (whole, kept, counted)


def test_the_figures_are_left_out_when_the_project_or_the_run_says(conn, s3, settings, traffic):
    """``export_quality`` off: runs write no figures (their card says so) but their filters still
    apply; a run can ask for them anyway, and without a word the project's setting holds."""
    projects.update_config(conn, P, export_quality=False)
    off = snapshot(conn, s3, settings)
    assert "figures" not in off["quality"] and off["counts"]["pairs"] == 43
    card = s3.get_object(Bucket=settings.s3_bucket, Key=f"{settings.s3_prefix}/{P}/README.md")["Body"].read().decode()
    assert "Not computed for this export" in card and "| figure | value |" not in card
    filtered = snapshot(conn, s3, settings, exclude_suspect_voters=True)
    assert filtered["counts"]["pairs"] == 3 and "figures" not in filtered["quality"]
    assert filtered["quality"]["left_out"] == {"pairs": 40, "by_filter": {"exclude_suspect_voters": 40}}
    asked = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot", quality=True)
    assert asked["quality"]["figures"]["pairs_by_source"]["value"] == 43
    projects.update_config(conn, P, export_quality=True)
    assert "figures" in snapshot(conn, s3, settings)["quality"]
    assert (
        "figures"
        not in export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot", quality=False)["quality"]
    )


def test_groups_paired_knowing_the_suspects_are_not_read_whole(conn, s3, settings, traffic, monkeypatch):
    """Once the suspects are known, the pairing job keeps in each digest the pairs its group
    makes without them: a run with the same suspects reads none of the bot's 40 groups whole
    and gives the same section as reading them does; with one more suspect, the groups where
    that one gave feedback are read whole, and only those."""
    from likeloop_server import keys
    from workers.export import quality as section_module
    from workers.pairing.drain import known_suspects

    pk = keys.ProjectKeys(P)
    before = snapshot(conn, s3, settings, exclude_suspect_voters=True)["quality"]  # caches the suspects
    assert known_suspects(conn, P) == {"bot"}
    conn.zadd(pk.dirty, {gid.decode(): 0 for gid in conn.hkeys(pk.quality_digests)})
    drain(conn, P, 100, time.monotonic() + 30, schedule=False, settings=settings)
    read_whole: list[str] = []
    real = section_module.read_views

    def counted(conn_, pk_, group_ids):
        read_whole.extend(group_ids)
        return real(conn_, pk_, group_ids)

    monkeypatch.setattr(section_module, "read_views", counted)
    assert snapshot(conn, s3, settings, exclude_suspect_voters=True)["quality"] == before
    whole = snapshot(conn, s3, settings)["quality"]["figures"]
    assert whole["suspect_voters"] == {"value": 1, "pairs_resting_on_them": 40}
    assert read_whole == []
    monkeypatch.setattr(section_module, "current_suspects", lambda *a: ({"bot": None, "h1": None}, 1.0))
    snapshot(conn, s3, settings, exclude_suspect_voters=True)
    views = real(conn, pk, [gid.decode() for gid in conn.hkeys(pk.quality_digests)])
    assert sorted(read_whole) == sorted(gid for gid, v in views.items() if "h1" in v.people) and read_whole
