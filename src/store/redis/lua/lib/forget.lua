-- Deletes session `id` (hash at `key`) with every trace of it: its entry in its user's set,
-- its set of rooms and its entry in each room's set. Returns the session's user, or nil when
-- the hash was gone.
local function forget(key, id, rooms_prefix, members_prefix, user_set_prefix)
  local user = redis.call('HGET', key, 'meta:user_id')
  redis.call('DEL', key)
  if user then
    redis.call('SREM', user_set_prefix .. user, id)
  end
  local rooms = rooms_prefix .. id
  for _, room in ipairs(redis.call('SMEMBERS', rooms)) do
    redis.call('SREM', members_prefix .. room, id)
  end
  redis.call('DEL', rooms)
  return user
end
