"""The archive's default place is beside the datasets, not under their prefix; an archive an
older version kept under it is refused until moved, and `likeloop archive --move-from` moves it
whole (parts, commit records naming the parts anew, state), after which the archive runs on and
a rebuild reads it. Real Redis and SeaweedFS: the tests' bucket, and a project of this module's
own, since the default archive is at the bucket's root, which every test shares."""

import json
import uuid
from dataclasses import replace

import pytest

from likeloop_server import apikeys, keys
from likeloop_server.errors import ConfigError
from tests.support import feedback, likeloop_cli, response, store, vote_of
from workers.archive.layout import ArchiveLayout
from workers.archive.replay import commit_records
from workers.archive.run import archive_project
from workers.rebuild import rebuild_project

PROJECT = f"mv-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def own_bucket(s3, settings):
    """Settings of a deployment with LIKELOOP_ARCHIVE_URL unset (the defaults), its datasets
    under a prefix of its own."""
    return replace(settings, s3_url=f"{settings.s3_url}/exports", archive_url="")


def keys_under(s3, bucket, prefix):
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_the_default_archive_is_beside_the_datasets_not_under_them(own_bucket):
    assert (own_bucket.archive_bucket, own_bucket.archive_prefix) == (own_bucket.s3_bucket, "_archive")
    assert not own_bucket.archive_prefix.startswith(own_bucket.s3_prefix)
    assert own_bucket.old_default_archive_url == f"s3://{own_bucket.s3_bucket}/{own_bucket.s3_prefix}/_archive"


def test_an_archive_at_the_old_default_is_refused_then_moved_whole(conn, s3, own_bucket):
    old = own_bucket.old_default_archive_url
    as_before = replace(own_bucket, archive_url=old)  # an older version's default, written as it did
    apikeys.create_key(conn, PROJECT, ("ingest",))
    store(conn, as_before, response("r1", "A"), response("r2", "B"), feedback("like", "r1", "u1"), project=PROJECT)
    archive_project(conn, s3, as_before, PROJECT)
    bucket = own_bucket.s3_bucket
    before = keys_under(s3, bucket, f"{own_bucket.s3_prefix}/_archive/{PROJECT}/")
    assert any("/events/" in k for k in before) and any("/_commits/" in k for k in before)

    store(conn, own_bucket, feedback("dislike", "r2", "u1"), project=PROJECT)
    for refused in (
        lambda: archive_project(conn, s3, own_bucket, PROJECT),
        lambda: rebuild_project(conn, s3, own_bucket, PROJECT, replace=True),
    ):
        with pytest.raises(ConfigError, match=f"likeloop archive --move-from {old}"):
            refused()
    assert keys_under(s3, bucket, f"_archive/{PROJECT}/") == []  # nothing split off meanwhile

    moved = likeloop_cli("archive", "--move-from", old, settings=own_bucket)
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["moved"][PROJECT]["objects"] == len(before)
    assert keys_under(s3, bucket, f"{own_bucket.s3_prefix}/_archive/{PROJECT}/") == []
    after = keys_under(s3, bucket, f"_archive/{PROJECT}/")
    old_root = f"{own_bucket.s3_prefix}/_archive/"
    assert [k.removeprefix("_archive/") for k in after] == [k.removeprefix(old_root) for k in before]
    for record in commit_records(s3, ArchiveLayout(own_bucket, PROJECT)):
        assert all(part["key"].startswith(f"_archive/{PROJECT}/events/") for part in record["parts"])

    archive_project(conn, s3, own_bucket, PROJECT)  # the waiting vote goes to the new place
    conn.flushall()
    result = rebuild_project(conn, s3, own_bucket, PROJECT)
    assert result.events == 4 and result.keys_restored == 1
    assert vote_of(conn, keys.ProjectKeys(PROJECT), "r2", "u1") is not None
