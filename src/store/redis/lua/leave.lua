-- KEYS[1] session hash, KEYS[2] on one server the hub's clock (read by a join, not by a
--   leave), on a cluster the session's rooms
-- ARGV[1] now ms, ARGV[2] session id, ARGV[3] room
-- Returns OK when the session left the room, UNCHANGED when it was not in it; on a cluster
-- {status, user, look}, as `join.lua`, and the store takes the session out of the room's set
-- (in the hub's slot) next. A set left empty is deleted by Redis itself, so a room without
-- members leaves no key behind.
local key = KEYS[1]
local user, rooms = owner_of(key, NOT_FOUND, NO_OWNER)
if not user then
  return rooms
end
local session_rooms = slotted(SESSION_ROOMS_PREFIX, ARGV[2], ARGV[2])
local status = UNCHANGED
if redis.call('HDEL', session_rooms, ARGV[3]) == 1 then
  if not CLUSTER then
    redis.call('SREM', ROOM_MEMBERS_PREFIX .. ARGV[3], ARGV[2])
  end
  if redis.call('HINCRBY', key, 'meta:rooms', -1) <= 0 then
    redis.call('HDEL', key, 'meta:rooms')
    rooms = nil
  end
  status = OK
end
redis.call('HSET', key, 'meta:last_active', ARGV[1])
redis.call('PEXPIRE', key, TTL_MS)
if CLUSTER then
  return { status, user, needs_look(key) }
end
outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
if rooms then
  keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
    SET_TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
end
return status
