-- On a cluster, after a script renewed a session's TTL: keeps its user set and its rooms
-- alive past it, as a script on one server does in the same call (see `write.lua`).
-- KEYS[1] session hash, KEYS[2] its user's set, KEYS[3] the session's rooms
-- Returns the session's rooms, whose sets (in the hub's slot) the store keeps alive next.
local left = outlive(KEYS[2], SET_FLOOR_MS, SET_TTL_MS)
if left >= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  -- How long the set lives, for the next writes to know (see `meta:set_until`).
  redis.call('HSET', KEYS[1], 'meta:set_until', server_ms() + left)
end
local rooms = redis.call('HKEYS', KEYS[3])
if #rooms > 0 then
  redis.call('PEXPIRE', KEYS[3], SET_TTL_MS)
end
return rooms
