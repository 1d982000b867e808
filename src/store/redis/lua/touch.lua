-- KEYS[i] session hashes
-- ARGV[1] now ms
-- Returns the ids whose session no longer exists.
--
-- Every session is read before any is written, so a key of the wrong type fails the script
-- before it has refreshed anything.
local owners = {}
local in_rooms = {}
for i, key in ipairs(KEYS) do
  local meta = redis.call('HMGET', key, 'meta:user_id', 'meta:rooms')
  owners[i] = meta[1]
  in_rooms[i] = meta[2]
end
local missing = {}
local extended = {}
for i, key in ipairs(KEYS) do
  local user = owners[i]
  if user or redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'meta:last_active', ARGV[1])
    redis.call('PEXPIRE', key, TTL_MS)
    -- A hash without an owner is kept alive, but has no user set.
    if user and not extended[user] then
      extended[user] = true
      outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
    end
    if in_rooms[i] then
      keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
        TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
    end
  else
    missing[#missing + 1] = string.sub(key, #SESSION_PREFIX + 1)
  end
end
return missing
