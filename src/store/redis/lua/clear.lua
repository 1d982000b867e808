-- KEYS[1] session hash
-- ARGV[1] session id, ARGV[2] user set prefix, ARGV[3] ttl ms, ARGV[4] now ms
local key = KEYS[1]
local user, status = owner_of(key)
if not user then
  return status
end
index(ARGV[2] .. user, ARGV[1], ARGV[3])
for _, field in ipairs(redis.call('HKEYS', key)) do
  if string.sub(field, 1, 5) == 'data:' then
    redis.call('HDEL', key, field)
  end
end
refresh(key, ARGV[3], ARGV[4])
return OK
