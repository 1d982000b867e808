-- KEYS[1] session hash
-- ARGV[1] session id
local user = redis.call('HGET', KEYS[1], 'meta:user_id')
redis.call('DEL', KEYS[1])
if user then
  redis.call('SREM', USER_SET_PREFIX .. user, ARGV[1])
end
return OK
