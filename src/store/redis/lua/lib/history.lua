-- The hub's clock and histories (see `hub/history.rs`). An offset is the time in ms since
-- CLOCK_EPOCH_MS times OFFSETS_PER_MS, or one more than the last offset given when that is
-- higher; every number stays below 2^53, so Lua's doubles hold it exactly.

-- The wall-clock time of the server, in ms.
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The offset below every message sent from now on, as text.
local function clock_now(clock, now_ms)
  local floor = (now_ms - CLOCK_EPOCH_MS) * OFFSETS_PER_MS - 1
  local last = tonumber(redis.call('GET', clock) or '0')
  if last > floor then
    floor = last
  end
  if floor < 0 then
    floor = 0
  end
  return string.format('%.0f', floor)
end

-- Gives the next offset, as text. The clock keeps at least a day, and four retentions.
local function next_offset(clock, now_ms, retention_ms)
  local offset = tonumber(clock_now(clock, now_ms)) + 1
  local text = string.format('%.0f', offset)
  local ttl = 4 * tonumber(retention_ms)
  if ttl < 86400000 then
    ttl = 86400000
  end
  redis.call('SET', clock, text, 'PX', ttl)
  return text
end

-- Deletes the entries of `stream` that `entries` (as XRANGE returns them: {id, {'k', kind,
-- 'p', payload}}) lists, by XDEL, which records the highest id dropped (`max-deleted-entry-id`),
-- so a reader can tell that messages it needed are gone. Returns the payload bytes freed.
local function drop_entries(stream, entries)
  if #entries == 0 then
    return 0
  end
  local ids, freed = {}, 0
  for i, entry in ipairs(entries) do
    ids[i] = entry[1]
    freed = freed + #entry[2][4]
  end
  redis.call('XDEL', stream, unpack(ids))
  return freed
end

-- Takes `stream` out of the accounting of kept bytes (KEPT_BYTES_KEY, KEPT_AT_KEY). Returns the
-- bytes it was counted for.
local function uncount(stream)
  local bytes = tonumber(redis.call('HGET', KEPT_BYTES_KEY, stream) or '0') or 0
  redis.call('HDEL', KEPT_BYTES_KEY, stream)
  redis.call('ZREM', KEPT_AT_KEY, stream)
  return bytes
end

-- Empties `stream` and marks everything it held as dropped, for a reader from before it.
local function drop_all(stream)
  if redis.call('EXISTS', stream) == 0 then
    return
  end
  local info = redis.call('XINFO', 'STREAM', stream)
  for j = 1, #info, 2 do
    if info[j] == 'last-generated-id' then
      redis.call('XTRIM', stream, 'MAXLEN', 0)
      redis.call('XSETID', stream, info[j + 1], 'MAXDELETEDID', info[j + 1])
      return
    end
  end
end

-- Keeps a message in `stream` under `offset`, then drops the oldest messages beyond `keep`
-- messages or `keep_bytes` payload bytes, or older than the retention. Every history's bytes
-- are counted in KEPT_BYTES_KEY (stream -> bytes), when each was last written in KEPT_AT_KEY,
-- and their sum in KEPT_TOTAL_KEY: past `total_bytes`, the histories written to least recently
-- are emptied first, a few per call. Histories whose TTL ran out leave the count a few per
-- call too. On a cluster, those other histories are keys the call did not declare: it returns
-- their names instead, for the store to evict with `evict.lua` (on one server it returns an
-- empty table).
local function keep_message(stream, offset, now_ms, kind, payload, keep, retention_ms,
    keep_bytes, total_bytes)
  local evict = {}
  redis.call('XADD', stream, offset .. '-0', 'k', kind, 'p', payload)
  local held = tonumber(redis.call('HGET', KEPT_BYTES_KEY, stream) or '0') or 0
  held = held + #payload
  local freed = 0
  local over = redis.call('XLEN', stream) - tonumber(keep)
  if over > 0 then
    freed = freed + drop_entries(stream, redis.call('XRANGE', stream, '-', '+', 'COUNT', over))
  end
  local horizon = (now_ms - tonumber(retention_ms) - CLOCK_EPOCH_MS) * OFFSETS_PER_MS
  if horizon > 0 then
    freed = freed + drop_entries(stream, redis.call('XRANGE', stream, '-',
      string.format('%.0f', horizon) .. '-0', 'COUNT', 128))
  end
  keep_bytes = tonumber(keep_bytes)
  while held - freed > keep_bytes do
    local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    if #oldest == 0 then
      break
    end
    freed = freed + drop_entries(stream, oldest)
  end
  held = held - freed
  local life = 2 * tonumber(retention_ms) + 1000
  redis.call('PEXPIRE', stream, life)
  redis.call('HSET', KEPT_BYTES_KEY, stream, held)
  redis.call('ZADD', KEPT_AT_KEY, now_ms, stream)
  local total = redis.call('INCRBY', KEPT_TOTAL_KEY, #payload - freed)
  -- Histories nobody wrote to for their whole life have expired: out of the count.
  for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEPT_AT_KEY, '-inf', now_ms - life - 1000,
      'LIMIT', 0, 8)) do
    if CLUSTER then
      evict[#evict + 1] = gone
    else
      total = total - uncount(gone)
      redis.call('DEL', gone)
    end
  end
  -- Over the bound in all: the least recently written histories go, whole.
  total_bytes = tonumber(total_bytes)
  if CLUSTER and total > total_bytes then
    for _, oldest in ipairs(redis.call('ZRANGE', KEPT_AT_KEY, 0, 8)) do
      if oldest ~= stream then
        evict[#evict + 1] = oldest
      end
    end
  end
  local rounds = 0
  while not CLUSTER and total > total_bytes and rounds < 8 do
    rounds = rounds + 1
    local oldest = redis.call('ZRANGE', KEPT_AT_KEY, 0, 1)
    local victim = oldest[1]
    if victim == stream then
      victim = oldest[2]
    end
    if not victim then
      break
    end
    drop_all(victim)
    total = total - uncount(victim)
  end
  if total < 0 then
    total = 0
  end
  redis.call('SET', KEPT_TOTAL_KEY, total, 'PX', life + 1000)
  redis.call('PEXPIRE', KEPT_BYTES_KEY, life + 1000)
  redis.call('PEXPIRE', KEPT_AT_KEY, life + 1000)
  return evict
end
