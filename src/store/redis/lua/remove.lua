-- KEYS[1] session hash
-- ARGV[1] session id
forget(KEYS[1], ARGV[1], SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX, USER_SET_PREFIX)
return OK
