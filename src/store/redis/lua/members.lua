-- KEYS[1] room set
-- Returns a flat array: session id, its user id, session id, ... for the live members, and
-- prunes the ids of sessions that are gone.
local members = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local user = redis.call('HGET', SESSION_PREFIX .. id, 'meta:user_id')
  if user then
    members[#members + 1] = id
    members[#members + 1] = user
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return members
