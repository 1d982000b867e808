-- KEYS[1] user set; on a cluster also KEYS[2] the user's detached sessions, then the hash and
--   the rooms of each session of the set as the caller read it (else the script answers
--   NEED_KEYS and writes nothing)
-- ARGV[1] user id
-- Removes every session of the user, with its rooms, and the user's set. Returns the ids of
-- the live sessions removed; on a cluster {{id, ...}, {{room, ...}, ...}}: also the rooms of
-- each, whose sets (and the sessions' histories) live in the hub's slot, where the store
-- deletes them next.
local ids = redis.call('SMEMBERS', KEYS[1])
if not (all_declared(SESSION_PREFIX, ids) and all_declared(SESSION_ROOMS_PREFIX, ids)) then
  return NEED_KEYS
end
local removed, removed_rooms = {}, {}
for _, id in ipairs(ids) do
  local key = slotted(SESSION_PREFIX, id, id)
  -- An id taken again by another user's session after this one expired stays that user's.
  if redis.call('HGET', key, 'meta:user_id') == ARGV[1] then
    local _, rooms = forget(key, id)
    removed[#removed + 1] = id
    removed_rooms[#removed_rooms + 1] = rooms
  end
end
if CLUSTER then
  redis.call('DEL', KEYS[1], KEYS[2])
  return { removed, removed_rooms }
end
redis.call('DEL', KEYS[1], USER_DETACHED_PREFIX .. ARGV[1])
return removed
