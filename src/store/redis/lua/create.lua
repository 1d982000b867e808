-- KEYS[1] session hash, KEYS[2] user set, KEYS[3] the hub's clock
-- ARGV[1] session id, ARGV[2] user id, ARGV[3] now ms, ARGV[4] hub node or '',
-- ARGV[5] hash of the resume token or ''
if redis.call('EXISTS', KEYS[1]) == 1 then
  return TAKEN
end
-- A user with MAX_USER_SESSIONS sessions gets no more. Only a user at the cap pays for the
-- count, which first drops the ids of sessions that are gone.
if redis.call('SCARD', KEYS[2]) >= MAX_USER_SESSIONS then
  local live = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if redis.call('EXISTS', SESSION_PREFIX .. id) == 1 then
      live = live + 1
    else
      redis.call('SREM', KEYS[2], id)
    end
  end
  if live >= MAX_USER_SESSIONS then
    return TOO_MANY_SESSIONS
  end
end
-- The user set goes first: a WRONGTYPE there fails the script before the session is written.
-- Its TTL is set before the session is written, so that the session can remember how long the
-- set lives (`meta:set_until`, see `write.lua`).
redis.call('SADD', KEYS[2], ARGV[1])
local server_now = server_ms()
local set_left = outlive(KEYS[2], SET_FLOOR_MS, SET_TTL_MS)
redis.call('HSET', KEYS[1],
  'meta:user_id', ARGV[2],
  'meta:created_at', ARGV[3],
  'meta:last_active', ARGV[3],
  'meta:epoch', 1,
  'meta:since', clock_now(KEYS[3], server_now),
  'meta:set_until', server_now + set_left,
  'meta:lives_until', server_now + TTL_MS)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'meta:node', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'meta:token', ARGV[5])
end
-- The TTL that `meta:lives_until` tells (see `write.lua`).
redis.call('PEXPIRE', KEYS[1], TTL_MS)
-- An expired session of the same id may have left its rooms and history behind.
local rooms = SESSION_ROOMS_PREFIX .. ARGV[1]
for _, room in ipairs(redis.call('HKEYS', rooms)) do
  redis.call('SREM', ROOM_MEMBERS_PREFIX .. room, ARGV[1])
end
redis.call('DEL', rooms, HISTORY_SESSION_PREFIX .. ARGV[1])
return OK
