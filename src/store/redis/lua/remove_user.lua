-- KEYS[1] user set
-- ARGV[1] user id
-- Removes every session of the user, with its rooms, and the user's set. Returns the ids of
-- the live sessions removed.
local removed = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = SESSION_PREFIX .. id
  -- An id taken again by another user's session after this one expired stays that user's.
  if redis.call('HGET', key, 'meta:user_id') == ARGV[1] then
    forget(key, id)
    removed[#removed + 1] = id
  end
end
redis.call('DEL', KEYS[1], USER_DETACHED_PREFIX .. ARGV[1])
return removed
