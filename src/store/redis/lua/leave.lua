-- KEYS[1] session hash, KEYS[2] the hub's clock (read by a join, not by a leave)
-- ARGV[1] now ms, ARGV[2] session id, ARGV[3] room
-- Returns OK when the session left the room, UNCHANGED when it was not in it. A set left
-- empty is deleted by Redis itself, so a room without members leaves no key behind.
local key = KEYS[1]
local user, rooms = owner_of(key, NOT_FOUND, NO_OWNER)
if not user then
  return rooms
end
local status = UNCHANGED
if redis.call('HDEL', SESSION_ROOMS_PREFIX .. ARGV[2], ARGV[3]) == 1 then
  redis.call('SREM', ROOM_MEMBERS_PREFIX .. ARGV[3], ARGV[2])
  if redis.call('HINCRBY', key, 'meta:rooms', -1) <= 0 then
    redis.call('HDEL', key, 'meta:rooms')
    rooms = nil
  end
  status = OK
end
redis.call('HSET', key, 'meta:last_active', ARGV[1])
redis.call('PEXPIRE', key, TTL_MS)
outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
if rooms then
  keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
    SET_TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
end
return status
