-- Deletes session `id` (hash at `key`) with every trace of it: its entry in its user's set and
-- in the user's detached sessions, its rooms and its entry in each room's set, and its
-- history. Returns the session's user (nil when the hash was gone) and its rooms. On a
-- cluster, the rooms' sets and the history live in the hub's slot: the store deletes those
-- traces with a call of their own.
local function forget(key, id)
  local user = redis.call('HGET', key, 'meta:user_id')
  if CLUSTER then
    redis.call('DEL', key)
  else
    redis.call('DEL', key, HISTORY_SESSION_PREFIX .. id)
  end
  if user then
    redis.call('SREM', slotted(USER_SET_PREFIX, id, user), id)
    redis.call('ZREM', slotted(USER_DETACHED_PREFIX, id, user), id)
  end
  local rooms_key = slotted(SESSION_ROOMS_PREFIX, id, id)
  local rooms = redis.call('HKEYS', rooms_key)
  if not CLUSTER then
    for _, room in ipairs(rooms) do
      redis.call('SREM', ROOM_MEMBERS_PREFIX .. room, id)
    end
  end
  redis.call('DEL', rooms_key)
  return user, rooms
end
