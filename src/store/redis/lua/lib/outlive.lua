-- Keeps a user set alive past a member whose TTL was just set to TTL_MS: a set with less
-- than `floor_ms` (SET_FLOOR_MS, several session TTLs: see `keep_alive.rs`) left is given
-- `ttl_ms` (SET_TTL_MS, one TTL more), so that most writes only read its TTL (a read costs
-- the server less than a write). PTTL is -1 for a set without a TTL, so this also repairs a missing one, and it never
-- shortens a set that a longer-lived member keeps alive. Returns how long the set lives now, in
-- ms (negative for a set that does not exist).
local function outlive(user_set, floor_ms, ttl_ms)
  local left = redis.call('PTTL', user_set)
  if left < floor_ms then
    redis.call('PEXPIRE', user_set, ttl_ms)
    return tonumber(ttl_ms)
  end
  return left
end
