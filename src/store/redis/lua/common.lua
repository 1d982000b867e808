-- Shared by every script of the Redis store; each script is this file followed by its body.
--
-- Status codes returned to Rust (keep in step with `scripts.rs`).
local OK = 1
local NOT_FOUND = -1
local NO_OWNER = -2
local TOO_MANY_KEYS = -3
local TAKEN = -4

-- A user set is kept alive at least this much longer than any of its members.
local SET_MARGIN_MS = 1000

-- The owner of the session hash at `key`, or nil and the status that stops a write:
-- NOT_FOUND when there is no such key, NO_OWNER when it exists without `meta:user_id`.
local function owner_of(key)
  local user = redis.call('HGET', key, 'meta:user_id')
  if user then
    return user
  end
  if redis.call('EXISTS', key) == 1 then
    return nil, NO_OWNER
  end
  return nil, NOT_FOUND
end

-- Keeps the user set alive past a member whose TTL was just set to `ttl_ms`. The set is then
-- given twice the session TTL, so that most writes only read its TTL (a read costs the server
-- less than a write). PTTL is -1 for a set without a TTL, so this also repairs a missing one,
-- and it never shortens a set that a longer-lived member keeps alive.
local function outlive(user_set, ttl_ms)
  local ttl = tonumber(ttl_ms)
  if redis.call('PTTL', user_set) < ttl + SET_MARGIN_MS then
    redis.call('PEXPIRE', user_set, 2 * ttl + SET_MARGIN_MS)
  end
end

-- How many data fields the session hash at `key` holds.
local function data_fields(key)
  return redis.call('HLEN', key) - 1
    - redis.call('HEXISTS', key, 'meta:created_at')
    - redis.call('HEXISTS', key, 'meta:last_active')
end
