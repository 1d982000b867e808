-- KEYS[1] session hash; on a cluster also KEYS[2] the user's set, KEYS[3] the user's detached
--   sessions, KEYS[4] the session's rooms, then the hash and the rooms of each of the user's
--   detached sessions as the caller read them (the script answers {NEED_KEYS} and writes
--   nothing when the owner or the detached sessions are not those)
-- ARGV[1] session id, ARGV[2] epoch of the connection that let go, ARGV[3] now ms,
-- ARGV[4] resume window ms, ARGV[5] most detached sessions per user; on a cluster ARGV[6] the
--   user the caller read as the owner
-- Returns {status, expired, removed id, ...}: OK when detached, UNCHANGED when a newer
-- connection holds the session (nothing is written), NOT_FOUND when it is gone; how many of
-- the user's detached sessions were found expired; the user's oldest detached sessions removed
-- to stay within the cap. On a cluster, {status, expired, {removed id, ...}, {room, ...},
-- {{room, ...}, ...}}: also the session's rooms and each removed session's, whose sets (and
-- histories) live in the hub's slot, where the store keeps or deletes them next.
local key = KEYS[1]
local meta = redis.call('HMGET', key, 'meta:user_id', 'meta:epoch', 'meta:rooms')
if not meta[1] then
  return { NOT_FOUND, 0 }
end
if meta[2] ~= ARGV[2] then
  return { UNCHANGED, 0 }
end
local detached = slotted(USER_DETACHED_PREFIX, ARGV[1], meta[1])
if CLUSTER and (meta[1] ~= ARGV[6]
    or not all_declared(SESSION_PREFIX, redis.call('ZRANGE', detached, 0, -1))
    or not all_declared(SESSION_ROOMS_PREFIX, redis.call('ZRANGE', detached, 0, -1))) then
  return { NEED_KEYS, 0 }
end
local window = tonumber(ARGV[4])
local floor = window + SET_MARGIN_MS
local set_ttl = 2 * window + SET_MARGIN_MS
-- With the window for its TTL, `meta:lives_until` no longer holds: the next write renews
-- the session (see `write.lua`).
redis.call('HDEL', key, 'meta:node', 'meta:lives_until')
redis.call('HSET', key, 'meta:detached', ARGV[3], 'meta:last_active', ARGV[3])
redis.call('PEXPIRE', key, ARGV[4])
if not CLUSTER then
  redis.call('PEXPIRE', HISTORY_SESSION_PREFIX .. ARGV[1], ARGV[4])
end
outlive(slotted(USER_SET_PREFIX, ARGV[1], meta[1]), floor, set_ttl)
local own_rooms = {}
if meta[3] then
  if CLUSTER then
    local rooms_key = slotted(SESSION_ROOMS_PREFIX, ARGV[1], ARGV[1])
    redis.call('PEXPIRE', rooms_key, ARGV[4])
    own_rooms = redis.call('HKEYS', rooms_key)
  else
    keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
      ARGV[4], floor, set_ttl)
  end
end
redis.call('ZADD', detached, ARGV[3], ARGV[1])
-- Sessions detached longer ago than the window and not written since have expired.
local expired = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', detached, '-inf', tonumber(ARGV[3]) - window)) do
  if redis.call('EXISTS', slotted(SESSION_PREFIX, id, id)) == 0 then
    redis.call('ZREM', detached, id)
    expired = expired + 1
  end
end
local removed, removed_rooms = {}, {}
local over = redis.call('ZCARD', detached) - tonumber(ARGV[5])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', detached, 0, over - 1)) do
    local _, rooms = forget(slotted(SESSION_PREFIX, id, id), id)
    redis.call('ZREM', detached, id)
    removed[#removed + 1] = id
    removed_rooms[#removed_rooms + 1] = rooms
  end
end
redis.call('PEXPIRE', detached, set_ttl)
if CLUSTER then
  return { OK, expired, removed, own_rooms, removed_rooms }
end
local out = { OK, expired }
for _, id in ipairs(removed) do
  out[#out + 1] = id
end
return out
