"""Claims on dirty prompt groups, so several workers pair a project's groups at once and never the
same group twice, and a group leaves the dirty set only in the write that stores its pairs.

A dirty group's score in ``P:dirty`` is the time from which it may be claimed. ``claim`` takes
up to N claimable groups: it pushes their scores to the end of a lease and records the batch's
token in ``P:pairclaims``. ``apply`` then writes each group's changes in one atomic script call,
but only for groups this batch still holds and whose version did not change since they were
read; a group that changed goes back to claimable at once, and one whose lease lapsed (its
worker was too slow, or killed) belongs to whoever claimed it next. A killed worker's groups are
claimable again when the lease ends.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from likeloop_server import defaults, keys
from likeloop_server.identity import new_id

# KEYS: dirty key, claims key. ARGV: now, lease end, token, how many, then the group ids to
# claim (none: the oldest claimable ones). A named group is claimed when it is claimable or not dirty.
_CLAIM = """
local dirty, claims = KEYS[1], KEYS[2]
local now, lease_end, token, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local gids = {}
if #ARGV > 4 then
  for i = 5, #ARGV do
    local score = redis.call('ZSCORE', dirty, ARGV[i])
    if not score or tonumber(score) <= tonumber(now) then table.insert(gids, ARGV[i]) end
  end
else
  gids = redis.call('ZRANGEBYSCORE', dirty, '-inf', now, 'LIMIT', 0, n)
end
for _, gid in ipairs(gids) do
  redis.call('ZADD', dirty, lease_end, gid)
  redis.call('HSET', claims, gid, token)
end
return gids
"""

# KEYS: dirty key, claims key. ARGV: token, now, JSON [[group id, group state key (its version in
# field v: likeloop_server/group_state.py), version read, commands]], then binary values: the
# commands write the group's keys, all of the project's slot (its hash tag); a command's argument
# [n] stands for ARGV[n] (bytes JSON cannot carry).
# Returns a status per group: done, changed (claimable again) or lost (claimed by another).
_APPLY = """
local dirty, claims = KEYS[1], KEYS[2]
local token, now = ARGV[1], ARGV[2]
local out = {}
for i, g in ipairs(cjson.decode(ARGV[3])) do
  local gid, vkey, version, commands = g[1], g[2], g[3], g[4]
  if redis.call('HGET', claims, gid) ~= token then
    out[i] = 'lost'
  elseif (redis.call('HGET', vkey, 'v') or '0') ~= version then
    redis.call('ZADD', dirty, 'XX', now, gid)
    redis.call('HDEL', claims, gid)
    out[i] = 'changed'
  else
    for _, command in ipairs(commands) do
      for j, arg in ipairs(command) do
        if type(arg) == 'table' then command[j] = ARGV[arg[1]] end
      end
      redis.call(unpack(command))
    end
    redis.call('ZREM', dirty, gid)
    redis.call('HDEL', claims, gid)
    out[i] = 'done'
  end
end
return out
"""


class Claims:
    """Claims on one project's dirty groups, through two Lua scripts registered on ``conn``; a
    claim lapses ``lease_s`` after it is made."""

    def __init__(self, conn: redis.Redis, pk: keys.ProjectKeys, lease_s: float = defaults.PAIRING_LEASE_S) -> None:
        self.conn, self.pk, self.lease_s = conn, pk, lease_s
        self._claim = conn.register_script(_CLAIM)
        self._apply = conn.register_script(_APPLY)

    def claim(self, now: float, limit: int = 0, group_ids: list[str] | None = None) -> tuple[str, list[str]]:
        """(token, claimed group ids): up to ``limit`` claimable groups, oldest first, or those of
        ``group_ids`` that are claimable or not dirty at all."""
        token = new_id()
        args = [repr(now), repr(now + self.lease_s), token, limit, *(group_ids or [])]
        return token, [g.decode() for g in self._claim(keys=[self.pk.dirty, self.pk.pair_claims], args=args)]

    def apply(self, token: str, now: float, writes: list[tuple[str, str, list[list[Any]]]]) -> list[str]:
        """Write each (group id, version read, commands) this token still holds, atomically per
        call; returns done, changed or lost per group."""
        blobs: list[bytes] = []

        def carried(command: list[Any]) -> list[Any]:  # bytes travel as ARGV, referred to by place
            if not any(type(arg) is bytes for arg in command):
                return command
            out = []
            for arg in command:
                if type(arg) is bytes:
                    blobs.append(arg)
                    arg = [3 + len(blobs)]
                out.append(arg)
            return out

        payload = [
            [gid, self.pk.group(gid), version, [carried(c) for c in commands]] for gid, version, commands in writes
        ]
        args = [token, repr(now), orjson.dumps(payload), *blobs]
        return [s.decode() for s in self._apply(keys=[self.pk.dirty, self.pk.pair_claims], args=args)]
