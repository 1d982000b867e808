-- KEYS[1] session hash, KEYS[2] the detached sessions of the expected user; on a cluster
--   also KEYS[3] the expected user's set, KEYS[4] the session's rooms
-- ARGV[1] session id, ARGV[2] hash of the presented token, ARGV[3] expected user,
-- ARGV[4] hash of the new token, ARGV[5] hub node, ARGV[6] now ms
-- Returns {REFUSED_*} or {OK, epoch, previous node or '', since, {room, since, ...}}. On a
-- cluster, the session's history and its rooms' sets live in the hub's slot: the store keeps
-- them alive next.
--
-- Checks the token's hash in constant time, then the user; on success rotates the token and
-- attaches the session to the node, in one step, so that two claims with one token cannot both
-- win.
-- Constant time: eight bytes of each per `string.byte` call, and the differences summed as
-- squares (zero only when every byte matches): a few microseconds a call, where one call per
-- byte cost several times as much.
local function same(a, b)
  if #a ~= #b then
    return false
  end
  local diff = 0
  for i = 1, #a, 8 do
    local a1, a2, a3, a4, a5, a6, a7, a8 = string.byte(a, i, i + 7)
    local b1, b2, b3, b4, b5, b6, b7, b8 = string.byte(b, i, i + 7)
    -- Past the end of a length that is not a multiple of eight, both give nil.
    local d1, d2 = a1 - b1, (a2 or 0) - (b2 or 0)
    local d3, d4 = (a3 or 0) - (b3 or 0), (a4 or 0) - (b4 or 0)
    local d5, d6 = (a5 or 0) - (b5 or 0), (a6 or 0) - (b6 or 0)
    local d7, d8 = (a7 or 0) - (b7 or 0), (a8 or 0) - (b8 or 0)
    diff = diff + d1 * d1 + d2 * d2 + d3 * d3 + d4 * d4 + d5 * d5 + d6 * d6 + d7 * d7 + d8 * d8
  end
  return diff == 0
end

local key = KEYS[1]
local meta = redis.call('HMGET', key,
  'meta:user_id', 'meta:token', 'meta:node', 'meta:since', 'meta:rooms', 'meta:epoch')
if not meta[1] or not meta[2] then
  return { REFUSED_UNKNOWN }
end
-- On a cluster the client sends a call again after a connection dropped: the claim this
-- very call made (the new token, only its claimer knows, is in place on its node) answers as
-- it did, but for the node it took the session from, which it no longer knows.
if CLUSTER and meta[2] == ARGV[4] and meta[3] == ARGV[5] then
  return { OK, tonumber(meta[6]) or 1, '', meta[4] or '0',
    redis.call('HGETALL', KEYS[4]) }
end
if not same(meta[2], ARGV[2]) then
  return { REFUSED_TOKEN }
end
if meta[1] ~= ARGV[3] then
  return { REFUSED_USER }
end
-- The epoch counts attachments from 1; the read one (a number, or none) is written back one
-- higher with the other fields, in one HSET.
local epoch = (tonumber(meta[6]) or 0) + 1
redis.call('HSET', key, 'meta:epoch', epoch, 'meta:token', ARGV[4], 'meta:node', ARGV[5],
  'meta:last_active', ARGV[6])
redis.call('HDEL', key, 'meta:detached')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PEXPIRE', key, TTL_MS)
if not CLUSTER then
  redis.call('PEXPIRE', HISTORY_SESSION_PREFIX .. ARGV[1], TTL_MS)
end
outlive(slotted(USER_SET_PREFIX, ARGV[1], meta[1]), SET_FLOOR_MS, SET_TTL_MS)
local rooms = {}
if meta[5] then
  -- One read of the rooms, each with the offset it joined at, for the answer and the keep.
  local rooms_key = slotted(SESSION_ROOMS_PREFIX, ARGV[1], ARGV[1])
  rooms = redis.call('HGETALL', rooms_key)
  if CLUSTER then
    redis.call('PEXPIRE', rooms_key, SET_TTL_MS)
  else
    local names = {}
    for i = 1, #rooms, 2 do
      names[#names + 1] = rooms[i]
    end
    keep_listed_rooms(rooms_key, names, ROOM_MEMBERS_PREFIX, SET_TTL_MS, SET_FLOOR_MS,
      SET_TTL_MS)
  end
end
return { OK, epoch, meta[3] or '', meta[4] or '0', rooms }
