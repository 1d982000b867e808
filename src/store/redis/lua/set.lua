-- KEYS[1] session hash
-- ARGV[1] session id, ARGV[2] user set prefix, ARGV[3] ttl ms, ARGV[4] now ms, ARGV[5] max keys,
-- ARGV[6..] pairs of `data:{key}` field and JSON text
local key = KEYS[1]
local user, status = owner_of(key)
if not user then
  return status
end

-- The key limit. Besides `meta:user_id` the hash holds at most its data fields and two more
-- metadata fields, so HLEN - 1 bounds the data fields from above; only a session near the
-- limit pays for the exact count.
local max = tonumber(ARGV[5])
local writes = (#ARGV - 5) / 2
if redis.call('HLEN', key) - 1 + writes > max then
  local fresh = 0
  for i = 6, #ARGV, 2 do
    if redis.call('HEXISTS', key, ARGV[i]) == 0 then
      fresh = fresh + 1
    end
  end
  local held = redis.call('HLEN', key) - 1
    - redis.call('HEXISTS', key, 'meta:created_at')
    - redis.call('HEXISTS', key, 'meta:last_active')
  if held + fresh > max then
    return TOO_MANY_KEYS
  end
end

local fields = { key, 'meta:last_active', ARGV[4] }
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', unpack(fields))
redis.call('PEXPIRE', key, ARGV[3])
outlive(ARGV[2] .. user, ARGV[3])
return OK
