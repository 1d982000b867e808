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

-- Keeps a message in `stream` under `offset`, then drops what is beyond `keep` messages or
-- older than the retention. Dropping is done by XDEL, which records the highest id dropped
-- (`max-deleted-entry-id`), so a reader can tell that messages it needed are gone.
local function keep_message(stream, offset, now_ms, kind, payload, keep, retention_ms)
  redis.call('XADD', stream, offset .. '-0', 'k', kind, 'p', payload)
  local dropped = {}
  local over = redis.call('XLEN', stream) - tonumber(keep)
  if over > 0 then
    for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', over)) do
      dropped[#dropped + 1] = entry[1]
    end
  end
  local horizon = (now_ms - tonumber(retention_ms) - CLOCK_EPOCH_MS) * OFFSETS_PER_MS
  if horizon > 0 then
    local old = redis.call('XRANGE', stream, '-', string.format('%.0f', horizon) .. '-0',
      'COUNT', 128)
    for _, entry in ipairs(old) do
      dropped[#dropped + 1] = entry[1]
    end
  end
  if #dropped > 0 then
    redis.call('XDEL', stream, unpack(dropped))
  end
  redis.call('PEXPIRE', stream, 2 * tonumber(retention_ms) + 1000)
end
