-- KEYS[1] on one server the session hash, on a cluster the record of the publishing node's
--   last send; KEYS[2] the hub's clock, KEYS[3] the session's history; on a cluster
--   KEYS[4] KEPT_BYTES_KEY, KEYS[5] KEPT_AT_KEY, KEYS[6] KEPT_TOTAL_KEY
-- ARGV[1] kind byte, ARGV[2] target, ARGV[3] payload, ARGV[4] messages kept (0: no history),
-- ARGV[5] retention ms, ARGV[6] bytes kept per history, ARGV[7] bytes kept in all; on a
--   cluster, where the session's hash lives in another slot and the store read it first,
--   ARGV[8] its node or '', ARGV[9] its TTL left in ms, ARGV[10] the publishing node,
--   ARGV[11] its sequence number for this send
-- Sends a message to one session: kept in its history (so that it reaches the session after a
-- resume even while detached), and published to the node holding its connection, if any.
-- Answers OK or NOT_FOUND; on a cluster {OK, {history, ...}}, as `publish.lua`, or {OK, {}}
-- for a send this call already made.
local node, left
if CLUSTER then
  if not first_send(KEYS[1], ARGV[11]) then
    return { OK, {} }
  end
  node = ARGV[8]
  if node == '' then
    node = false
  end
  left = tonumber(ARGV[9])
else
  local meta = redis.call('HMGET', KEYS[1], 'meta:user_id', 'meta:node')
  if not meta[1] then
    return NOT_FOUND
  end
  node = meta[2]
  left = redis.call('PTTL', KEYS[1])
end
local offset = ''
local evict = {}
if tonumber(ARGV[4]) > 0 then
  local now = server_ms()
  offset = next_offset(KEYS[2], now, ARGV[5])
  evict = keep_message(KEYS[3], offset, now, ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6],
    ARGV[7])
  -- The history of a session lives no longer than the session.
  if left > 0 and left < redis.call('PTTL', KEYS[3]) then
    redis.call('PEXPIRE', KEYS[3], left)
  end
end
if node then
  local channel = NODE_CHANNEL_PREFIX .. node
  local envelope = ARGV[1] .. string.char(#offset) .. offset .. ARGV[2] .. ARGV[3]
  if CLUSTER then
    redis.call('SPUBLISH', channel, envelope)
  else
    redis.call('PUBLISH', channel, envelope)
  end
end
if CLUSTER then
  return { OK, evict }
end
return OK
