"""The stats counters' fields: which metrics are counted, under which dimensions, and how a field
of a stats hash (``keys.ProjectKeys.stats_total``, ``stats_hour``) is named and read back.

A field is a metric (``likes``) or a metric under one dimension of the response it counts
(``likes|m:gpt-4o``): ``m:`` its model, ``u:`` its user, ``k:`` one metadata key=value (a prompt
group's counters are in its own hash: group_state.py). A user's counters in a hash are one field,
``all|u:<user>``, holding every metric's count in ``COUNTERS`` order (``2,1,1``: two responses,
a like, a dislike; trailing zeros left out): one field a user and bucket instead of one a metric
(``PACKED``, ``pack``, ``unpack``; the scripts that write them share ``PACKED_LUA``). The ingest
script bumps the metric fields with the dimensions a response was stored with (``stat_dims``);
pairing bumps ``pairs`` per group; the export ``pairs_exported``.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from . import defaults

# Metrics the ingest script counts (ingest.lua names them; tests check it names no other).
INGEST_METRICS = (
    "responses", "likes", "dislikes", "ratings", "rating_sum", "comments", "corrections", "comparisons",
    "rankings",
)  # fmt: skip
COUNTERS = (*INGEST_METRICS, "pairs")
PAIRS_EXPORTED = "pairs_exported"  # only in the project's total hash

PACKED = "all"  # the metric of a field packing every counter of one user (module docstring)

# Lua over packed counters, put before the scripts that write them (ingest.lua, the roll-up,
# retention, the layout migration): ``C`` the list of ``COUNTERS``, ``INDEX`` metric -> its place
# in it, ``PACKED`` the metric of a user's packed field, and
#   unpack_counts(text) -> {place -> count};  add_packed(key, field, deltas): adds
#   {place -> delta} to a packed field (nothing when every delta is zero), removing the field
#   when every count is zero.
PACKED_LUA = (
    "local C = {"
    + ", ".join(f"'{name}'" for name in COUNTERS)
    + "}\n"
    + f"local PACKED = '{PACKED}'\n"
    + """
local INDEX = {}
for i, name in ipairs(C) do INDEX[name] = i end
local function unpack_counts(text)
  local counts, i = {}, 1
  for n in string.gmatch(text or '', '[^,]+') do
    counts[i] = tonumber(n)
    i = i + 1
  end
  return counts
end
local function add_packed(key, field, deltas)
  local any = false
  for _, by in pairs(deltas) do if by ~= 0 then any = true end end
  if not any then return end
  local counts = unpack_counts(redis.call('HGET', key, field))
  for i, by in pairs(deltas) do counts[i] = (counts[i] or 0) + by end
  local n = #C
  while n > 0 and (counts[n] or 0) == 0 do n = n - 1 end
  if n == 0 then
    redis.call('HDEL', key, field)
    return
  end
  local out = {}
  for i = 1, n do out[i] = string.format('%d', counts[i] or 0) end
  redis.call('HSET', key, field, table.concat(out, ','))
end
"""
)

# Dimension kind (as stats queries name it) -> the prefix of its values in field names.
DIMENSIONS = {"model": "m:", "group": "g:", "user": "u:", "meta": "k:"}
SEPARATOR = "|"
_MODEL, _GROUP, _USER, _META = DIMENSIONS["model"], DIMENSIONS["group"], DIMENSIONS["user"], DIMENSIONS["meta"]

_SCALARS = (str, int, float, bool)


def utc_hour(ts: float) -> str:
    """The hour bucket (``keys.ProjectKeys.stats_hour``) of a time: ``2026-11-27T13`` (UTC)."""
    return _hour_label(int(ts // 3600))


@functools.lru_cache(maxsize=256)
def _hour_label(hour: int) -> str:
    # Formatting a datetime per event cost more than the rest of preparing it; hours repeat.
    return datetime.fromtimestamp(hour * 3600, tz=UTC).strftime("%Y-%m-%dT%H")


def in_period(label: str, since: str | None, until: str | None) -> bool:
    """Whether a stats or matches bucket is in a range (``since``/``until``: a day ``YYYY-MM-DD``
    or an hour ``YYYY-MM-DDTHH``, inclusive). A bucket is an hour, or a whole UTC day once its
    hours are rolled up (workers/stats_rollup.py): a day is in the range if any of it is."""
    if len(label) == 10:  # a day
        return (since is None or label >= since[:10]) and (until is None or label <= until[:10])
    return (since is None or label >= since[:13]) and (until is None or label[: len(until)] <= until)


def dimension(kind: str, value: str) -> str:
    """A dimension as fields name it: ``dimension("model", "m1")`` is ``"m:m1"``."""
    return DIMENSIONS[kind] + value


def field(metric: str, dim: str | None = None) -> str:
    """A stats hash field: the metric alone, or under one dimension."""
    return metric if dim is None else f"{metric}{SEPARATOR}{dim}"


def split_field(name: str) -> tuple[str, str | None]:
    """(metric, dimension or None) of a stats hash field."""
    metric, sep, dim = name.partition(SEPARATOR)
    return metric, (dim if sep else None)


def stat_dims(model: str, group_id: str, user_id: str | None, metadata: dict[str, Any] | None) -> list[str]:
    """The dimensions a response's counters are also kept under: its model (if any), its prompt
    group, its user (if any) and its short scalar metadata values (the ingest script counts only
    those of the keys the project allow-lists). The script works these out from the response's
    stored fields (ingest.lua ``dims_of``; the metadata values' are stored, ``ingest.STORED_META_DIMS``)."""
    bounded = bounded_dims(model, metadata)
    unbounded = [_GROUP + group_id, _USER + user_id] if user_id else [_GROUP + group_id]
    return bounded[:1] + unbounded + bounded[1:] if model else unbounded + bounded


def bounded_dims(model: str, metadata: dict[str, Any] | None) -> list[str]:
    """The dimensions of a response whose values a project counts a bounded number of: its model
    (if any, first) and its short scalar metadata values. A response is counted under these
    from the start, and under its group and user once it has feedback (ingest.lua)."""
    dims = [_MODEL + model] if model else []
    if metadata:
        for k, v in sorted(metadata.items()) if len(metadata) > 1 else metadata.items():
            if type(v) is str:
                text = v
            elif isinstance(v, bool):
                text = "true" if v else "false"
            elif isinstance(v, _SCALARS):
                text = str(v)
            else:
                continue
            if len(text) <= defaults.MAX_STAT_VALUE_CHARS:
                dims.append(f"{_META}{k}={text}")
    return dims


# KEYS[1] a hash. ARGV: a packed field, then metric place (1-based, COUNTERS order), count, ...:
# the counts added to the field (add_packed), for writers that queue commands (a transaction).
ADD_PACKED = (
    PACKED_LUA
    + """
local deltas = {}
for i = 2, #ARGV, 2 do deltas[tonumber(ARGV[i])] = tonumber(ARGV[i + 1]) end
add_packed(KEYS[1], ARGV[1], deltas)
return 1
"""
)


def add_packed_command(key: str, packed_field: str, counts: dict[str, int]) -> list[Any]:
    """The command (an EVAL of ``ADD_PACKED``) that adds ``counts`` to a packed field."""
    places = [x for metric, n in sorted(counts.items()) for x in (COUNTERS.index(metric) + 1, n)]
    return ["EVAL", ADD_PACKED, 1, key, packed_field, *places]


def pack(counts: dict[str, int]) -> str:
    """Counters as a packed field's value (``COUNTERS`` order, trailing zeros left out)."""
    values = [counts.get(name, 0) for name in COUNTERS]
    while values and values[-1] == 0:
        values.pop()
    return ",".join(map(str, values))


def unpack(value: bytes | str) -> dict[str, int]:
    """A packed field's counters, by metric (those it holds, zeros left out)."""
    text = value.decode() if isinstance(value, bytes) else value
    return {name: int(n) for name, n in zip(COUNTERS, text.split(",") if text else [], strict=False) if int(n)}


def split_hash(raw: dict[bytes, bytes]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """A stats hash as (plain metric -> count, dimension -> metric -> count)."""
    plain: dict[str, int] = {}
    dims: dict[str, dict[str, int]] = {}
    for k, v in raw.items():
        metric, dim = split_field(k.decode())
        if dim is None:
            plain[metric] = int(v)
        elif metric == PACKED:
            counts = dims.setdefault(dim, {})
            for name, n in unpack(v).items():
                counts[name] = counts.get(name, 0) + n
        else:
            dims.setdefault(dim, {})[metric] = int(v)
    return plain, dims
