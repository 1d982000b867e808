-- KEYS[1] session hash, KEYS[2] user set, KEYS[3] on one server the hub's clock, on a cluster
--   the session's rooms; on a cluster, KEYS[4..] the hashes of the user's sessions when the
--   user may be at the cap (else the script answers NEED_KEYS and writes nothing)
-- ARGV[1] session id, ARGV[2] user id, ARGV[3] now ms, ARGV[4] hub node or '',
-- ARGV[5] hash of the resume token or ''; on a cluster ARGV[6] the hub's offset now (its
--   clock lives in another slot) and ARGV[7] this call's nonce
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- On a cluster the client sends a call again after a connection dropped: a session this
  -- very call created is not "taken".
  if CLUSTER and redis.call('HGET', KEYS[1], 'meta:create') == ARGV[7] then
    return OK
  end
  return TAKEN
end
-- A user with MAX_USER_SESSIONS sessions gets no more. Only a user at the cap pays for the
-- count, which first drops the ids of sessions that are gone.
if redis.call('SCARD', KEYS[2]) >= MAX_USER_SESSIONS then
  local ids = redis.call('SMEMBERS', KEYS[2])
  if not all_declared(SESSION_PREFIX, ids) then
    return NEED_KEYS
  end
  local live = 0
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', slotted(SESSION_PREFIX, id, id)) == 1 then
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
local since
if CLUSTER then
  since = ARGV[6]
else
  since = clock_now(KEYS[3], server_now)
end
redis.call('HSET', KEYS[1],
  'meta:user_id', ARGV[2],
  'meta:created_at', ARGV[3],
  'meta:last_active', ARGV[3],
  'meta:epoch', 1,
  'meta:since', since,
  'meta:set_until', server_now + set_left,
  'meta:lives_until', server_now + TTL_MS)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'meta:node', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'meta:token', ARGV[5])
end
if CLUSTER then
  redis.call('HSET', KEYS[1], 'meta:create', ARGV[7])
end
-- The TTL that `meta:lives_until` tells (see `write.lua`).
redis.call('PEXPIRE', KEYS[1], TTL_MS)
-- An expired session of the same id may have left its rooms and history behind. (On a
-- cluster the rooms' sets and the history live in the hub's slot: the reads of a room's
-- members skip a session whose rooms do not name the room, and a history outlives its
-- session by no more than the session's TTL.)
if CLUSTER then
  redis.call('DEL', KEYS[3])
  return OK
end
local rooms = SESSION_ROOMS_PREFIX .. ARGV[1]
for _, room in ipairs(redis.call('HKEYS', rooms)) do
  redis.call('SREM', ROOM_MEMBERS_PREFIX .. room, ARGV[1])
end
redis.call('DEL', rooms, HISTORY_SESSION_PREFIX .. ARGV[1])
return OK
