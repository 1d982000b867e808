-- KEYS[1] session hash; on a cluster also KEYS[2] the user's set, KEYS[3] the user's detached
--   sessions, KEYS[4] the session's rooms
-- ARGV[1] session id; on a cluster ARGV[2] the user the caller read as the owner
-- Returns OK; on a cluster, the rooms the session was in (their sets live in the hub's slot,
-- where the store takes the session out next), or NEED_KEYS when the owner is not the user
-- the keys were declared for (nothing is written).
if CLUSTER then
  local user = redis.call('HGET', KEYS[1], 'meta:user_id')
  if user and user ~= ARGV[2] then
    return NEED_KEYS
  end
  local _, rooms = forget(KEYS[1], ARGV[1])
  return rooms
end
forget(KEYS[1], ARGV[1])
return OK
