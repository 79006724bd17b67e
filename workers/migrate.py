"""Bring stored pairs up to the current Redis key layout; run by every worker before it starts.

Layout 1 kept each prompt group's records in a hash of its own (``P:pairs:<group>``,
``P:kto:<group>``), full records as JSON. Layout 2 keeps all of a project's records in one hash
(``P:pairrecs``, ``P:ktorecs``) in their stored form (the ``trl`` and ``kto`` rows, so an export
copies them), and each group's ids in a set (``P:gpairs:<group>``, ``P:gkto:<group>``). Each
group moves in one transaction; running it again moves only what is left. Upgrade every worker
together: a worker of the old version would keep writing the old layout.

Layout 3 adds the ranking of prompt groups by dislikes (``P:disliked``), built once from the
project's counters; the ingest script keeps it from then on. Layout 4 files every stored pair
under its source (``P:srcpairs:<source>``, read from its provenance; ``vote`` for pairs made
before provenance named one), which exports choose by; pairing keeps them from then on. Layout 5
lists every labelled prompt group (one that does not expire) as changed now in ``P:gchanged``, so
compaction takes it once it has been unchanged for the hot window; the ingest script keeps the
list from then on. Layout 6 stores the compaction indexes' hex digits as bytes (a group id in 16
bytes, not 32; likeloop_server/compacted.py), and wakes the compacted groups that feedback
waits for (it may have arrived between the service's upgrade and this one's). Layout 7 names
every project key ``ll:p:{<project>}:...`` instead of ``ll:p:<project>:...`` (the project is the
key's hash tag, so a project lives in one slot of a Redis Cluster), and the projects and API keys
``ll:{global}:...``: each key is renamed as it is, with its value and expiry, on the data Redis
and on the job queue's when it is apart. The service answers 503 until the layout is current
(likeloop_server/layout.py), so nothing is written under the new names before the old ones have
moved there; stop the older version's services and workers before starting this one's
(docs/redis-keys.md).

Layout 8 stores pairs and KTO items as references to their responses (workers/dataset/refs.py:
the responses' keys and the provenance, the texts and prompt read from the response hashes when
a row is needed). Each record stored whole is rewritten so only when the rewritten form joins
back to exactly the row it held (its responses are there, with that prompt); any other stays
whole, which every reader still takes.

Layout 9 keeps a prompt group in one hash (``P:group:<group>``, likeloop_server/group_state.py):
its members (a set before), version, pair and KTO ids and results (four keys before: ``gver``,
``gpairs``, ``gkto``, ``gmatch``) and its stats counters (``<metric>|g:<group>`` fields of every
stats hash before). First, in every project, each group's set becomes its hash and its four keys
fold into it, in one script call per group; then each project's stats hashes give their group
fields to the groups' hashes and pack their per-user fields a field a user (``all|u:<user>``,
likeloop_server/counters.py), a thousand fields a script call, and are copied anew.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from likeloop_server import compacted, group_state, keys, stored
from likeloop_server.apikeys import list_projects
from likeloop_server.connections import queue_redis
from likeloop_server.counters import DIMENSIONS, PACKED, PACKED_LUA, SEPARATOR
from likeloop_server.identity import valid_project_name
from workers.dataset import refs
from workers.dataset.formats import stored_kto, stored_pair
from workers.dataset.provenance import without_prompt

log = logging.getLogger(__name__)


# Atomic, so dislikes counted meanwhile by the ingest script are neither lost nor doubled. Sets
# each group's rank from the total's field, so it is a no-op once those fields moved (layout 9).
_RANK_DISLIKED = """
local prefix = 'dislikes|g:'
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local name, count = fields[i], tonumber(fields[i + 1])
  if string.sub(name, 1, #prefix) == prefix and count and count > 0 then
    redis.call('ZADD', KEYS[2], count, string.sub(name, #prefix + 1))
  end
end
return redis.call('ZCARD', KEYS[2])
"""


# KEYS: one bucket of each index. Entries of hex digits become bytes; entries already bytes stay.
_PACK_INDEXES = """
local function unhex(text)
  return (string.gsub(text, '..', function(cc) return string.char(tonumber(cc, 16)) end))
end
local moved = 0
for k, widths in ipairs({{12, 32}, {32, 0}}) do
  local entries = redis.call('HGETALL', KEYS[k])
  for i = 1, #entries, 2 do
    local field, value = entries[i], entries[i + 1]
    if #field == widths[1] then
      if widths[2] > 0 and #value == widths[2] then value = unhex(value) end
      redis.call('HDEL', KEYS[k], field)
      redis.call('HSET', KEYS[k], unhex(field), value)
      moved = moved + 1
    end
  end
end
return moved
"""


def _pack_indexes(conn: redis.Redis, pk: keys.ProjectKeys) -> None:
    """Layout 6: the compaction indexes in bytes, then a wake-up for each compacted group that
    feedback waits for."""
    if not compacted.any_compacted(conn, pk):
        return
    script = conn.register_script(_PACK_INDEXES)
    for bucket in compacted.all_buckets():
        script(keys=[pk.compacted_responses(bucket), pk.compacted_groups(bucket)])
    now = time.time()
    for key in conn.scan_iter(match=pk.pending("*"), count=1000):
        gid = compacted.group_of_response(conn, pk, key.decode("utf-8", "surrogateescape")[len(pk.pending("")) :])
        if gid is not None:
            conn.zadd(pk.dirty, {gid: now}, nx=True)


def _file_by_source(conn: redis.Redis, pk: keys.ProjectKeys) -> None:
    """Every stored pair's id in the set of its source (idempotent: sets only gain members)."""
    cursor = 0
    while True:
        cursor, found = conn.hscan(pk.pair_records, cursor, count=1000)
        by_source: dict[str, list[bytes]] = {}
        for item, raw in found.items():
            try:
                source = json.loads(json.loads(raw)["metadata"]).get("source") or "vote"
            except (ValueError, KeyError, TypeError):
                source = "vote"
            by_source.setdefault(source, []).append(item)
        if by_source:
            pipe = conn.pipeline(transaction=False)
            for source, ids in by_source.items():
                pipe.sadd(pk.source_pairs(source), *ids)
            pipe.execute()
        if cursor == 0:
            break
    conn.delete(f"{pk.base}aipairs")  # this layout's first version kept models' pairs in one set


def _list_changed(conn: redis.Redis, pk: keys.ProjectKeys) -> None:
    """Every labelled group in ``group_changed``, as of now unless listed already."""
    now = int(time.time())
    batch: list[bytes] = []
    for key in [*conn.scan_iter(match=pk.group("*"), count=1000, _type="hash"), None]:
        if key is not None:
            batch.append(key)
        if batch and (key is None or len(batch) >= 1000):
            pipe = conn.pipeline(transaction=False)
            for k in batch:
                pipe.ttl(k)
            kept = [pk.group_id_of(k) for k, ttl in zip(batch, pipe.execute(), strict=True) if ttl == -1]
            if kept:
                conn.zadd(pk.group_changed, dict.fromkeys(kept, now), nx=True)
            batch = []


# KEYS: a group's key (a set of its response ids before layout 9), its version, pair ids, KTO ids
# and results keys (layout 8). ARGV: the hash's member prefix, version field and prefixes of pair
# ids, KTO ids and results (group_state.py). The set becomes the hash (its expiry kept), and the
# four are folded into it (added to what it holds: a version is summed) and deleted. Returns 1 if
# there was anything to do.
_FOLD_GROUP = """
local group = KEYS[1]
local done = 0
if redis.call('TYPE', group).ok == 'set' then
  local ttl = redis.call('PTTL', group)
  local members = redis.call('SMEMBERS', group)
  redis.call('DEL', group)
  for _, id in ipairs(members) do redis.call('HSET', group, ARGV[1] .. id, '') end
  if ttl > 0 then redis.call('PEXPIRE', group, ttl) end
  done = 1
end
local version = redis.call('GET', KEYS[2])
local pairs = redis.call('SMEMBERS', KEYS[3])
local kto = redis.call('SMEMBERS', KEYS[4])
local matches = redis.call('HGETALL', KEYS[5])
if not version and #pairs == 0 and #kto == 0 and #matches == 0 then return done end
if version then redis.call('HINCRBY', group, ARGV[2], version) end
for _, id in ipairs(pairs) do redis.call('HSET', group, ARGV[3] .. id, '') end
for _, id in ipairs(kto) do redis.call('HSET', group, ARGV[4] .. id, '') end
for i = 1, #matches, 2 do redis.call('HSET', group, ARGV[5] .. matches[i], matches[i + 1]) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1
"""


# KEYS: a response's votes hash (before layout 9), its response hash. ARGV: the vote fields' prefix
# (stored.VOTE). The votes become fields of the response's hash (dropped if it is gone: nothing
# keeps votes of a response deleted) and the votes hash goes. Returns how many votes moved.
_FOLD_VOTES = """
local votes = redis.call('HGETALL', KEYS[1])
if #votes == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
for i = 1, #votes, 2 do redis.call('HSET', KEYS[2], ARGV[1] .. votes[i], votes[i + 1]) end
redis.call('DEL', KEYS[1])
return #votes / 2
"""


def _in_every_project(
    conn: redis.Redis, pattern: str, kind: str | None = None
) -> Iterator[list[tuple[keys.ProjectKeys, str]]]:
    """The keys ``pattern`` matches (a key of ``ProjectKeys("*")`` with ``*`` for its id) in every
    project, listed or not, a thousand at a time: (the project's keys, the id in the key)."""
    name = pattern[len(keys.project_base("*")) : -1]  # "votes:", "group:", ...
    batch: list[tuple[keys.ProjectKeys, str]] = []
    for raw in conn.scan_iter(match=pattern, count=1000, _type=kind):
        project, _, rest = raw.decode()[len(keys.project_base("")) - 2 :].partition("}:")
        batch.append((keys.ProjectKeys(project), rest[len(name) :]))
        if len(batch) >= 1000:
            yield batch
            batch = []
    if batch:
        yield batch


def fold_votes(conn: redis.Redis) -> int:
    """Layout 9: each response's votes hash made fields of its response hash, in every project
    that has any. Returns how many votes moved."""
    fold = conn.register_script(_FOLD_VOTES)
    moved = 0
    for batch in _in_every_project(conn, keys.ProjectKeys("*").votes("*"), "hash"):
        pipe = conn.pipeline(transaction=False)
        for pk, rid in batch:
            fold(keys=[pk.votes(rid), pk.response(rid)], args=[stored.VOTE], client=pipe)
        moved += sum(int(n) for n in pipe.execute())
    return moved


def fold_groups(conn: redis.Redis) -> int:
    """Layout 9: each group's set of response ids made its hash, and its version, pair ids, KTO
    ids and results (four keys) moved into it, in every project that has any (listed or not).
    Returns how many groups changed."""
    fold = conn.register_script(_FOLD_GROUP)
    names = [group_state.MEMBER, group_state.VERSION, group_state.PAIR, group_state.KTO, group_state.MATCH]
    folded = 0
    anyone = keys.ProjectKeys("*")
    for pattern, kind in ((anyone.group("*"), "set"), *((p, None) for p in anyone.legacy_group_keys("*"))):
        for batch in _in_every_project(conn, pattern, kind):
            pipe = conn.pipeline(transaction=False)
            for pk, gid in batch:
                fold(keys=[pk.group(gid), *pk.legacy_group_keys(gid)], args=names, client=pipe)
            folded += sum(pipe.execute())
    return folded


# KEYS: a stats hash. ARGV: the group keys' prefix, the hash's bucket ("" the total, else an hour
# or a day), then fields ``<metric>|g:<group>``. Each group's counts added to its hash (layout 9:
# made one by ``fold_groups`` first), packed but for its pairs (group_state.py), and the fields
# removed. Returns how many moved.
_MOVE_GROUP_COUNTERS = (
    PACKED_LUA
    + """
local src, prefix, bucket = KEYS[1], ARGV[1], ARGV[2]
local packed_field = (bucket == '') and ARGV[3] or (ARGV[4] .. bucket)
local groups = {}
local moved = 0
for i = 6, #ARGV do
  local name = ARGV[i]
  local count = redis.call('HGET', src, name)
  local sep = string.find(name, '|g:', 1, true)
  if count and sep then
    local metric, key = string.sub(name, 1, sep - 1), prefix .. string.sub(name, sep + 3)
    if metric == ARGV[5] then
      redis.call('HINCRBY', key, packed_field .. '|' .. metric, count)
    elseif INDEX[metric] then
      groups[key] = groups[key] or {}
      groups[key][INDEX[metric]] = tonumber(count)
    end
    redis.call('HDEL', src, name)
    moved = moved + 1
  end
end
for key, deltas in pairs(groups) do add_packed(key, packed_field, deltas) end
return moved
"""
)
_GROUP_COUNTERS = "*" + SEPARATOR + DIMENSIONS["group"] + "*"
_USER_COUNTERS = "*" + SEPARATOR + DIMENSIONS["user"] + "*"
_PACKED_PREFIX = (PACKED + SEPARATOR).encode()

# KEYS: a stats hash. ARGV: per-user fields of it, one a metric (``<metric>|u:<user>``, before
# layout 9). Each user's folded into its packed field (counters.PACKED_LUA) and removed.
_PACK_USER_COUNTERS = (
    PACKED_LUA
    + """
local key = KEYS[1]
local users = {}
for _, name in ipairs(ARGV) do
  local sep = string.find(name, '|', 1, true)
  local i = sep and INDEX[string.sub(name, 1, sep - 1)]
  local value = i and redis.call('HGET', key, name)
  if value then
    local d = string.sub(name, sep + 1)
    users[d] = users[d] or {}
    users[d][i] = (users[d][i] or 0) + tonumber(value)
    redis.call('HDEL', key, name)
  end
end
for d, deltas in pairs(users) do add_packed(key, PACKED .. '|' .. d, deltas) end
return #ARGV
"""
)


# KEYS: a stats hash, a scratch key. The hash copied anew: Redis (before 7.4) keeps a hash's table
# at the largest size it ever had, so one that lost most of its fields (the per-group counters of
# the groups compacted) keeps 8 bytes a slot for fields long gone. Keeps its expiry.
_REPACK = """
local src, tmp = KEYS[1], KEYS[2]
local ttl = redis.call('PTTL', src)
local all = redis.call('HGETALL', src)
if #all == 0 then return 0 end
redis.call('DEL', tmp)
for i = 1, #all, 1000 do
  redis.call('HSET', tmp, unpack(all, i, math.min(i + 999, #all)))
end
redis.call('RENAME', tmp, src)
if ttl > 0 then redis.call('PEXPIRE', src, ttl) end
return #all / 2
"""
REPACK_MAX_FIELDS = 50_000  # a bigger hash is left as it is (its copy would hold Redis up too long)
REPACK_BYTES_PER_FIELD = 200  # about twice what a field of a freshly built stats hash takes


def move_counters(conn: redis.Redis, pk: keys.ProjectKeys) -> int:
    """Layout 9: each stats hash's per-group counters moved into their groups' hashes, its
    per-user ones packed a field a user, and each stats hash that had any copied anew. Returns
    how many fields moved or were packed."""
    move = conn.register_script(_MOVE_GROUP_COUNTERS)
    pack = conn.register_script(_PACK_USER_COUNTERS)
    repack = conn.register_script(_REPACK)
    moved = 0
    for bucket in ["", *sorted(b.decode() for b in conn.smembers(pk.stats_hours))]:
        key = pk.stats_total if bucket == "" else pk.stats_hour(bucket)
        names = [name for name, _ in conn.hscan_iter(key, match=_GROUP_COUNTERS, count=1000)]
        for i in range(0, len(names), 1000):
            fields = [group_state.TOTAL, group_state.BUCKET, group_state.APART, *names[i : i + 1000]]
            moved += int(move(keys=[key], args=[pk.group(""), bucket, *fields]))
        users = [
            n for n, _ in conn.hscan_iter(key, match=_USER_COUNTERS, count=1000) if not n.startswith(_PACKED_PREFIX)
        ]
        for i in range(0, len(users), 1000):
            moved += int(pack(keys=[key], args=users[i : i + 1000]))
        if names or users:
            fields, used = conn.hlen(key), conn.memory_usage(key, samples=0) or 0
            if 0 < fields <= REPACK_MAX_FIELDS and used > REPACK_BYTES_PER_FIELD * fields:
                repack(keys=[key, f"{key}:repack"])
    return moved


def _referring(raw: bytes, kto: bool) -> bytes | None:
    """The referring form of a record stored whole (None if it cannot be read as one)."""
    try:
        row = json.loads(raw)
        meta = json.loads(row["metadata"])
        sides = [meta["completion"]] if kto else [meta["chosen"], meta["rejected"]]
        names = [s["response_id"] + (refs.CORRECTION_SUFFIX if s.get("kind") == "correction" else "") for s in sides]
        provenance = without_prompt(meta)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if kto:
        return refs.kto_ref(names[0], bool(row.get("label")), provenance)
    return refs.pair_ref(names[0], names[1], provenance)


def refer_to_responses(conn: redis.Redis, pk: keys.ProjectKeys) -> tuple[int, int]:
    """Layout 8: each pair and KTO item stored whole rewritten as a reference to its responses,
    where that joins back to the same row. Returns (rewritten, left whole)."""
    rewritten = left = 0
    for records_key, kto in ((pk.pair_records, False), (pk.kto_records, True)):
        cursor = 0
        while True:
            cursor, found = conn.hscan(records_key, cursor, count=1000)
            whole = {item: raw for item, raw in found.items() if not refs.is_ref(raw)}
            candidates = {item: _referring(raw, kto) for item, raw in whole.items()}
            named = [
                r.encode()
                for r in dict.fromkeys(r for ref in candidates.values() if ref for r in refs.responses_named(ref))
            ]
            responses = stored.read_response_fields(conn, pk, named, refs.RESPONSE_FIELDS)
            done = {
                item: ref
                for item, ref in candidates.items()
                if ref is not None and refs.join(ref, responses) == whole[item]
            }
            if done:
                conn.hset(records_key, mapping=done)
            rewritten += len(done)
            left += len(whole) - len(done)
            if cursor == 0:
                break
    return rewritten, left


_LEGACY_PREFIX = (keys.PREFIX + "p:").encode()  # what every project key starts with, tagged or not
_RENAME_BATCH = 1000
# The global keys' names before layout 7 -> after (``ll:apikey:`` a prefix).
_GLOBAL_NAMES = {
    (keys.PREFIX + "projects").encode(): keys.PROJECTS.encode(),
    (keys.PREFIX + "apikeyids").encode(): keys.API_KEY_IDS.encode(),
}
_LEGACY_API_KEY = (keys.PREFIX + "apikey:").encode()


def _new_name(raw: bytes) -> bytes | None:
    """A key's layout 7 name, or None if it has it already (or is not LikeLoop's to rename)."""
    if raw in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[raw]
    if raw.startswith(_LEGACY_API_KEY):
        return keys.API_KEY.encode() + raw[len(_LEGACY_API_KEY) :]
    if raw.startswith(_LEGACY_PREFIX):
        project, sep, rest = raw[len(_LEGACY_PREFIX) :].partition(b":")
        if sep and valid_project_name(project.decode("ascii", "replace")):  # not ``{...}``: tagged already
            return keys.project_base(project.decode()).encode() + rest
    return None


def tag_keys(conn: redis.Redis) -> tuple[int, int]:
    """Layout 7: every ``ll:p:<project>:<rest>`` renamed ``ll:p:{<project>}:<rest>``, and the
    global keys written together renamed under ``ll:{global}:`` (RENAMENX: value and expiry
    kept). A key that expired meanwhile is skipped; one whose new name is taken is left and
    logged (nothing of this version writes before the move: it should not happen). Returns
    (renamed, left)."""
    renamed = left = 0
    batch: list[tuple[bytes, bytes]] = []

    def flush() -> None:
        nonlocal renamed, left
        pipe = conn.pipeline(transaction=False)
        for old, new in batch:
            pipe.renamenx(old, new)
        for (old, _), done in zip(batch, pipe.execute(raise_on_error=False), strict=True):
            if done is True or done == 1:
                renamed += 1
            elif not isinstance(done, redis.ResponseError):  # an error: the key expired meanwhile
                left += 1
                log.warning("key %r not renamed to its layout 7 name: that name is taken", old)
        batch.clear()

    for raw in conn.scan_iter(match=keys.PREFIX + "*", count=_RENAME_BATCH):
        new = _new_name(raw)
        if new is not None:
            batch.append((raw, new))
        if len(batch) >= _RENAME_BATCH:
            flush()
    if batch:
        flush()
    return renamed, left


def _projects(conn: redis.Redis) -> list[str]:
    """The projects listed, and any other whose keys are in Redis (its stats hash found)."""
    listed = list_projects(conn)
    pattern = keys.ProjectKeys("*").stats_total
    before, after = pattern.split("*")
    found = {raw.decode()[len(before) : -len(after)] for raw in conn.scan_iter(match=pattern, count=1000)}
    return listed + sorted(found - set(listed))


def migrate(conn: redis.Redis) -> int:
    """Bring every project to the current layout (a no-op once done). Returns how many
    records moved."""
    if conn.get(keys.LAYOUT) == keys.LAYOUT_VERSION:
        return 0
    for where in {id(c): c for c in (conn, queue_redis(conn))}.values():
        renamed, left = tag_keys(where)
        if renamed or left:
            log.info("renamed %d keys to their layout 7 names (%d left)", renamed, left)
    folded = fold_groups(conn)  # before anything writes to a group as a hash
    if folded:
        log.info("%d prompt groups now one hash each", folded)
    votes = fold_votes(conn)
    if votes:
        log.info("%d votes now fields of their responses' hashes", votes)
    moved = 0
    for project in _projects(conn):
        pk = keys.ProjectKeys(project)
        conn.eval(_RANK_DISLIKED, 2, pk.stats_total, pk.disliked_groups)
        _file_by_source(conn, pk)
        _list_changed(conn, pk)
        _pack_indexes(conn, pk)
        kinds: list[tuple[Callable[[str], str], str, str, Callable[[Any], bytes]]] = [
            (pk.legacy_pairs, group_state.PAIR, pk.pair_records, stored_pair),
            (pk.legacy_kto, group_state.KTO, pk.kto_records, stored_kto),
        ]
        for legacy_of, ids_prefix, records_key, store in kinds:
            prefix = legacy_of("")
            for key in conn.scan_iter(match=legacy_of("*"), count=1000, _type="hash"):
                old = conn.hgetall(key)
                if not old:
                    continue
                pipe = conn.pipeline(transaction=True)
                pipe.hset(records_key, mapping={item: store(json.loads(raw)) for item, raw in old.items()})
                gid = key.decode()[len(prefix) :]
                pipe.execute_command(*group_state.add(pk.group(gid), ids_prefix, (i.decode() for i in old)))
                pipe.delete(key)
                pipe.execute()
                moved += len(old)
        rewritten, left = refer_to_responses(conn, pk)
        if rewritten or left:
            log.info("%s: %d stored records now refer to their responses (%d left whole)", project, rewritten, left)
        counters = move_counters(conn, pk)
        if counters:
            log.info("%s: %d per-group and per-user stats counters moved or packed", project, counters)
    conn.set(keys.LAYOUT, keys.LAYOUT_VERSION)
    if moved:
        log.info("moved %d stored pairs and KTO items to key layout %s", moved, keys.LAYOUT_VERSION.decode())
    return moved
