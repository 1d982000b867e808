-- Shared by every script of the Redis store; each script is this file followed by its body.
--
-- Status codes returned to Rust (keep in step with `scripts.rs`).
local OK = 1
local NOT_FOUND = -1
local NO_OWNER = -2
local TOO_MANY_KEYS = -3
local TAKEN = -4

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

-- Adds `id` to the user set and keeps the set alive at least as long as the session:
-- PTTL is -1 for a set without a TTL, so this also repairs a missing one.
local function index(user_set, id, ttl_ms)
  redis.call('SADD', user_set, id)
  if redis.call('PTTL', user_set) < tonumber(ttl_ms) then
    redis.call('PEXPIRE', user_set, ttl_ms)
  end
end

-- Marks the session active now and restarts its TTL.
local function refresh(key, ttl_ms, now_ms)
  redis.call('HSET', key, 'meta:last_active', now_ms)
  redis.call('PEXPIRE', key, ttl_ms)
end
