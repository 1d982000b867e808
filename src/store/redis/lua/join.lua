-- KEYS[1] session hash, KEYS[2] the hub's clock
-- ARGV[1] now ms, ARGV[2] session id, ARGV[3] room
-- Returns OK when the session joined the room, UNCHANGED when it was in it already.
local key = KEYS[1]
local user, rooms = owner_of(key, NOT_FOUND, NO_OWNER)
if not user then
  return rooms
end
local session_rooms = SESSION_ROOMS_PREFIX .. ARGV[2]
local status = UNCHANGED
if redis.call('HEXISTS', session_rooms, ARGV[3]) == 0 then
  if redis.call('HLEN', session_rooms) >= MAX_ROOMS then
    return TOO_MANY_ROOMS
  end
  -- The room's set goes first: a WRONGTYPE there fails the script before anything is written.
  redis.call('SADD', ROOM_MEMBERS_PREFIX .. ARGV[3], ARGV[2])
  -- What the room was sent before this is not for the session: a resume replays from here.
  redis.call('HSET', session_rooms, ARGV[3], clock_now(KEYS[2], server_ms()))
  redis.call('HINCRBY', key, 'meta:rooms', 1)
  status = OK
end
redis.call('HSET', key, 'meta:last_active', ARGV[1])
redis.call('PEXPIRE', key, TTL_MS)
outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
  SET_TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
return status
