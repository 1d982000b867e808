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

-- Adds `id` to its user set. Scripts call it before their other writes: a WRONGTYPE at the
-- set fails the script before anything is written.
local function join(user_set, id)
  redis.call('SADD', user_set, id)
end

-- Keeps the user set alive at least until the session at `key` expires. Comparing absolute
-- expiry times (not two TTLs read a moment apart) makes this exact; PEXPIRETIME is -1 for a
-- set without a TTL, so this also repairs a missing one. Call it after the session's TTL is set.
local function outlive(user_set, key)
  local session_expires = redis.call('PEXPIRETIME', key)
  if redis.call('PEXPIRETIME', user_set) < session_expires then
    redis.call('PEXPIREAT', user_set, session_expires)
  end
end

-- Marks the session active now and restarts its TTL.
local function refresh(key, ttl_ms, now_ms)
  redis.call('HSET', key, 'meta:last_active', now_ms)
  redis.call('PEXPIRE', key, ttl_ms)
end
