-- KEYS[1] session hash, KEYS[2] the session's rooms
-- Returns the session's rooms, or NOT_FOUND.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return NOT_FOUND
end
return redis.call('HKEYS', KEYS[2])
