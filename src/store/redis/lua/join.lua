-- KEYS[1] session hash, KEYS[2] on one server the hub's clock, on a cluster the session's rooms
-- ARGV[1] now ms, ARGV[2] session id, ARGV[3] room; on a cluster ARGV[4] the hub's offset now
--   (read when the room's set took the session, see `room_index.lua`)
-- Returns OK when the session joined the room, UNCHANGED when it was in it already; on a
-- cluster {status, user, look}: `look` 1 when the user's set needs a look (`keep_index.lua`).
local key = KEYS[1]
local user, rooms = owner_of(key, NOT_FOUND, NO_OWNER)
if not user then
  return rooms
end
local session_rooms = slotted(SESSION_ROOMS_PREFIX, ARGV[2], ARGV[2])
local status = UNCHANGED
if redis.call('HEXISTS', session_rooms, ARGV[3]) == 0 then
  if redis.call('HLEN', session_rooms) >= MAX_ROOMS then
    return TOO_MANY_ROOMS
  end
  local since
  if CLUSTER then
    since = ARGV[4]
  else
    -- The room's set goes first: a WRONGTYPE there fails the script before anything is
    -- written.
    redis.call('SADD', ROOM_MEMBERS_PREFIX .. ARGV[3], ARGV[2])
    since = clock_now(KEYS[2], server_ms())
  end
  -- What the room was sent before this is not for the session: a resume replays from here.
  redis.call('HSET', session_rooms, ARGV[3], since)
  redis.call('HINCRBY', key, 'meta:rooms', 1)
  status = OK
end
redis.call('HSET', key, 'meta:last_active', ARGV[1])
redis.call('PEXPIRE', key, TTL_MS)
if CLUSTER then
  redis.call('PEXPIRE', session_rooms, SET_TTL_MS)
  return { status, user, needs_look(key) }
end
outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
  SET_TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
return status
