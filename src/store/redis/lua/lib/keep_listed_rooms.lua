-- Keeps the rooms of a session in step with its TTL, which was just set: the session's hash of
-- rooms (`rooms_key`, whose fields are `rooms`) gets `ttl_ms` (SET_TTL_MS for a live session,
-- as every index key; the window for a detached one), and each room's set of members is kept
-- alive past it as a user set is (see `outlive`).
local function keep_listed_rooms(rooms_key, rooms, members_prefix, ttl_ms, floor_ms, set_ttl_ms)
  redis.call('PEXPIRE', rooms_key, ttl_ms)
  for _, room in ipairs(rooms) do
    outlive(members_prefix .. room, floor_ms, set_ttl_ms)
  end
end
