-- Shared by every script of the Redis store; each script is this file followed by its body.
--
-- Status codes returned to Rust (keep in step with `scripts.rs`).
local OK = 1
local NOT_FOUND = -1
local NO_OWNER = -2
local TOO_MANY_KEYS = -3
local TAKEN = -4

-- How much longer than a session its user set is kept. A session's TTL and its set's TTL are
-- set by two commands a few microseconds apart, so the margin keeps the set alive past every
-- member, whatever the clock does in between.
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

-- Keeps the user set alive at least SET_MARGIN_MS beyond a member whose TTL was just set to
-- `ttl_ms`. GT never shortens a set that a longer-lived member keeps alive; a set that has
-- lost its TTL (GT treats it as infinite) gets one back.
local function outlive(user_set, ttl_ms)
  local set_ttl = tonumber(ttl_ms) + SET_MARGIN_MS
  if redis.call('PEXPIRE', user_set, set_ttl, 'GT') == 0
    and redis.call('PTTL', user_set) == -1 then
    redis.call('PEXPIRE', user_set, set_ttl)
  end
end
