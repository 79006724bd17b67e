"""Copies of stores as earlier versions left them (tests/workers/fixtures/layout*_store.json.gz,
made by tests/workers/store_copies.py) come up to the current layout with the worker's migration,
and the service, the exports and pairing then answer as the version that wrote them did: every
pair, vote and export cursor kept. The copy of the current layout's store is the next layout's
test: when the layout changes, its migration must keep these answers."""

import json
from pathlib import Path

import pytest

from likeloop_server import exports, keys
from likeloop_server.counters import split_hash
from tests.support import P, feedback, labelled, store, store_and_pair
from tests.workers.store_copies import answers, load
from workers.dataset import refs
from workers.export.run import export_project
from workers.migrate import migrate

COPIES = sorted((Path(__file__).parent / "fixtures").glob("layout*_store.json.gz"))


def test_there_is_a_copy_of_the_current_layout():
    assert f"layout{keys.LAYOUT_VERSION.decode()}_store.json.gz" in [path.name for path in COPIES]


@pytest.mark.parametrize("path", COPIES, ids=lambda path: path.name.split("_")[0])
def test_a_copy_comes_up_to_the_current_layout_and_answers_as_its_version_did(path, conn, client, s3, settings):
    layout, then = load(conn, path)
    assert conn.get(keys.LAYOUT) == str(layout).encode()
    migrate(conn)
    assert conn.get(keys.LAYOUT) == keys.LAYOUT_VERSION
    # every record refers to its responses now (layout 8), and joins back to the row it held
    pk = keys.ProjectKeys(P)
    stored = [*conn.hvals(pk.pair_records), *conn.hvals(pk.kto_records)]
    assert stored and all(refs.is_ref(raw) for raw in stored)
    # each group is one hash (layout 9): none is a set, none of the four keys of its state is left
    assert not [name for pattern in pk.legacy_group_keys("*") for name in conn.scan_iter(match=pattern)]
    assert any(conn.scan_iter(match=pk.group("*"))) and not any(conn.scan_iter(match=pk.group("*"), _type="set"))
    # and its stats counters are there too: none is left in a stats hash
    buckets = [pk.stats_total, *(pk.stats_hour(h.decode()) for h in conn.smembers(pk.stats_hours))]
    assert not [name for key in buckets for name in conn.hkeys(key) if b"|g:" in name]
    # stats, leaderboard, the snapshot's rows, and the next incremental run sends what that
    # version's next run sent, no more: the export cursor and the exported set came along
    assert answers(conn, client, s3, settings, then["secret"]) == then
    # a response stored with all its dimensions in 'dims' (before layout 9) counts feedback under them
    stored = [(k, conn.hget(k, "dims")) for k in conn.scan_iter(match=pk.response("*"))]
    with_dims = [(k, json.loads(d)) for k, d in stored if d is not None]
    assert bool(with_dims) == (layout < 9)
    if with_dims:
        # one with a model, and a user if any has one (the same one whatever the order of SCAN)
        ranked = sorted(with_dims, key=lambda kd: (not any(x.startswith("u:") for x in kd[1]), kd[0]))
        name, dims = next((k, d) for k, d in ranked if any(x.startswith("m:") for x in d))
        assert any(d.startswith("u:") for d in dims), dims
        counted = [d for d in dims if not d.startswith("g:")]

        def likes() -> list[int]:  # under each of them (a user's packed: counters.split_hash reads both)
            by_dim = split_hash(conn.hgetall(pk.stats_total))[1]
            return [by_dim.get(d, {}).get("likes", 0) for d in counted]

        before = likes()
        store(conn, settings, feedback("like", name.decode().rsplit(":", 1)[1], "someone-new"))
        assert [a - b for a, b in zip(likes(), before, strict=True)] == [1] * len(counted)
    # and new traffic pairs and exports as before
    store_and_pair(conn, settings, *labelled(9))
    again = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    assert again["counts"] == {"pairs": 1, "kto": 0, "retractions": 0}
