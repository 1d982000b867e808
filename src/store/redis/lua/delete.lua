-- KEYS[1] session hash
-- ARGV[1] now ms, ARGV[2] the `data:{key}` field to delete
local key = KEYS[1]
local user, rooms = owner_of(key, NOT_FOUND, NO_OWNER)
if not user then
  return rooms
end
redis.call('HDEL', key, ARGV[2])
redis.call('HSET', key, 'meta:last_active', ARGV[1])
redis.call('PEXPIRE', key, TTL_MS)
outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
if rooms then
  keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
    TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
end
return OK
