-- Shared by every script of the Redis store. Each script is the store's configuration
-- (SESSION_PREFIX, USER_SET_PREFIX, TTL_MS, SET_FLOOR_MS, SET_TTL_MS, MAX_KEYS; see
-- `scripts.rs`), then this file, then its own body.
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

-- Keeps a user set alive past a member whose TTL was just set to TTL_MS. The set is then
-- given SET_TTL_MS, twice the session TTL and a margin, so that most writes only read its
-- TTL (a read costs the server less than a write). PTTL is -1 for a set without a TTL, so this
-- also repairs a missing one, and it never shortens a set that a longer-lived member keeps
-- alive.
local function outlive(user_set)
  if redis.call('PTTL', user_set) < SET_FLOOR_MS then
    redis.call('PEXPIRE', user_set, SET_TTL_MS)
  end
end

-- How many data fields the session hash at `key` holds.
local function data_fields(key)
  return redis.call('HLEN', key) - 1
    - redis.call('HEXISTS', key, 'meta:created_at')
    - redis.call('HEXISTS', key, 'meta:last_active')
end
