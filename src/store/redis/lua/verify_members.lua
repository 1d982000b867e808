-- On a cluster, the members of a room among sessions of one slot, checked against their own
-- records (see `room_index.lua`).
-- KEYS[2i - 1] the hash of the i-th session, KEYS[2i] its rooms
-- ARGV[1] the room, ARGV[1 + i] the i-th session's id
-- Returns {members, gone}: session id, user id, ... for the sessions in the room; the ids of
-- the sessions that no longer exist, which the store takes out of the room's set.
local members, gone = {}, {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local user = redis.call('HGET', KEYS[2 * i - 3], 'meta:user_id')
  if not user then
    gone[#gone + 1] = id
  elseif redis.call('HEXISTS', KEYS[2 * i - 2], ARGV[1]) == 1 then
    members[#members + 1] = id
    members[#members + 1] = user
  end
end
return { members, gone }
