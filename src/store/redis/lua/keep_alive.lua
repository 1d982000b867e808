-- The keep-alive of open sessions (see `keep_alive.rs`): one PEXPIRE per key, and no read.
-- KEYS: session hashes when ARGV[1] is 's'; index keys (a session's rooms, a user set, a
--   room's members) when it is 'i'. (On a cluster, the keys of one call share a slot.)
-- Returns, for sessions, the ids of those that no longer exist; for indexes, OK.
--
-- A session's TTL starts again; `meta:last_active` stays the time of its last write. An index
-- key is given SET_TTL_MS unless it lives longer already (`GT`), and a key that is gone stays
-- gone (PEXPIRE creates nothing).
if ARGV[1] == 's' then
  local missing = {}
  for _, key in ipairs(KEYS) do
    if redis.call('PEXPIRE', key, TTL_MS) == 0 then
      missing[#missing + 1] = string.sub(key, SESSION_ID_AT)
    end
  end
  return missing
end
for _, key in ipairs(KEYS) do
  redis.call('PEXPIRE', key, SET_TTL_MS, 'GT')
end
return OK
