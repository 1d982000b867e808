-- KEYS[1] session hash
-- ARGV[1] session id
forget(KEYS[1], ARGV[1])
return OK
