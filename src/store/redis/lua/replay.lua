-- One step of reading what a resumed session missed, newest first (see `hub.rs`).
-- KEYS[i] histories
-- ARGV[i] the offset after which KEYS[i] is read; ARGV[#KEYS + i] the offset before which it
--   is read, or '+' from its newest message on (a history's first step);
-- ARGV[2 * #KEYS + 1] most messages per history, ARGV[2 * #KEYS + 2] payload bytes after which
--   the step stops (it reads at least one message when there is one).
-- Returns per history: 1 when a message after its starting point was dropped (looked at in
-- its first step; else 0), 1 when its range may hold more than was returned (else 0), then
-- the messages read, newest first: {{id, {'k', kind, 'p', payload}}, ...}.
-- Messages are read one at a time, so a step holds Redis for little more than its bytes cost.
local n = #KEYS
local count = tonumber(ARGV[2 * n + 1])
local budget = tonumber(ARGV[2 * n + 2])
local spent = 0
local out = {}
-- A history's first step reads its XINFO once instead of asking whether it exists: that tells
-- whether it exists, whether a message after the starting point was dropped, whether it holds
-- anything newer than the starting point at all (else nothing is read), and which message is
-- its oldest (the reading stops there, without one more call to find nothing).
for i, key in ipairs(KEYS) do
  local lost, more, entries = 0, 0, {}
  local after = tonumber(ARGV[i])
  local high = ARGV[n + i]
  local reading, oldest = true, false
  if high == '+' then
    local info = redis.pcall('XINFO', 'STREAM', key)
    if info.err then
      -- No such history (or not a stream): nothing to read, nothing lost.
      reading = false
    else
      for j = 1, #info, 2 do
        local field = info[j]
        if field == 'max-deleted-entry-id' then
          local dropped = tonumber(string.match(info[j + 1], '^%d+'))
          if dropped and dropped > after then
            lost = 1
          end
        elseif field == 'last-generated-id' then
          local last = tonumber(string.match(info[j + 1], '^%d+'))
          if last and last <= after then
            reading = false
          end
        elseif field == 'first-entry' and info[j + 1] then
          oldest = info[j + 1][1]
        end
      end
    end
  else
    high = '(' .. high .. '-0'
  end
  if reading then
    local low = '(' .. ARGV[i] .. '-0'
    while true do
      if #entries >= count or (spent > 0 and spent >= budget) then
        more = 1
        break
      end
      local got = redis.call('XREVRANGE', key, high, low, 'COUNT', 1)
      if #got == 0 then
        break
      end
      entries[#entries + 1] = got[1]
      spent = spent + #got[1][2][4]
      if got[1][1] == oldest then
        break
      end
      high = '(' .. got[1][1]
    end
  end
  out[#out + 1] = lost
  out[#out + 1] = more
  out[#out + 1] = entries
end
return out
