-- Store one validated batch of events atomically (a Lua script runs as one Redis transaction).
--
-- KEYS: the key names and prefixes of the project (K below; likeloop_server/keys.py builds
--       them and batch_store.py puts the table that names them before this text, with D: the
--       stats dimensions' prefixes, counters.DIMENSIONS, and G: the fields of a group's
--       hash it writes, group_state.py).
-- ARGV: response TTL s, pending TTL s, dedupe TTL s, JSON array of prepared events, now (unix
--       seconds), how many recent comments to keep, the most stats dimension values (models,
--       metadata values) a project counts, the most comments a response keeps, the most
--       feedback events one unknown response may have waiting, JSON array of the batch's
--       response shapes, 1 to archive the batch (else 0).
--       An event is a JSON object of feedback (likeloop_server/ingest.py), or an array for a
--       response: {event id to dedupe by or '', 1 if its id is fresh else 0, response id,
--       group id, shape index, the rest of its hash fields as name, value, ...} (not its
--       group and hour: the script writes those). A shape is an hour and the bounded
--       dimensions a response is counted under there ({hour, dim, ...}): responses of one
--       shape are counted together, once per batch.
-- Returns {statuses, newly_dirty_group_ids}; statuses: one string, a status per event separated
-- by ',': accepted | duplicate | pending | comment_limit (the response has its most comments) |
-- pending_limit (its waiting list is full) | group_mismatch (a comparison of responses to
-- different prompts).
--
-- What is permanent grows with feedback, never with unlabelled responses alone: a response
-- counts under its model and allow-listed metadata values (a bounded set per project), and
-- under its prompt group and user only once it has feedback.
--
-- The keys a batch touches are known only while it runs (a feedback event's group is read from
-- its response), so they are built here from K's prefixes, which are declared in KEYS. Every
-- one starts with the project's hash tag (ll:p:{<project>}:), so on a Redis Cluster all of them,
-- declared or built, are in the slot the script runs on.

local resp_ttl = tonumber(ARGV[1])
-- Numbers given to redis.call are formatted anew on every call (Lua's %.14g), which cost more
-- than the EXPIRE itself: the lifetimes go to Redis as the strings they came as.
local resp_ttl_s, pending_ttl_s, dedupe_ttl_s = ARGV[1], ARGV[2], ARGV[3]
local group_ttl_s = tostring(resp_ttl + 86400)  -- a group outlives its responses by a day
local events = cjson.decode(ARGV[4])
local now = ARGV[5]
local recent_comments = tonumber(ARGV[6])
local max_dim_values = tonumber(ARGV[7])
local max_comments = tonumber(ARGV[8])
local max_pending = tonumber(ARGV[9])
local shapes = cjson.decode(ARGV[10])
local archive = ARGV[11] == '1'
local shape_counts = {}  -- shape index -> responses of that shape stored

local statuses = {}
local stored_any = false  -- some event was accepted or waits for its response: archive the batch
-- Feedback that waits for its response is rare: skip looking for it unless some is waiting.
-- Asked once, when a response that could have some (one with a client-chosen id) comes.
local any_pending = nil
local newly_dirty = {}
local bucket_hours = {}  -- hour stats hash -> its hour
local grown = {}  -- groups that got a response -> their TTL before (-2: created now, -1: kept)
local kept = {}  -- groups made permanent by feedback in this batch
-- Counter increments are summed here and written once at the end: a batch of similar events
-- bumps the same few fields, so this saves most of the script's HINCRBY calls.
local increments = {}

local function incr(key, field, by)
  local fields = increments[key]
  if not fields then
    fields = {}
    increments[key] = fields
  end
  fields[field] = (fields[field] or 0) + by
end

-- Whether a bounded dimension (a model, a metadata key=value; D names their prefixes) is counted: a metadata key
-- only when the project allow-lists it, and any value only while the project's set of counted
-- values has room (a value in the set stays counted; one refused stays refused while it is full).
local counted_keys = nil  -- allow-listed metadata keys, read once per batch
local dim_counted = {}
local function counted(d)
  local ok = dim_counted[d]
  if ok ~= nil then return ok end
  ok = true
  if string.sub(d, 1, #D.meta) == D.meta then
    if counted_keys == nil then
      counted_keys = {}
      local listed = redis.call('HGET', K.config, 'stats_metadata_keys')
      if listed then
        for name in string.gmatch(listed, '[^,]+') do counted_keys[name] = true end
      end
    end
    local eq = string.find(d, '=', #D.meta + 1, true)
    ok = eq ~= nil and counted_keys[string.sub(d, #D.meta + 1, eq - 1)] == true
  end
  if ok and redis.call('SISMEMBER', K.statdims, d) == 0 then
    ok = redis.call('SCARD', K.statdims) < max_dim_values
    if ok then redis.call('SADD', K.statdims, d) end
  end
  dim_counted[d] = ok
  return ok
end

-- Unbounded dimensions: prompt group and user, counted for labelled responses only.
local function unbounded(d)
  return string.sub(d, 1, #D.group) == D.group or string.sub(d, 1, #D.user) == D.user
end

local function incr_both(total, bucket, name, by)
  incr(total, name, by)
  incr(bucket, name, by)
end

-- The stats bucket of an hour: the hour, or its day once that day's hours are rolled up
-- (workers/stats_rollup.py; K.statsrolled names the last day rolled, read once per batch).
local rolled = nil
local function period(hour)
  if rolled == nil then rolled = redis.call('GET', K.statsrolled) or '' end
  local day = string.sub(hour, 1, 10)
  if day <= rolled then return day end
  return hour
end

-- A day whose per-user counters left its bucket (K.statsusers, read once per batch): a user's
-- count for it goes to the project's total only, so old buckets stay without them.
local users_pruned = nil
local function users_gone(bucket_period)
  if users_pruned == nil then users_pruned = redis.call('GET', K.statsusers) or '' end
  return #bucket_period == 10 and bucket_period <= users_pruned
end

-- A user's counters in a stats hash are one packed field (counters.PACKED: all|u:<user>, every
-- metric's count in C's order), and so are a group's in its hash (group_state.py: t all time,
-- h:<hour or rolled day> per bucket): the increments of a batch are summed here by metric index
-- and added to each field once at the end (add_packed, counters.PACKED_LUA).
local packed = {}  -- hash -> packed field -> metric index -> delta
local function incr_packed(key, field, metric, by)
  local fields = packed[key]
  if not fields then
    fields = {}
    packed[key] = fields
  end
  local deltas = fields[field]
  if not deltas then
    deltas = {}
    fields[field] = deltas
  end
  local i = INDEX[metric]
  deltas[i] = (deltas[i] or 0) + by
end

-- A labelled response's counts under its prompt group are kept in the group's hash, so they
-- leave Redis with the group.
local function incr_group(d, bucket_period, metric, by)
  local key = K.group .. string.sub(d, #D.group + 1)
  incr_packed(key, G.total, metric, by)
  incr_packed(key, G.bucket .. bucket_period, metric, by)
end

-- Count a metric under an unbounded dimension: a group in its hash, a user in the stats
-- hashes (in the total only once the bucket's per-user counters are gone).
local function incr_dim(total, bucket, bucket_period, d, metric, by)
  if string.sub(d, 1, #D.group) == D.group then
    incr_group(d, bucket_period, metric, by)
  else
    local field = PACKED .. '|' .. d
    incr_packed(total, field, metric, by)
    if not users_gone(bucket_period) then incr_packed(bucket, field, metric, by) end
  end
end

-- Bump a counter in the project total and in the event's hour bucket, plainly and for each of
-- the response's counted dimensions; ``labelled`` says whether the group and user count too.
local function bump(dims, metric, by, hour, labelled)
  hour = period(hour)
  local total, bucket = K.stats, K.stats_hour .. hour
  incr_both(total, bucket, metric, by)
  for _, d in ipairs(dims) do
    if unbounded(d) then
      if labelled then incr_dim(total, bucket, hour, d, metric, by) end
    elseif counted(d) then
      incr_both(total, bucket, metric .. '|' .. d, by)
    end
  end
  bucket_hours[bucket] = hour
end

-- A response's first feedback: from now on its group and user count it, in its own hour.
local function count_labelled(dims, hour)
  hour = period(hour)
  local total, bucket = K.stats, K.stats_hour .. hour
  for _, d in ipairs(dims) do
    if unbounded(d) then incr_dim(total, bucket, hour, d, 'responses', 1) end
  end
  bucket_hours[bucket] = hour
end

-- Compacted groups (workers/compaction.py) left Redis but for two indexes (compacted.py): a
-- response id's sha1 finds its group, a group id its snapshot. Looked up only on a miss (feedback
-- for a response not stored, a response that starts a group) and only while the project has any.
-- The indexes hold hex digits as bytes (a group id's 32 digits as 16 bytes).
local has_compacted = nil
local function unhex(text)
  return (string.gsub(text, '..', function(cc) return string.char(tonumber(cc, 16)) end))
end
local function tohex(raw)
  return (string.gsub(raw, '.', function(c) return string.format('%02x', string.byte(c)) end))
end
local function compacted(index, id, whole)
  if has_compacted == nil then
    has_compacted = tonumber(redis.call('HGET', K.compaction, 'groups') or '0') > 0
  end
  if not has_compacted then return nil end
  local h = redis.sha1hex(id)
  if whole then
    if redis.call('HEXISTS', index .. string.sub(h, 1, 3), unhex(id)) == 1 then return id end
    return nil
  end
  local gid = redis.call('HGET', index .. string.sub(h, 1, 3), unhex(string.sub(h, 4, 15)))
  if gid then return tohex(gid) end
  return nil
end

-- A compacted group is needed again: pairing brings it back from the archive first, then applies
-- what waits for its responses.
local function wake(gid)
  if redis.call('ZADD', K.dirty, 'NX', now, gid) == 1 then
    table.insert(newly_dirty, gid)
  end
end

local function mark_dirty(gid)
  redis.call('HINCRBY', K.group .. gid, G.version, 1)  -- the group's version
  if redis.call('ZADD', K.dirty, 'NX', now, gid) == 1 then
    table.insert(newly_dirty, gid)
  end
end

-- The fields of a response hash its counted dimensions come from (counters.stat_dims): its
-- group, hour, model, user and the JSON of its counted metadata values (ingest.STORED_META_DIMS:
-- kdims); responses stored before layout 9 keep all of their dimensions in 'dims'.
local DIM_FIELDS = {'group', 'hour', 'model', 'user_id', 'kdims', 'dims'}

-- A response's dimensions from its DIM_FIELDS (HMGET): model (if any), group, user (if any),
-- then its metadata values.
local function dims_of(row)
  if row[6] then return cjson.decode(row[6]) end
  local dims = {}
  if row[3] and row[3] ~= '' then table.insert(dims, D.model .. row[3]) end
  table.insert(dims, D.group .. row[1])
  if row[4] and row[4] ~= '' then table.insert(dims, D.user .. row[4]) end
  if row[5] then
    for _, d in ipairs(cjson.decode(row[5])) do table.insert(dims, d) end
  end
  return dims
end

-- split "a|b|c" into its fields
local function fields(s)
  local out = {}
  local start = 1
  while true do
    local i = string.find(s, '|', start, true)
    if not i then
      table.insert(out, string.sub(s, start))
      return out
    end
    table.insert(out, string.sub(s, start, i - 1))
    start = i + 1
  end
end

-- Apply one feedback event to a stored response. Returns true if the response's label inputs
-- (votes, ratings, correction) changed, so its group must be paired again.
local function apply(ev, rkey, dims)
  local rid, t, day, user = ev.rid, ev.t, ev.hour, ev.user
  if t == 'like' or t == 'dislike' then
    local vote = VOTE .. user  -- a field of the response's hash (stored.VOTE)
    local new = (t == 'like') and '1' or '-1'
    local old = redis.call('HGET', rkey, vote)
    if old then
      local o = fields(old)
      if o[1] == new then return false end
      bump(dims, (o[1] == '1') and 'likes' or 'dislikes', -1, o[2], true)
    end
    redis.call('HSET', rkey, vote, new .. '|' .. day)
    bump(dims, (t == 'like') and 'likes' or 'dislikes', 1, day, true)
    return true
  elseif t == 'rating' then
    local rkey2 = K.ratings .. rid
    local new = ev.value .. '|' .. ev.scale .. '|' .. day
    local old = redis.call('HGET', rkey2, user)
    if old then
      local o = fields(old)
      if o[1] == tostring(ev.value) and o[2] == tostring(ev.scale) then return false end
      bump(dims, 'ratings', -1, o[3], true)
      bump(dims, 'rating_sum', -tonumber(o[1]), o[3], true)
    end
    redis.call('HSET', rkey2, user, new)
    bump(dims, 'ratings', 1, day, true)
    bump(dims, 'rating_sum', ev.value, day, true)
    return true
  elseif t == 'comment' then
    local comment = cjson.encode({user = user, text = ev.text, ts = ev.ts, response_id = rid})
    redis.call('RPUSH', K.comments .. rid, comment)
    redis.call('LPUSH', K.recentcomments, comment)
    redis.call('LTRIM', K.recentcomments, 0, recent_comments - 1)
    bump(dims, 'comments', 1, day, true)
    return false
  elseif t == 'correction' then
    local had = redis.call('HEXISTS', rkey, 'correction')
    redis.call('HSET', rkey, 'correction', ev.text, 'correction_user', user, 'correction_ts', ev.ts)
    if had == 0 then bump(dims, 'corrections', 1, day, true) end
    return true
  end
  return false
end

-- Whether a comment on a response would pass its limit (comments already stored, or waiting).
local function comments_full(rid)
  return redis.call('LLEN', K.comments .. rid) >= max_comments
end

local function keep(rkey, gkey, dims, hour)
  kept[gkey] = true
  -- Feedback makes a response worth keeping: it and its group no longer expire. The first
  -- feedback (the response still had an expiry) makes it count under its group and user.
  if redis.call('PERSIST', rkey) == 1 and hour then count_labelled(dims, hour) end
  redis.call('PERSIST', gkey)
end

-- Wait for a response not stored yet; false if its waiting list is full (counted as dropped).
local function wait_for(rid, ev)
  local gid = compacted(K.cresp, rid, false)
  if gid then wake(gid) end
  local pkey = K.pending .. rid
  if redis.call('LLEN', pkey) >= max_pending then
    incr(K.stats, 'pending_dropped', 1)
    return false
  end
  redis.call('RPUSH', pkey, cjson.encode(ev))
  redis.call('EXPIRE', pkey, pending_ttl_s)
  -- The marker outlives every pending list, so while it is absent none exists.
  redis.call('SET', K.pendingany, '1', 'EX', pending_ttl_s)
  any_pending = true
  return true
end

-- The status of an event that waits for a response: pending, or pending_limit when it cannot.
local function waited(rid, ev)
  if wait_for(rid, ev) then return 'pending' end
  return 'pending_limit'
end

-- A comparison of two responses: stored as its user's judgement of the pair once both are
-- stored and answer the same prompt group; until then it waits for the missing one.
-- Returns accepted | pending | pending_limit | group_mismatch.
local VERDICTS = {a = true, b = false}
local function compare(ev)
  local a = redis.call('HMGET', K.resp .. ev.rid, unpack(DIM_FIELDS))
  local b = redis.call('HMGET', K.resp .. ev.other, unpack(DIM_FIELDS))
  local missing = (not a[1]) and ev.rid or ((not b[1]) and ev.other or nil)
  if missing then return waited(missing, ev) end
  if a[1] ~= b[1] then return 'group_mismatch' end
  local lo, hi = ev.rid, ev.other
  if hi < lo then lo, hi = hi, lo end
  local verdict = '='
  if ev.choice == 'both_bad' then
    verdict = 'x'
  elseif ev.choice ~= 'tie' then
    local winner = VERDICTS[ev.choice] and ev.rid or ev.other
    verdict = (winner == lo) and '<' or '>'
  end
  local jkey = K.judg .. a[1]
  local field = lo .. '|' .. hi .. '|' .. ev.user
  local old = redis.call('HGET', jkey, field)
  if old and string.sub(old, 1, 1) == verdict and string.sub(old, -2) == '|c' then return 'accepted' end
  redis.call('HSET', jkey, field, verdict .. '|' .. ev.hour .. '|c')
  local dims = dims_of(a)
  if not old then bump(dims, 'comparisons', 1, ev.hour, true) end
  mark_dirty(a[1])
  keep(K.resp .. ev.rid, K.group .. a[1], dims, a[2])
  keep(K.resp .. ev.other, K.group .. a[1], dims_of(b), b[2])
  return 'accepted'
end

-- A ranking of responses of one prompt group, best first (ev.ranks: levels of ids ranked equal):
-- every id above another judges it better; ids ranked equal judge nothing, and the user's earlier
-- judgement of any pair the ranking covers is replaced (or removed). Waits like a comparison.
local function rank(ev)
  local gid, rows = nil, {}
  for _, level in ipairs(ev.ranks) do
    for _, rid in ipairs(level) do
      local row = redis.call('HMGET', K.resp .. rid, unpack(DIM_FIELDS))
      if not row[1] then return waited(rid, ev) end
      if gid and row[1] ~= gid then return 'group_mismatch' end
      gid = row[1]
      rows[rid] = row
    end
  end
  local jkey = K.judg .. gid
  local levels = ev.ranks
  for i = 1, #levels do
    for j = i, #levels do
      for xi, x in ipairs(levels[i]) do
        for yi, y in ipairs(levels[j]) do
          if i < j or xi < yi then
            local lo, hi = x, y
            if hi < lo then lo, hi = hi, lo end
            local field = lo .. '|' .. hi .. '|' .. ev.user
            if i == j then
              redis.call('HDEL', jkey, field)
            else
              redis.call('HSET', jkey, field, ((x == lo) and '<' or '>') .. '|' .. ev.hour .. '|r')
            end
          end
        end
      end
    end
  end
  local first = rows[levels[1][1]]
  local dims = dims_of(first)
  bump(dims, 'rankings', 1, ev.hour, true)
  mark_dirty(gid)
  for rid, row in pairs(rows) do keep(K.resp .. rid, K.group .. gid, dims_of(row), row[2]) end
  return 'accepted'
end

-- Store a response (an array, see above). Returns accepted or duplicate.
local function store_response(ev)
  local rid, gid, fresh, shape = ev[3], ev[4], ev[2] == 1, ev[5]
  local rkey, gkey = K.resp .. rid, K.group .. gid
  -- A fresh id (made by the service for this event) is stored nowhere and awaited by nobody.
  if not fresh and redis.call('EXISTS', rkey) == 1 then return 'duplicate' end
  if grown[gkey] == nil then
    grown[gkey] = redis.call('TTL', gkey)
    -- A new group key for a compacted group: its snapshot joins it when pairing brings it back.
    if grown[gkey] == -2 and compacted(K.cgroup, gid, true) then wake(gid) end
  end
  -- Its id is its key's; its hour is its shape's.
  redis.call('HSET', rkey, 'group', gid, 'hour', shapes[shape][1], unpack(ev, 6))
  redis.call('EXPIRE', rkey, resp_ttl_s)
  redis.call('HSET', gkey, G.member .. rid, '')
  shape_counts[shape] = (shape_counts[shape] or 0) + 1
  if fresh then return 'accepted' end
  if any_pending == nil then any_pending = redis.call('EXISTS', K.pendingany) == 1 end
  if not any_pending then return 'accepted' end
  local pkey = K.pending .. rid
  local waiting = redis.call('LRANGE', pkey, 0, -1)
  if #waiting == 0 then return 'accepted' end
  local dims, hour = dims_of(redis.call('HMGET', rkey, unpack(DIM_FIELDS))), shapes[shape][1]
  local changed = false
  redis.call('DEL', pkey)  -- first: a comparison may wait again, for its other response
  for _, raw in ipairs(waiting) do
    local fb = cjson.decode(raw)
    if fb.t == 'comparison' or fb.t == 'ranking' then
      -- Its client was told "pending": a mismatch found now can only be counted.
      local judge = (fb.t == 'comparison') and compare or rank
      if judge(fb) == 'group_mismatch' then incr(K.stats, fb.t .. 's_dropped', 1) end
    elseif (fb.t ~= 'comment' or not comments_full(rid)) and apply(fb, rkey, dims) then
      changed = true
    end
  end
  keep(rkey, gkey, dims, hour)
  if changed then mark_dirty(gid) end
  return 'accepted'
end

for i, ev in ipairs(events) do
  local status = 'accepted'
  local response = ev[1] ~= nil
  -- Only a client-chosen event id can come again; a response is also deduped by its id.
  local eid = response and ev[1] or (ev.dedupe and ev.eid)
  if eid and eid ~= '' and redis.call('SET', K.seen .. eid, '1', 'NX', 'EX', dedupe_ttl_s) == false then
    status = 'duplicate'
  elseif response then
    status = store_response(ev)
  elseif ev.t == 'comparison' then
    status = compare(ev)
  elseif ev.t == 'ranking' then
    status = rank(ev)
  else
    local rkey = K.resp .. ev.rid
    local stored = redis.call('HMGET', rkey, unpack(DIM_FIELDS))
    if stored[1] then
      if ev.t == 'comment' and comments_full(ev.rid) then
        status = 'comment_limit'
      else
        local dims = dims_of(stored)
        if apply(ev, rkey, dims) then mark_dirty(stored[1]) end
        keep(rkey, K.group .. stored[1], dims, stored[2])
      end
    else
      status = waited(ev.rid, ev)
    end
  end
  statuses[i] = status
  if status == 'accepted' or status == 'pending' then stored_any = true end
end

-- Responses count under their shape's bounded dimensions, in their hour (not under their group
-- or user: those count a response once it has feedback).
for shape, count in pairs(shape_counts) do
  local dims = {unpack(shapes[shape], 2)}
  bump(dims, 'responses', count, shapes[shape][1], false)
end

-- A group outlives its unlabelled responses: its expiry is set a day past theirs, and pushed
-- back only when a new response would outlive it (so at most once a day for a busy group, not
-- once per request). A group with feedback has no expiry (TTL -1); a new group (-2) gets one.
for gkey, ttl in pairs(grown) do
  if not kept[gkey] and ttl ~= -1 and ttl < resp_ttl then
    redis.call('EXPIRE', gkey, group_ttl_s)
  end
end
-- Labelled groups by when they last changed, to the second (a response added to one is a change):
-- compaction takes those unchanged for long. Unlabelled groups are not listed: they expire.
local changed_at = tostring(math.floor(tonumber(now)))
for gkey, _ in pairs(kept) do
  redis.call('ZADD', K.gchanged, changed_at, string.sub(gkey, #K.group + 1))
end
for gkey, ttl in pairs(grown) do
  if ttl == -1 and not kept[gkey] then redis.call('ZADD', K.gchanged, changed_at, string.sub(gkey, #K.group + 1)) end
end
-- Prompt groups by dislikes, so the most disliked are read without reading every group's counts.
local DISLIKES = INDEX['dislikes']
for key, fields in pairs(packed) do
  local deltas = fields[G.total]
  local by = deltas and deltas[DISLIKES]
  if by and by ~= 0 and string.sub(key, 1, #K.group) == K.group then
    redis.call('ZINCRBY', K.disliked, by, string.sub(key, #K.group + 1))
  end
end
for key, fields in pairs(increments) do
  local hour = bucket_hours[key]
  for field, by in pairs(fields) do
    if by ~= 0 then
      local value = redis.call('HINCRBY', key, field, by)
      if hour then
        -- The first count written to an hour's hash tells whether the hash is new: if that
        -- field was absent (or 0), list the hour; if it had a count, the hash existed, and was
        -- listed by whoever made it.
        if value == by then redis.call('SADD', K.statshours, hour) end
        hour = nil
      end
    end
  end
end

for key, fields in pairs(packed) do
  for field, deltas in pairs(fields) do add_packed(key, field, deltas) end
end

local status_line = table.concat(statuses, ',')
-- The event archive (workers/archive.py): the batch as the script got it, each event's status,
-- and the receive time, until an archive run has committed it to S3. A batch that stored
-- nothing (duplicates, refusals) adds nothing.
if archive and stored_any then
  redis.call('XADD', K.archlog, '*', 'e', ARGV[4], 's', status_line, 't', now)
end

return {status_line, newly_dirty}
