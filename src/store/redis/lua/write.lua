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
-- (WRONGTYPE on a corrupt key) refuses that write alone; a touch reads all its sessions first.
-- All writes of the call share `now` and the TTL, so a user's set is kept alive once per call,
-- however many of its sessions the call writes.
--
-- A session hash remembers in `meta:set_until` (Redis time, ms) a time until which its user's
-- set is known to live. No script shortens a user set's TTL or deletes the set while one of its
-- sessions lives, so while that time is more than SET_FLOOR_MS away, the write needs no look
-- at the set: a session written all the time reads the set's TTL about once per TTL, not on
-- every write.
--
-- The script runs from the top on every call and defines no functions: every closure it
-- created would be garbage for Lua's collector, which costs Redis more per call than the
-- few lines repeated below (`outlive` and `keep_listed_rooms` of `lib/`, written out).
local now = ARGV[1]
-- Redis time in ms, for `meta:set_until`.
local clock = redis.call('TIME')
clock = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local set_ttl = tonumber(SET_TTL_MS)
-- Users whose set this call has kept alive.
local kept = {}
-- The sessions a write refreshes once it has written: their keys, owners (or false), rooms
-- keys (or false), rooms, and `meta:set_until` (or false). Reused from write to write.
local todo_key, todo_user, todo_rooms_key, todo_rooms, todo_until = {}, {}, {}, {}, {}
local results = {}
local k, a, last_arg = 1, 2, #ARGV
while a <= last_arg do
  local op = ARGV[a]
  local first, n, count = a + 1, 0, 1
  if op == 's' then
    n = tonumber(ARGV[a + 1])
    first = a + 2
    a = first + 2 * n
  elseif op == 't' then
    count = tonumber(ARGV[a + 1])
    a = a + 2
  elseif op == 'd' then
    a = a + 2
  else
    a = a + 1
  end

  -- Read every session of the write before writing any.
  local result = false
  local last_active = false
  local todo = 0
  for i = k, k + count - 1 do
    local key = KEYS[i]
    local meta = redis.pcall('HMGET', key,
      'meta:user_id', 'meta:last_active', 'meta:rooms', 'meta:set_until')
    if meta.err then
      result = meta
      break
    end
    local rooms_key, rooms = false, false
    if meta[3] then
      rooms_key = SESSION_ROOMS_PREFIX .. string.sub(key, #SESSION_PREFIX + 1)
      rooms = redis.pcall('HKEYS', rooms_key)
      if rooms.err then
        result = rooms
        break
      end
    end
    todo = todo + 1
    todo_key[todo], todo_user[todo] = key, meta[1] or false
    todo_rooms_key[todo], todo_rooms[todo] = rooms_key, rooms
    todo_until[todo] = meta[4] or false
    last_active = meta[2]
  end
  k = k + count

  if result then
    -- A read failed: nothing of this write is written.
    todo = 0
  elseif op == 't' then
    -- A hash without an owner is kept alive, but has no user set.
    local missing = {}
    local live = 0
    for j = 1, todo do
      local key = todo_key[j]
      if todo_user[j] or redis.call('EXISTS', key) == 1 then
        redis.call('HSET', key, 'meta:last_active', now)
        live = live + 1
        todo_key[live], todo_user[live] = key, todo_user[j]
        todo_rooms_key[live], todo_rooms[live] = todo_rooms_key[j], todo_rooms[j]
        todo_until[live] = todo_until[j]
      else
        missing[#missing + 1] = string.sub(key, #SESSION_PREFIX + 1)
      end
    end
    todo = live
    result = missing
  else
    local key = todo_key[1]
    if not todo_user[1] then
      if redis.call('EXISTS', key) == 1 then
        result = NO_OWNER
      else
        result = NOT_FOUND
      end
    elseif op == 's' then
      result = OK
      if n == 1 then
        -- The common case: write, and count the keys only when HSET says it added one. Over
        -- the limit, the write is undone before the script ends, so nothing is written.
        if redis.call('HSET', key, 'meta:last_active', now, ARGV[first], ARGV[first + 1]) > 0
          and data_fields(key) > MAX_KEYS then
          redis.call('HDEL', key, ARGV[first])
          if last_active then
            redis.call('HSET', key, 'meta:last_active', last_active)
          else
            redis.call('HDEL', key, 'meta:last_active')
          end
          result = TOO_MANY_KEYS
        end
      else
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
        if result == OK then
          redis.call('HSET', key, 'meta:last_active', now, unpack(ARGV, first, last))
        end
      end
    elseif op == 'd' then
      redis.call('HDEL', key, ARGV[first])
      redis.call('HSET', key, 'meta:last_active', now)
      result = OK
    else
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
      result = OK
    end
    if result ~= OK then
      todo = 0
    end
  end

  -- Give what was written its TTL again, and keep its user's set and its rooms' member sets
  -- alive past it (a set with less than SET_FLOOR_MS left gets SET_TTL_MS).
  for j = 1, todo do
    local key, user, rooms_key = todo_key[j], todo_user[j], todo_rooms_key[j]
    redis.call('PEXPIRE', key, TTL_MS)
    -- A value that is not a number (corrupt) counts as none.
    local set_until = todo_until[j] and tonumber(todo_until[j])
    if user and not kept[user] and not (set_until and set_until - clock >= SET_FLOOR_MS) then
      kept[user] = true
      local set = USER_SET_PREFIX .. user
      local left = redis.call('PTTL', set)
      if left < SET_FLOOR_MS then
        redis.call('PEXPIRE', set, SET_TTL_MS)
        left = set_ttl
      end
      -- A set that does not exist (-2) is not remembered: the next write looks again.
      if left >= 0 then
        redis.call('HSET', key, 'meta:set_until', clock + left)
      end
    end
    if rooms_key then
      redis.call('PEXPIRE', rooms_key, TTL_MS)
      for _, room in ipairs(todo_rooms[j]) do
        local members = ROOM_MEMBERS_PREFIX .. room
        if redis.call('PTTL', members) < SET_FLOOR_MS then
          redis.call('PEXPIRE', members, SET_TTL_MS)
        end
      end
    end
  end
  results[#results + 1] = result
end
return results
