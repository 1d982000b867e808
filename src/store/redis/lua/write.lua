-- The writes of one group commit (see `group_commit.rs`), applied one after the other.
--
-- KEYS: the session hashes the writes name, in order: one for each set, delete and clear,
--   `count` for a touch.
-- ARGV[1] now ms, then each write in turn:
--   's', a `data:{key}` field and its JSON text             set_session_data
--   'm', n, then n pairs of `data:{key}` field and JSON text  update_session_data
--   'd', the `data:{key}` field                              delete_session_data
--   'c'                                                      clear_session_data
--   't', count                                               touch of `count` sessions
-- Returns one result per write, in order: a status code; for a touch, the ids of its sessions
-- that no longer exist; or the error reply of the read that refused the write. A call of one
-- write returns its result alone, not in an array (an array reply costs Redis more to build).
-- On a cluster it returns {results, renewed}: the results always in an array, and for each
-- session whose renewal needs its indexes kept alive, its id and user, flat. There, a user
-- set and a session's rooms are keys the call did not declare (the sessions of one call share
-- a slot, but the store does not know their users), so the store keeps them alive with a call
-- of `keep_index.lua` per session named.
--
-- Each write is checked and applied on its own, so a refused write (no such session, too many
-- keys, a key of the wrong type) writes nothing and leaves the others as they are. Every write
-- reads all it needs before it writes anything, with `redis.pcall`, so that a read that fails
-- (WRONGTYPE on a corrupt key) refuses that write alone; a touch reads all its sessions first.
-- All writes of the call share `now` and the TTL, so a user's set is kept alive once per call,
-- however many of its sessions the call writes.
--
-- Renewing a session's TTL (`PEXPIRE` of the hash, then keeping its user set and rooms alive
-- past it) costs more than the write itself, so a session written all the time is renewed
-- about once per RENEW_EVERY_MS, not on every write. The hash remembers in `meta:lives_until`
-- (Redis time, ms) when its TTL, as its creation or its last renewing write set it, runs out.
-- A write that finds that time more than TTL_MS - RENEW_EVERY_MS away (and no more than
-- TTL_MS) leaves the TTL as it is, so after any write the session has at least
-- TTL_MS - RENEW_EVERY_MS left. A write that leaves the TTL alone moves no expiry, so the user
-- set and rooms need nothing either. Nothing shortens a hash's TTL but a detach, which
-- deletes the field; a touch (the keep-alive of live sessions) always renews.
--
-- A session hash also remembers in `meta:set_until` (Redis time, ms) a time until which its
-- user's set is known to live. No script shortens a user set's TTL or deletes the set while
-- one of its sessions lives, so while that time is more than SET_FLOOR_MS away, a renewal
-- needs no look at the set: a session written all the time reads the set's TTL about once per
-- TTL. A touch always looks at the set's TTL (once per user and call), so a set whose TTL was
-- changed behind the store's back is repaired within a keep-alive period.
--
-- The script runs from the top on every call, and every closure it makes is garbage for Lua's
-- collector, which Redis pays for on every call: it makes five (`data_fields`, `rooms_of`,
-- `refresh`, `restore` and `resized`), and keeps the common write (one session) in locals,
-- not in tables.
local now = ARGV[1]
-- Redis time in ms, for `meta:lives_until` and `meta:set_until`. (Lua turns TIME's two
-- decimal texts into numbers for the arithmetic: cheaper than calling `tonumber` on them.)
local clock = redis.call('TIME')
clock = clock[1] * 1000 + math.floor(clock[2] / 1000)
-- When a hash renewed now lives until, and the time after which a hash's life needs no
-- renewal yet: as text, as the hash stores it, so that a write compares and writes them
-- without converting (converting numbers costs Redis more than comparing texts).
local renew_after = string.format('%d', clock + RENEW_BELOW_MS)
local renewed_until = string.format('%d', clock + RENEW_BELOW_MS + RENEW_EVERY_MS)
local set_ttl = tonumber(SET_TTL_MS)
-- Users whose set this call has kept alive.
local kept = {}
-- On a cluster, the sessions whose indexes the store is to keep alive: id, user, ...
local renewed = {}

-- The rooms key and rooms of the session hash at `key` when the session is in rooms
-- (`in_rooms` is its `meta:rooms`), else false and false; or false and the error of the read.
local function rooms_of(key, in_rooms)
  if not in_rooms then
    return false, false
  end
  -- On a cluster the rooms are not read here: `true` says that the session has some.
  if CLUSTER then
    return true, false
  end
  local rooms_key = SESSION_ROOMS_PREFIX .. string.sub(key, #SESSION_PREFIX + 1)
  local rooms = redis.pcall('HKEYS', rooms_key)
  if rooms.err then
    return false, rooms
  end
  return rooms_key, rooms
end

-- Gives the session hash at `key` (owned by `user`, or false) its TTL again, and keeps its
-- user's set and its rooms' member sets alive past it: a set with less than SET_FLOOR_MS left
-- gets SET_TTL_MS. A write passes `set_until` as read and `remember` true; a touch passes
-- false for both, so that it always looks at the set and writes nothing down.
local function refresh(key, user, set_until, rooms_key, rooms, remember)
  redis.call('PEXPIRE', key, TTL_MS)
  -- A value that is not a number (corrupt) counts as none.
  set_until = set_until and tonumber(set_until)
  local look = user and not kept[user] and not (set_until and set_until - clock >= SET_FLOOR_MS)
  if CLUSTER then
    if user and (look or rooms_key) then
      kept[user] = look or kept[user]
      renewed[#renewed + 1] = string.sub(key, SESSION_ID_AT)
      renewed[#renewed + 1] = user
    end
    return
  end
  if look then
    kept[user] = true
    local set = USER_SET_PREFIX .. user
    local left = redis.call('PTTL', set)
    if left < SET_FLOOR_MS then
      redis.call('PEXPIRE', set, SET_TTL_MS)
      left = set_ttl
    end
    -- A set that does not exist (-2) is not remembered: the next write looks again. A touch
    -- does not write it down: it looks every time.
    if left >= 0 and remember then
      redis.call('HSET', key, 'meta:set_until', clock + left)
    end
  end
  if rooms_key then
    redis.call('PEXPIRE', rooms_key, SET_TTL_MS)
    for _, room in ipairs(rooms) do
      local members = ROOM_MEMBERS_PREFIX .. room
      if redis.call('PTTL', members) < SET_FLOOR_MS then
        redis.call('PEXPIRE', members, SET_TTL_MS)
      end
    end
  end
end

-- Puts `field` of the hash at `key` back to `old` (false: absent), after a refused write.
local function restore(key, field, old)
  if old then
    redis.call('HSET', key, field, old)
  else
    redis.call('HDEL', key, field)
  end
end

-- A session's data size (`meta:bytes`, as read: false for none, and a corrupt text counts as
-- none) after the field `field` (`data:{key}`) that holds `held` bytes of JSON (0: absent) is
-- given a value of `len` bytes, or deleted when `deleting`. A key counts its own length and
-- its value's.
local function resized(bytes, field, held, len, deleting)
  local size = tonumber(bytes) or 0
  local key_len = #field - 5
  if held > 0 then
    size = size - key_len - held
  end
  if not deleting then
    size = size + key_len + len
  end
  if size < 0 then
    size = 0
  end
  return size
end

local results = {}
local k, a, last_arg = 1, 2, #ARGV
while a <= last_arg do
  local op = ARGV[a]
  local result
  if op == 't' then
    -- A touch: read every session, then renew those that exist. A hash without an owner is
    -- kept alive, but has no user set.
    local count = tonumber(ARGV[a + 1])
    a = a + 2
    local found = {}
    for i = k, k + count - 1 do
      local meta = redis.pcall('HMGET', KEYS[i], 'meta:user_id', 'meta:rooms')
      if meta.err then
        result = meta
        break
      end
      local rooms_key, rooms = rooms_of(KEYS[i], meta[2])
      if rooms and rooms.err then
        result = rooms
        break
      end
      found[i] = { meta[1], rooms_key, rooms }
    end
    if not result then
      result = {}
      for i = k, k + count - 1 do
        local key, session = KEYS[i], found[i]
        if session[1] or redis.call('EXISTS', key) == 1 then
          redis.call('HSET', key, 'meta:last_active', now)
          refresh(key, session[1], false, session[2], session[3], false)
        else
          result[#result + 1] = string.sub(key, SESSION_ID_AT)
        end
      end
    end
    k = k + count
  else
    local key = KEYS[k]
    k = k + 1
    local first, n = a + 1, 1
    if op == 's' then
      a = a + 3
    elseif op == 'm' then
      n = tonumber(ARGV[a + 1])
      first = a + 2
      a = first + 2 * n
    elseif op == 'd' then
      a = a + 2
    else
      a = a + 1
    end
    -- The read takes only what a write that leaves the TTL alone needs: the owner (the
    -- session exists), `meta:lives_until`, and for a set, which may be refused and then puts
    -- it back, `meta:last_active`. A renewing write reads the rest after (each field read
    -- costs Redis about 2,000 instructions, a sixteenth of a write in a batch).
    -- `meta:bytes` is the session's data size (see MAX_SESSION_BYTES); a clear needs none.
    local meta
    if op == 's' then
      meta = redis.pcall('HMGET', key, 'meta:user_id', 'meta:lives_until', 'meta:bytes',
        'meta:last_active')
    elseif op == 'c' then
      meta = redis.pcall('HMGET', key, 'meta:user_id', 'meta:lives_until')
    else
      meta = redis.pcall('HMGET', key, 'meta:user_id', 'meta:lives_until', 'meta:bytes')
    end
    if meta.err then
      result = meta
    elseif not meta[1] then
      if redis.call('EXISTS', key) == 1 then
        result = NO_OWNER
      else
        result = NOT_FOUND
      end
    else
      -- Renew unless the hash lives more than TTL_MS - RENEW_EVERY_MS longer, by Redis's
      -- clock. Decimal texts of one length compare as their numbers do; a time beyond a
      -- renewal's or a text of another length renews. (A corrupt text that compares within
      -- the window delays a renewal by RENEW_EVERY_MS at most: the window moves on.)
      local lives_until = meta[2]
      local renew = not (lives_until and #lives_until == #renewed_until
        and lives_until > renew_after and lives_until <= renewed_until)
      local rooms_key, rooms, set_until = false, false, false
      if renew then
        -- The hash is one (the first read found its owner): this read cannot fail.
        local more = redis.call('HMGET', key, 'meta:rooms', 'meta:set_until')
        set_until = more[2]
        rooms_key, rooms = rooms_of(key, more[1])
      end
      result = OK
      if rooms and rooms.err then
        result = rooms
      elseif op == 's' then
        -- The size check comes before the write; the key count, only for a new key, after it:
        -- over the limit, the write is undone before the script ends, so nothing is written.
        -- Each write spells out its `HSET` with and without `meta:lives_until`: a helper that
        -- took the pairs as `...` measured 3,000 instructions more per lone write.
        local field, value = ARGV[first], ARGV[first + 1]
        local held = redis.call('HSTRLEN', key, field)
        local bytes = resized(meta[3], field, held, #value)
        if bytes > MAX_SESSION_BYTES then
          result = { TOO_LARGE, bytes }
        else
          if renew then
            redis.call('HSET', key, 'meta:last_active', now, 'meta:lives_until', renewed_until,
              'meta:bytes', bytes, field, value)
          else
            redis.call('HSET', key, 'meta:last_active', now, 'meta:bytes', bytes, field, value)
          end
          if held == 0 and data_fields(key) > MAX_KEYS then
            redis.call('HDEL', key, field)
            restore(key, 'meta:last_active', meta[4])
            restore(key, 'meta:bytes', meta[3])
            if renew then
              restore(key, 'meta:lives_until', meta[2])
            end
            result = TOO_MANY_KEYS
          end
        end
      elseif op == 'm' then
        -- Several keys: count the new ones before writing any. HLEN - 1 (the owner) bounds
        -- the data fields from above, so only a session near the limit pays for the count.
        local last = first + 2 * n - 1
        if redis.call('HLEN', key) - 1 + n > MAX_KEYS then
          local fresh = 0
          for i = first, last, 2 do
            if redis.call('HEXISTS', key, ARGV[i]) == 0 then
              fresh = fresh + 1
            end
          end
          if data_fields(key) + fresh > MAX_KEYS then
            result = TOO_MANY_KEYS
          end
        end
        local bytes = tonumber(meta[3]) or 0
        if result == OK then
          for i = first, last, 2 do
            bytes = resized(bytes, ARGV[i], redis.call('HSTRLEN', key, ARGV[i]), #ARGV[i + 1])
          end
          if bytes > MAX_SESSION_BYTES then
            result = { TOO_LARGE, bytes }
          end
        end
        if result == OK and renew then
          redis.call('HSET', key, 'meta:last_active', now, 'meta:lives_until', renewed_until,
            'meta:bytes', bytes, unpack(ARGV, first, last))
        elseif result == OK then
          redis.call('HSET', key, 'meta:last_active', now, 'meta:bytes', bytes,
            unpack(ARGV, first, last))
        end
      else
        if op == 'd' then
          local held = redis.call('HSTRLEN', key, ARGV[first])
          if held > 0 then
            redis.call('HDEL', key, ARGV[first])
            redis.call('HSET', key, 'meta:bytes', resized(meta[3], ARGV[first], held, 0, true))
          end
        else
          redis.call('HDEL', key, 'meta:bytes')
          local data = {}
          for _, field in ipairs(redis.call('HKEYS', key)) do
            if string.sub(field, 1, 5) == 'data:' then
              data[#data + 1] = field
            end
          end
          if #data > 0 then
            redis.call('HDEL', key, unpack(data))
          end
        end
        if renew then
          redis.call('HSET', key, 'meta:last_active', now, 'meta:lives_until', renewed_until)
        else
          redis.call('HSET', key, 'meta:last_active', now)
        end
      end
      if result == OK and renew then
        refresh(key, meta[1], set_until, rooms_key, rooms, true)
      end
    end
  end
  results[#results + 1] = result
end
if CLUSTER then
  return { results, renewed }
end
if #results == 1 then
  return results[1]
end
return results
