-- KEYS[1] session hash
-- ARGV[1] now ms, ARGV[2..] pairs of `data:{key}` field and JSON text
local key = KEYS[1]
local meta = redis.call('HMGET', key, 'meta:user_id', 'meta:last_active', 'meta:rooms')
local user = meta[1]
if not user then
  if redis.call('EXISTS', key) == 1 then
    return NO_OWNER
  end
  return NOT_FOUND
end

if #ARGV == 3 then
  -- One key, the common case: write it, and count the keys only when HSET says it added one.
  -- Over the limit, the write is undone before the script ends, so nothing is written.
  if redis.call('HSET', key, 'meta:last_active', ARGV[1], ARGV[2], ARGV[3]) > 0
    and data_fields(key) > MAX_KEYS then
    redis.call('HDEL', key, ARGV[2])
    if meta[2] then
      redis.call('HSET', key, 'meta:last_active', meta[2])
    else
      redis.call('HDEL', key, 'meta:last_active')
    end
    return TOO_MANY_KEYS
  end
else
  -- Several keys: count the new ones before writing any. Besides `meta:user_id` the hash
  -- holds its data fields and at most two more metadata fields, so HLEN - 1 bounds the data
  -- fields from above, and only a session near the limit pays for the exact count.
  local writes = (#ARGV - 1) / 2
  if redis.call('HLEN', key) - 1 + writes > MAX_KEYS then
    local fresh = 0
    for i = 2, #ARGV, 2 do
      if redis.call('HEXISTS', key, ARGV[i]) == 0 then
        fresh = fresh + 1
      end
    end
    if data_fields(key) + fresh > MAX_KEYS then
      return TOO_MANY_KEYS
    end
  end
  local fields = { key, 'meta:last_active', ARGV[1] }
  for i = 2, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('HSET', unpack(fields))
end
redis.call('PEXPIRE', key, TTL_MS)
outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
if meta[3] then
  keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
    TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
end
return OK
