-- KEYS[1] session hash
-- ARGV[1] session id, ARGV[2] user set prefix, ARGV[3] ttl ms, ARGV[4] now ms,
-- ARGV[5] the `data:{key}` field to delete
local key = KEYS[1]
local user, status = owner_of(key)
if not user then
  return status
end
redis.call('HDEL', key, ARGV[5])
redis.call('HSET', key, 'meta:last_active', ARGV[4])
redis.call('PEXPIRE', key, ARGV[3])
outlive(ARGV[2] .. user, ARGV[3])
return OK
