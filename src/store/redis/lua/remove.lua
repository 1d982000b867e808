-- KEYS[1] session hash
-- ARGV[1] session id, ARGV[2] user set prefix
local user = redis.call('HGET', KEYS[1], 'meta:user_id')
redis.call('DEL', KEYS[1])
if user then
  redis.call('SREM', ARGV[2] .. user, ARGV[1])
end
return OK
