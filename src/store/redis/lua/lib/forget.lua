-- Deletes session `id` (hash at `key`) with every trace of it: its entry in its user's set and
-- in the user's detached sessions, its rooms and its entry in each room's set, and its
-- history. Returns the session's user, or nil when the hash was gone.
local function forget(key, id)
  local user = redis.call('HGET', key, 'meta:user_id')
  redis.call('DEL', key, HISTORY_SESSION_PREFIX .. id)
  if user then
    redis.call('SREM', USER_SET_PREFIX .. user, id)
    redis.call('ZREM', USER_DETACHED_PREFIX .. user, id)
  end
  local rooms = SESSION_ROOMS_PREFIX .. id
  for _, room in ipairs(redis.call('HKEYS', rooms)) do
    redis.call('SREM', ROOM_MEMBERS_PREFIX .. room, id)
  end
  redis.call('DEL', rooms)
  return user
end
