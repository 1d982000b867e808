-- The writes of one group commit (see `group_commit.rs`), applied one after the other.
--
-- KEYS: the session hashes the writes name, in order: one for each set, delete and clear,
--   `count` for a touch.
-- ARGV[1] now ms, then each write in turn:
--   's', n, then n pairs of `data:{key}` field and JSON text   set_session_data, update_session_data
--   'd', the `data:{key}` field                                delete_session_data
--   'c'                                                        clear_session_data
--   't', count                                                 touch of `count` sessions
-- Returns one result per write, in order: a status code; for a touch, the ids of its sessions
-- that no longer exist; or the error reply of the read that refused the write.
--
-- Each write is checked and applied on its own, so a refused write (no such session, too many
-- keys, a key of the wrong type) writes nothing and leaves the others as they are. Every write
-- reads all it needs before it writes anything, with `redis.pcall`, so that a read that fails
-- (WRONGTYPE on a corrupt key) refuses that write alone. All writes of the call share `now`
-- and the TTL, so a user's set is kept alive once per call, however many of its sessions the
-- call writes.
local now = ARGV[1]
local kept_users = {}

-- What a write of the session hash at `key` needs to know, or nil and the status or error
-- that refuses it. Returns the owner (nil for a hash without one, when `ownerless_ok`), the
-- last-active time, and, for a session in rooms, its rooms key and the names of its rooms.
local function read(key, ownerless_ok)
  local meta = redis.pcall('HMGET', key, 'meta:user_id', 'meta:last_active', 'meta:rooms')
  if meta.err then
    return false, meta
  end
  if not meta[1] and not ownerless_ok then
    if redis.call('EXISTS', key) == 1 then
      return false, NO_OWNER
    end
    return false, NOT_FOUND
  end
  local rooms_key, rooms = false, false
  if meta[3] then
    rooms_key = SESSION_ROOMS_PREFIX .. string.sub(key, #SESSION_PREFIX + 1)
    rooms = redis.pcall('HKEYS', rooms_key)
    if rooms.err then
      return false, rooms
    end
  end
  return true, meta[1], meta[2], rooms_key, rooms
end

-- Gives the session hash at `key` its TTL again, and keeps its user's set and its rooms
-- alive past it.
local function refresh(key, user, rooms_key, rooms)
  redis.call('PEXPIRE', key, TTL_MS)
  if user and not kept_users[user] then
    kept_users[user] = true
    outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
  end
  if rooms_key then
    keep_listed_rooms(rooms_key, rooms, ROOM_MEMBERS_PREFIX, TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
  end
end

-- Writes the `n` pairs of ARGV from `first` on, or refuses them all for the key limit.
local function set(key, last_active, first, n)
  if n == 1 then
    -- The common case: write, and count the keys only when HSET says it added one. Over the
    -- limit, the write is undone before the script ends, so nothing is written.
    if redis.call('HSET', key, 'meta:last_active', now, ARGV[first], ARGV[first + 1]) > 0
      and data_fields(key) > MAX_KEYS then
      redis.call('HDEL', key, ARGV[first])
      if last_active then
        redis.call('HSET', key, 'meta:last_active', last_active)
      else
        redis.call('HDEL', key, 'meta:last_active')
      end
      return TOO_MANY_KEYS
    end
    return OK
  end
  -- Several keys: count the new ones before writing any. HLEN - 1 (the owner) bounds the
  -- data fields from above, so only a session near the limit pays for the exact count.
  local last = first + 2 * n - 1
  if redis.call('HLEN', key) - 1 + n > MAX_KEYS then
    local fresh = 0
    for i = first, last, 2 do
      if redis.call('HEXISTS', key, ARGV[i]) == 0 then
        fresh = fresh + 1
      end
    end
    if data_fields(key) + fresh > MAX_KEYS then
      return TOO_MANY_KEYS
    end
  end
  redis.call('HSET', key, 'meta:last_active', now, unpack(ARGV, first, last))
  return OK
end

-- Removes every data field of the session hash at `key`.
local function clear(key)
  local data = {}
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, 5) == 'data:' then
      data[#data + 1] = field
    end
  end
  if #data > 0 then
    redis.call('HDEL', key, unpack(data))
  end
  redis.call('HSET', key, 'meta:last_active', now)
end

-- Refreshes the `count` sessions of KEYS from `first` on; returns the ids of those that no
-- longer exist. Every session is read before any is written, so a key of the wrong type
-- refuses the whole touch before it has refreshed anything. A hash without an owner is kept
-- alive, but has no user set.
local function touch(first, count)
  local found = {}
  for i = first, first + count - 1 do
    local ok, user, _, rooms_key, rooms = read(KEYS[i], true)
    if not ok then
      return user
    end
    found[i] = { user, rooms_key, rooms }
  end
  local missing = {}
  for i = first, first + count - 1 do
    local key = KEYS[i]
    local session = found[i]
    if session[1] or redis.call('EXISTS', key) == 1 then
      redis.call('HSET', key, 'meta:last_active', now)
      refresh(key, session[1], session[2], session[3])
    else
      missing[#missing + 1] = string.sub(key, #SESSION_PREFIX + 1)
    end
  end
  return missing
end

local results = {}
local k, a = 1, 2
while a <= #ARGV do
  local op = ARGV[a]
  local result
  if op == 't' then
    local count = tonumber(ARGV[a + 1])
    result = touch(k, count)
    k, a = k + count, a + 2
  else
    local key = KEYS[k]
    local first, n = a + 1, 0
    if op == 's' then
      n = tonumber(ARGV[a + 1])
      first = a + 2
      a = first + 2 * n
    elseif op == 'd' then
      a = a + 2
    else
      a = a + 1
    end
    k = k + 1
    local ok, user, last_active, rooms_key, rooms = read(key, false)
    if not ok then
      result = user
    else
      if op == 's' then
        result = set(key, last_active, first, n)
      elseif op == 'd' then
        redis.call('HDEL', key, ARGV[first])
        redis.call('HSET', key, 'meta:last_active', now)
        result = OK
      else
        clear(key)
        result = OK
      end
      if result == OK then
        refresh(key, user, rooms_key, rooms)
      end
    end
  end
  results[#results + 1] = result
end
return results
