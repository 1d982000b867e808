-- KEYS[1] session hash, KEYS[2] user set
-- ARGV[1] session id, ARGV[2] user id, ARGV[3] now ms
if redis.call('EXISTS', KEYS[1]) == 1 then
  return TAKEN
end
-- The user set goes first: a WRONGTYPE there fails the script before the session is written.
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1],
  'meta:user_id', ARGV[2],
  'meta:created_at', ARGV[3],
  'meta:last_active', ARGV[3])
redis.call('PEXPIRE', KEYS[1], TTL_MS)
outlive(KEYS[2], SET_FLOOR_MS, SET_TTL_MS)
return OK
