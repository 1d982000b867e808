-- KEYS[1] session hash
-- ARGV[1] session id, ARGV[2] user set prefix, ARGV[3] ttl ms, ARGV[4] now ms,
-- ARGV[5] the `data:{key}` field to delete
local key = KEYS[1]
local user, status = owner_of(key)
if not user then
  return status
end
local user_set = ARGV[2] .. user
join(user_set, ARGV[1])
redis.call('HDEL', key, ARGV[5])
refresh(key, ARGV[3], ARGV[4])
outlive(user_set, key)
return OK
