-- KEYS[i] histories
-- ARGV[i] the offset after which KEYS[i] is read, ARGV[#KEYS + 1] most messages per history
-- Returns per history: 1 when a message after its starting point was dropped (else 0), then
-- its messages after that point: {id, {'k', kind, 'p', payload}}, ...
local count = ARGV[#KEYS + 1]
local out = {}
for i, key in ipairs(KEYS) do
  local lost = 0
  local entries = {}
  if redis.call('EXISTS', key) == 1 then
    local info = redis.call('XINFO', 'STREAM', key)
    for j = 1, #info, 2 do
      if info[j] == 'max-deleted-entry-id' then
        local dropped = tonumber(string.match(info[j + 1], '^%d+'))
        if dropped and dropped > tonumber(ARGV[i]) then
          lost = 1
        end
      end
    end
    entries = redis.call('XRANGE', key, '(' .. ARGV[i] .. '-0', '+', 'COUNT', count)
  end
  out[#out + 1] = lost
  out[#out + 1] = entries
end
return out
