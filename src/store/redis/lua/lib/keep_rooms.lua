-- Keeps the rooms of the session hash at `key` in step with its TTL, which was just set to
-- TTL_MS: the session's set of rooms gets the same TTL, and each room's set of members is kept
-- alive past it as a user set is (see `outlive`). Called only for a session whose
-- `meta:rooms` count is set, so a session in no room pays nothing.
local function keep_rooms(key, session_prefix_len, rooms_prefix, members_prefix,
                          ttl_ms, floor_ms, set_ttl_ms)
  local rooms = rooms_prefix .. string.sub(key, session_prefix_len + 1)
  redis.call('PEXPIRE', rooms, ttl_ms)
  for _, room in ipairs(redis.call('HKEYS', rooms)) do
    outlive(members_prefix .. room, floor_ms, set_ttl_ms)
  end
end
