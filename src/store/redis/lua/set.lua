-- KEYS[1] session hash
-- ARGV[1] session id, ARGV[2] user set prefix, ARGV[3] ttl ms, ARGV[4] now ms, ARGV[5] max keys,
-- ARGV[6..] pairs of `data:{key}` field and JSON text
local key = KEYS[1]
local user, status = owner_of(key)
if not user then
  return status
end

local fresh = 0
for i = 6, #ARGV, 2 do
  if redis.call('HEXISTS', key, ARGV[i]) == 0 then
    fresh = fresh + 1
  end
end
if fresh > 0 then
  local held = redis.call('HLEN', key) - 1
    - redis.call('HEXISTS', key, 'meta:created_at')
    - redis.call('HEXISTS', key, 'meta:last_active')
  if held + fresh > tonumber(ARGV[5]) then
    return TOO_MANY_KEYS
  end
end

local user_set = ARGV[2] .. user
join(user_set, ARGV[1])
for i = 6, #ARGV, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
refresh(key, ARGV[3], ARGV[4])
outlive(user_set, key)
return OK
