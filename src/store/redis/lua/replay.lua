-- One step of reading what a resumed session missed, newest first (see `hub/mod.rs`).
-- KEYS[i] histories
-- ARGV[i] the offset after which KEYS[i] is read; ARGV[#KEYS + i] the offset before which it
--   is read, or '+' from its newest message on (a history's first step);
-- ARGV[2 * #KEYS + 1] most messages per history, ARGV[2 * #KEYS + 2] payload bytes after which
--   the step stops (it reads at least one message when there is one).
-- Returns per history: 1 when a message after its starting point was dropped (known once its
-- reading reaches the starting point; else 0), 1 when its range may hold more than was
-- returned (else 0), then the messages read, newest first: {{id, {'k', kind, 'p', payload}}, ...}.
--
-- Messages are read a few at a time (BATCH), so a step holds Redis for little more than its
-- bytes cost. A history drops its oldest messages first (see `lib/history.lua`), so when it
-- still holds a message at or before the starting point, nothing after it was dropped; only a
-- history that holds nothing that old is asked (XINFO, which costs several reads) whether it
-- dropped a message after it.
local BATCH = 8
local n = #KEYS
local count = tonumber(ARGV[2 * n + 1])
local budget = tonumber(ARGV[2 * n + 2])
local spent = 0
local out = {}

-- Whether `key` dropped a message after `after`, once it is known to hold none that old.
local function dropped_after(key, after)
  local info = redis.pcall('XINFO', 'STREAM', key)
  if info.err then
    -- No such history (it expired, or never was): nothing it held is missed.
    return false
  end
  for j = 1, #info, 2 do
    if info[j] == 'max-deleted-entry-id' then
      local dropped = tonumber(string.match(info[j + 1], '^%d+'))
      return dropped ~= nil and dropped > tonumber(after)
    end
  end
  return false
end

for i, key in ipairs(KEYS) do
  local lost, more, entries = 0, 0, {}
  local after = ARGV[i]
  local high = ARGV[n + i]
  -- A history that does not exist holds nothing, and lost nothing (see `dropped_after`).
  local reading = high ~= '+' or redis.call('EXISTS', key) == 1
  if high ~= '+' then
    high = '(' .. high .. '-0'
  end
  if reading then
    local low = '(' .. after .. '-0'
    local reached = false
    while true do
      if #entries >= count or (spent > 0 and spent >= budget) then
        more = 1
        break
      end
      local want = math.min(count - #entries, BATCH)
      local got = redis.call('XREVRANGE', key, high, low, 'COUNT', want)
      for _, entry in ipairs(got) do
        entries[#entries + 1] = entry
        spent = spent + #entry[2][4]
      end
      if #got < want then
        reached = true
        break
      end
      high = '(' .. got[#got][1]
    end
    if reached and #redis.call('XREVRANGE', key, after .. '-0', '-', 'COUNT', 1) == 0
        and dropped_after(key, after) then
      lost = 1
    end
  end
  out[#out + 1] = lost
  out[#out + 1] = more
  out[#out + 1] = entries
end
return out
