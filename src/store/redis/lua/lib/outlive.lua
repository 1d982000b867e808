-- Keeps a user set alive past a member whose TTL was just set to TTL_MS: a set with less
-- than `floor_ms` (SET_FLOOR_MS) left is given `ttl_ms` (SET_TTL_MS), twice the session TTL
-- and a margin, so that most writes only read its TTL (a read costs the server less than a
-- write). PTTL is -1 for a set without a TTL, so this also repairs a missing one, and it never
-- shortens a set that a longer-lived member keeps alive.
local function outlive(user_set, floor_ms, ttl_ms)
  if redis.call('PTTL', user_set) < floor_ms then
    redis.call('PEXPIRE', user_set, ttl_ms)
  end
end
