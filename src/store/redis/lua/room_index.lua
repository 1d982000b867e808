-- On a cluster, the sets of a room's members, in the hub's slot: an index of the sessions'
-- own records of their rooms (`session_rooms`), which are the truth. A join adds the session
-- here before its record; a leave, a removal or a detach takes it out after. So the set holds
-- every member, and a read of the members checks each against its record (see
-- `verify_members.lua`).
-- KEYS[1] the room's set; for a join also KEYS[2] the hub's clock
-- ARGV[1] 'j' (join), 'l' (leave: take these out), ARGV[2..] session ids
-- A join answers the hub's offset now, the point the session's resume replays the room from.
if ARGV[1] == 'j' then
  redis.call('SADD', KEYS[1], ARGV[2])
  outlive(KEYS[1], SET_FLOOR_MS, SET_TTL_MS)
  return clock_now(KEYS[2], server_ms())
end
redis.call('SREM', KEYS[1], unpack(ARGV, 2))
return OK
