-- KEYS[1] session hash
-- ARGV[1] session id, ARGV[2] epoch of the connection that let go, ARGV[3] now ms,
-- ARGV[4] resume window ms, ARGV[5] most detached sessions per user
-- Returns {status, expired, removed id, ...}: OK when detached, UNCHANGED when a newer
-- connection holds the session (nothing is written), NOT_FOUND when it is gone; how many of
-- the user's detached sessions were found expired; the user's oldest detached sessions removed
-- to stay within the cap.
local key = KEYS[1]
local meta = redis.call('HMGET', key, 'meta:user_id', 'meta:epoch', 'meta:rooms')
if not meta[1] then
  return { NOT_FOUND, 0 }
end
if meta[2] ~= ARGV[2] then
  return { UNCHANGED, 0 }
end
local window = tonumber(ARGV[4])
local floor = window + SET_MARGIN_MS
local set_ttl = 2 * window + SET_MARGIN_MS
-- With the window for its TTL, `meta:lives_until` no longer holds: the next write renews
-- the session (see `write.lua`).
redis.call('HDEL', key, 'meta:node', 'meta:lives_until')
redis.call('HSET', key, 'meta:detached', ARGV[3], 'meta:last_active', ARGV[3])
redis.call('PEXPIRE', key, ARGV[4])
redis.call('PEXPIRE', HISTORY_SESSION_PREFIX .. ARGV[1], ARGV[4])
outlive(USER_SET_PREFIX .. meta[1], floor, set_ttl)
if meta[3] then
  keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
    ARGV[4], floor, set_ttl)
end
local detached = USER_DETACHED_PREFIX .. meta[1]
redis.call('ZADD', detached, ARGV[3], ARGV[1])
-- Sessions detached longer ago than the window and not written since have expired.
local expired = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', detached, '-inf', tonumber(ARGV[3]) - window)) do
  if redis.call('EXISTS', SESSION_PREFIX .. id) == 0 then
    redis.call('ZREM', detached, id)
    expired = expired + 1
  end
end
local out = { OK, expired }
local over = redis.call('ZCARD', detached) - tonumber(ARGV[5])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', detached, 0, over - 1)) do
    forget(SESSION_PREFIX .. id, id)
    redis.call('ZREM', detached, id)
    out[#out + 1] = id
  end
end
redis.call('PEXPIRE', detached, set_ttl)
return out
