"""A project's whole state in Redis and its snapshot export, read so that two moments can be
compared (before and after a rebuild, a compaction and a restore), and the traffic that fills
it: shared by the rebuild and compaction tests."""

import json
import time

from likeloop_server import exports, group_state, keys, projects
from tests.support import P, auth, feedback, labelled, read_jsonl_gz, response, store, store_and_pair
from workers.dataset import refs
from workers.export.run import export_project
from workers.pairing import digest
from workers.pairing.drain import drain

# Keys whose contents a rebuild makes anew rather than restores: RQ's, the pair log (the
# rebuilt pairs' changes: the next export reads it), the leaderboard's hours (pairing's hour),
# the project's bookkeeping of archive runs and queued jobs, export run records (restored
# from the manifests, compared apart), and the quality job's cached results (computed again).
_MADE_ANEW = (
    ":pairlog", ":archlog", ":matchhours", ":archive:cursor", ":archive:job", ":pairingjob", ":exports",
    ":archive:state", ":quality", ":quality:gen",
)  # fmt: skip
# When a pair (KTO item) was made: the rebuild pairs as of the replayed change that made it, the
# workers paired a few milliseconds after it.
_PAIRING_TIMES = ("paired_at", "labelled_at")
PAIRING_LAG_S = 2.0


def _records(raw: dict) -> tuple[dict, dict]:
    """Stored pair records with their pairing time taken out: (records, id -> pairing time)."""
    out, times = {}, {}
    for pid, value in raw.items():
        parts = refs.split(value)
        if parts is not None:  # its responses' keys, then its provenance
            first, second, provenance = parts
            record = {"keys": [first, second], "metadata": provenance}
        else:
            record = json.loads(value)
        meta = json.loads(record["metadata"])
        times[pid] = next(meta.pop(name) for name in _PAIRING_TIMES if name in meta)
        out[pid] = {**record, "metadata": meta}
    return out, times


def _digests(raw: dict) -> tuple[dict, dict]:
    """Stored quality digests with their pairs' pairing times taken out, as ``_records``."""
    out, times = {}, {}
    for gid, value in raw.items():
        found = digest.decode(gid.decode(), value)
        assert found is not None, gid
        for key, facts in found.pairs.items():
            times[key] = facts.paired_at
        out[gid] = found._replace(pairs={key: f._replace(paired_at=0.0) for key, f in found.pairs.items()})
    return out, times


def _made_anew(name: str) -> bool:
    return (
        name.startswith(("rq:", "LIMITS:"))
        or name == keys.LAYOUT
        or name.endswith(_MADE_ANEW)
        or ":match:h:" in name
        or (":export:" in name and not name.endswith((":export:cursor", ":export:committed")))
    )


def dump(conn) -> dict:
    """Every key and its value, and whether it expires (not when)."""
    out = {}
    for raw in conn.scan_iter(count=1000):
        name = raw.decode()
        if _made_anew(name):
            continue
        kind = conn.type(raw).decode()
        if kind == "string":
            value = conn.get(raw)
        elif kind == "hash":
            value = conn.hgetall(raw)
            if name.startswith(keys.API_KEY):  # learnt anew when the key is next used (docs/archive.md)
                value.pop(b"token_secret", None)
            if name.endswith((":pairrecs", ":ktorecs")):
                value, times = _records(value)
                out[name + " (pairing times)"] = times
            if name.endswith(":qdigest"):
                value, times = _digests(value)
                out[name + " (pairing times)"] = times
            if ":group:" in name:  # the group's version apart: compaction and restoring bump it
                out[name + " (version)"] = value.pop(group_state.VERSION.encode(), None)
                if not value:  # a version alone (as re-pairing every group leaves on one never paired)
                    continue
        elif kind == "set":
            value = conn.smembers(raw)
        elif kind == "zset":
            value = conn.zrange(raw, 0, -1, withscores=True)
            if name.endswith(":gchanged"):  # a group's last change counts its last pairing
                out[name + " (pairing times)"] = {member.decode(): score for member, score in value}
                value = sorted(member for member, _ in value)
        elif kind == "list":
            value = conn.lrange(raw, 0, -1)
        else:
            value = conn.xlen(raw)
        out[name] = (kind, value, conn.ttl(raw) >= 0)
    return out


def pair_all(conn, settings, project=P):
    drain(conn, project, settings.max_pairs_per_group, time.monotonic() + 60, schedule=False)
    assert conn.zcard(keys.ProjectKeys(project).dirty) == 0


def snapshot_rows(conn, s3, settings, project=P) -> tuple[str, list[tuple]]:
    manifest = export_project(conn, s3, settings, project, exports.new_export_id(), "snapshot")
    (data,) = [f for f in manifest["files"] if f["kind"] == "pairs" and f["format"] == "trl"]
    rows = read_jsonl_gz(s3, settings.s3_bucket, data["key"])
    out = []
    for r in rows:
        meta = json.loads(r["metadata"])
        meta.pop("paired_at")  # compared in the records
        out.append((r["prompt"], r["chosen"], r["rejected"], json.dumps(meta, sort_keys=True)))
    return manifest["export_id"], sorted(out)


def traffic(conn, client, settings, secret):
    """Every kind of event, through the service and the ingest script, paired, in two projects."""
    projects.update_config(conn, P, stats_metadata_keys=("plan",))
    for n in range(1, 6):
        store_and_pair(conn, settings, *labelled(n))
    store_and_pair(
        conn,
        settings,
        response("r1", "Paris.", "Capital of France?", model="m-1", metadata={"plan": "pro"}, user_id="ann"),
        response("r2", "Lyon.", "Capital of France?", model="m-2", event_id="e-r2"),
        response("r3", "Nice.", "Capital of France?", model="m-3"),
        feedback("rating", "r1", "cy", value=4, scale=5),
        feedback("rating", "r2", "cy", value=2, scale=5),
        feedback("comment", "r2", "bob", text="wrong city"),
        feedback("correction", "r2", "bob", text="Paris, of course."),
        {"type": "comparison", "response_id": "r1", "other_response_id": "r3", "choice": "a", "user_id": "dee"},
        {"type": "ranking", "response_ids": ["r1", ["r2", "r3"]], "user_id": "eve"},
        feedback("like", "late", "ann", event_id="e-late-like"),  # before its response: waits
        feedback("dislike", "never", "ann"),  # its response never comes: waits, then expires
        response("unlabelled", "Nobody voted.", "Quiet prompt"),
    )
    store_and_pair(conn, settings, response("late", "On time.", "Capital of France?"))
    # Through the HTTP API: a batch with the key, a like with a feedback token.
    berlin, bonn = response("h1", "Berlin.", "Capital of Germany?"), response("h2", "Bonn.", "Capital of Germany?")
    body = {"events": [berlin, bonn]}
    assert client.post("/v1/events", json=body, headers=auth(secret)).status_code in (200, 201, 207)
    import likeloop

    minting = likeloop.Client(api_key=secret, url="http://127.0.0.1:9", enabled=False)
    token = minting.feedback_token("h1")
    assert client.post("/v1/feedback", json=feedback("like", "h1"), headers=auth(token)).status_code == 201
    store(conn, settings, feedback("dislike", "h2", "bob"))
    pair_all(conn, settings)
    store_and_pair(conn, settings, *labelled(1), project="other")
