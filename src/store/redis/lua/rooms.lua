-- KEYS[1] session hash
-- ARGV[1] session id
-- Returns the session's rooms, or NOT_FOUND.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return NOT_FOUND
end
return redis.call('HKEYS', SESSION_ROOMS_PREFIX .. ARGV[1])
