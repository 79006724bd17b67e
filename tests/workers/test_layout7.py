"""A copy of a store written by the layout 6 version (tests/workers/fixtures/layout6_store.json.gz:
every key's DUMP payload and expiry, made by that version from the traffic of
tests/workers/history.py, with what its service answered) comes up to layout 7: every project
key renamed with the project as its hash tag, every value byte for byte (that the service, the
exports and pairing then answer as that version did: tests/workers/test_store_copies.py)."""

from pathlib import Path

import pytest

from likeloop_server import group_state, keys, stored
from likeloop_server.counters import split_hash
from tests.support import auth
from tests.workers.store_copies import load
from workers.migrate import migrate, tag_keys

FIXTURE = Path(__file__).parent / "fixtures" / "layout6_store.json.gz"


def load_layout6(conn) -> dict:
    """The layout 6 store restored (its expiries counted from now); what it answered then."""
    layout, answers = load(conn, FIXTURE)
    assert layout == 6
    return answers


def everything(conn) -> dict[bytes, tuple[bytes, bool]]:
    """Every key: its DUMP payload (its value, byte for byte) and whether it expires."""
    return {name: (conn.dump(name), conn.pttl(name) > 0) for name in conn.scan_iter(count=1000)}


def tagged(name: bytes) -> bytes:
    """A key's layout 7 name."""
    if name in (b"ll:projects", b"ll:apikeyids") or name.startswith(b"ll:apikey:"):
        return b"ll:{global}:" + name[len(b"ll:") :]
    if not name.startswith(b"ll:p:") or name.startswith(b"ll:p:{"):
        return name
    project, _, rest = name[len(b"ll:p:") :].partition(b":")
    return b"ll:p:{" + project + b"}:" + rest


def counted(raw: dict[bytes, bytes]) -> tuple[dict, dict]:
    """A stats hash's counts (``counters.split_hash``), zeros left out."""
    plain, dims = split_hash(raw)
    return plain, {d: {m: n for m, n in c.items() if n} for d, c in dims.items() if any(c.values())}


def nonzero(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {b: {m: n for m, n in c.items() if n} for b, c in counts.items() if any(c.values())}


def counter(field: bytes) -> bool:
    """Whether a group's hash field holds counters (group_state.py: ``t``, ``t|pairs``, ``h:...``)."""
    return field == b"t" or field.startswith((b"t|", b"h:"))


def stats_hash(name: bytes) -> bool:
    return name.endswith(b":stats") or b":stats:h:" in name


def assert_folded(conn, folded: dict[bytes, tuple[bytes, bool]], stats: dict[bytes, tuple[bytes, bool]]) -> None:
    """Layout 9: each group's hash holds its members (its set before), what its four other keys
    held (``folded``: the sets and those keys' names -> their DUMP payloads and whether they
    expired) and its counters that were in the stats hashes (``stats``: theirs), and expires when
    its set did; each stats hash holds what it did but for those counters."""
    expected: dict[bytes, dict[bytes, bytes]] = {}
    expected_counts: dict[bytes, dict[str, dict[str, int]]] = {}
    for name, (payload, _) in stats.items():
        conn.restore(b"was", 0, payload)
        bucket = "" if name.endswith(b":stats") else name.rsplit(b":", 1)[1].decode()
        base = name[: name.index(b"}:") + 2]
        kept = {}
        for field, count in conn.hgetall(b"was").items():
            metric, _, gid = field.partition(b"|g:")
            if gid and int(count):
                group = expected_counts.setdefault(base + b"group:" + gid, {})
                group.setdefault(bucket, {})[metric.decode()] = int(count)
            elif not gid:
                kept[field] = count
        # the rest kept, each user's counters packed in one field (their zeros left out)
        assert counted(conn.hgetall(name)) == counted(kept)
        assert not [f for f in conn.hkeys(name) if b"|u:" in f and not f.startswith(b"all|")]
        conn.delete(b"was")
    expires: dict[bytes, bool] = {}
    for name, (payload, expiring) in folded.items():
        kind, gid = name.split(b":")[-2:]
        group = name[: -len(kind) - len(gid) - 1] + b"group:" + gid
        state = expected.setdefault(group, {})
        conn.restore(b"was", 0, payload)
        if kind == b"group":
            state.update({group_state.MEMBER.encode() + m: b"" for m in conn.smembers(b"was")})
            expires[group] = expiring
        elif kind == b"gver":
            state[group_state.VERSION.encode()] = conn.get(b"was")
        elif kind == b"gmatch":
            state.update({group_state.MATCH.encode() + k: v for k, v in conn.hgetall(b"was").items()})
        else:
            prefix = (group_state.PAIR if kind == b"gpairs" else group_state.KTO).encode()
            state.update({prefix + i: b"" for i in conn.smembers(b"was")})
        conn.delete(b"was")
    found = {name: conn.hgetall(name) for name in conn.scan_iter(match=b"*:group:*")}
    # the counters packed (group_state.py), as many as there were
    assert {
        n: nonzero(group_state.counts(raw)) for n, raw in found.items() if group_state.counts(raw)
    } == expected_counts
    assert {n: {f: v for f, v in raw.items() if not counter(f)} for n, raw in found.items()} == expected
    assert {name: conn.pttl(name) > 0 for name in expected} == {name: expires.get(name, False) for name in expected}
    assert any(expires.values()) and not all(expires.values())


def assert_votes_moved(conn, votes: dict[bytes, tuple[bytes, bool]], moved: dict) -> set[bytes]:
    """Layout 9: each response's votes (``votes``: its votes hashes' payloads) are fields of its
    hash (stored.VOTE), the rest of the hash and its expiry as they were. Returns those hashes."""
    assert len(votes) > 3
    voted = set()
    for name, (payload, _) in votes.items():
        response = name.replace(b":votes:", b":resp:")
        conn.restore(b"was", 0, payload)
        cast = {stored.VOTE.encode() + user: vote for user, vote in conn.hgetall(b"was").items()}
        conn.delete(b"was")
        conn.restore(b"was", 0, moved[response][0])
        assert conn.hgetall(response) == {**conn.hgetall(b"was"), **cast}
        assert (conn.pttl(response) > 0) == moved[response][1]
        conn.delete(b"was")
        voted.add(response)
    assert not list(conn.scan_iter(match=b"*:votes:*"))
    return voted


def test_a_layout_6_store_comes_up_to_layout_7_with_every_value(conn):
    load_layout6(conn)
    before = everything(conn)
    assert conn.get(keys.LAYOUT) == b"6"
    assert sum(1 for name in before if name.startswith(b"ll:p:acme:")) > 50
    migrate(conn)
    after = whole = everything(conn)
    assert conn.get(keys.LAYOUT) == keys.LAYOUT_VERSION  # 7, then 8 and 9 (records that refer: test_store_copies)
    assert not [name for name in after if name.startswith(b"ll:p:") and not name.startswith(b"ll:p:{")]
    assert sum(1 for name in after if name.startswith(b"ll:{global}:apikey:")) == 1  # acme's key
    assert not [name for name in after if name.startswith(b"ll:") and tagged(name) != name]
    # every key under its new name, its value and expiry as they were; nothing else but the layout
    # (the stored records' ids; their values are rewritten by layout 8), and each group's keys and
    # stats counters folded into one hash by layout 9, every value in it
    records = (b":pairrecs", b":ktorecs")
    moved = {tagged(name): value for name, value in before.items() if name != keys.LAYOUT.encode()}
    folded = {n: v for n, v in moved.items() if n.split(b":")[-2] in (b"group", b"gver", b"gpairs", b"gkto", b"gmatch")}
    stats = {n: v for n, v in moved.items() if stats_hash(n)}
    assert len(folded) > 10 and len(stats) > 2
    assert_folded(conn, folded, stats)
    votes = {n: v for n, v in moved.items() if b":votes:" in n}
    voted = assert_votes_moved(conn, votes, moved)
    moved = {n: v for n, v in moved.items() if n not in folded and n not in stats and n not in votes and n not in voted}
    after = {n: v for n, v in after.items() if b":group:" not in n and not stats_hash(n) and n not in voted}
    assert {name: value for name, value in after.items() if name != keys.LAYOUT.encode()}.keys() == moved.keys()
    assert {n: v for n, v in after.items() if n in moved and not n.endswith(records)} == {
        n: v for n, v in moved.items() if not n.endswith(records)
    }
    for name in (n for n in moved if n.endswith(records)):
        conn.restore(b"was", 0, moved[name][0])  # the hash as layout 6 held it
        assert conn.hlen(name) > 0 and sorted(conn.hkeys(name)) == sorted(conn.hkeys(b"was"))
        conn.delete(b"was")
    assert migrate(conn) == 0 and everything(conn) == whole  # once done, a no-op


def test_the_service_waits_while_the_store_is_older(conn, settings):
    """Until a worker has moved the store, the API answers 503 (an SDK retries) and /readyz says
    why; the health check still answers."""
    from service import create_app

    load_layout6(conn)
    app = create_app(settings, {"TESTING": True}).test_client()
    answer = app.post("/v1/events", json={"events": []}, headers=auth("ll_anything"))
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "store_upgrading"
    assert answer.headers["Retry-After"] == "5"
    assert app.get("/readyz").get_json() == {"status": "upgrading", "redis": "ok"}
    assert app.get("/healthz").status_code == 200
    migrate(conn)
    fresh = create_app(settings, {"TESTING": True}).test_client()
    assert fresh.get("/readyz").status_code == 200
    assert fresh.post("/v1/events", json={"events": []}, headers=auth("ll_anything")).status_code == 401


@pytest.mark.parametrize(
    "name", [b"ll:p:{acme}:stats", b"ll:{global}:projects", b"ll:p:", b"ll:p:Bad Name:x", b"ll:layout", b"rq:x"]
)
def test_keys_that_are_tagged_already_or_not_to_be_renamed_stay(conn, name):
    conn.set(name, b"1")
    assert tag_keys(conn) == (0, 0)
    assert conn.get(name) == b"1"


def test_a_key_whose_new_name_is_taken_is_left_and_counted(conn):
    conn.set(b"ll:p:acme:x", b"old")
    conn.set(b"ll:p:{acme}:x", b"new")
    conn.set(b"ll:p:acme:y", b"moves")
    assert tag_keys(conn) == (1, 1)
    assert (conn.get(b"ll:p:acme:x"), conn.get(b"ll:p:{acme}:x"), conn.get(b"ll:p:{acme}:y")) == (
        b"old",
        b"new",
        b"moves",
    )
