-- `keep_listed_rooms` for the session hash at `key`, reading its rooms. Called only for a
-- session whose `meta:rooms` count is set, so a session in no room pays nothing.
local function keep_rooms(key, session_prefix_len, rooms_prefix, members_prefix,
                          ttl_ms, floor_ms, set_ttl_ms)
  local rooms_key = rooms_prefix .. string.sub(key, session_prefix_len + 1)
  keep_listed_rooms(rooms_key, redis.call('HKEYS', rooms_key), members_prefix,
    ttl_ms, floor_ms, set_ttl_ms)
end
