-- KEYS[1] session hash, KEYS[2] the hub's clock, KEYS[3] the session's history
-- ARGV[1] kind byte, ARGV[2] target, ARGV[3] payload, ARGV[4] messages kept (0: no history),
-- ARGV[5] retention ms, ARGV[6] bytes kept per history, ARGV[7] bytes kept in all
-- Sends a message to one session: kept in its history (so that it reaches the session after a
-- resume even while detached), and published to the node holding its connection, if any.
local meta = redis.call('HMGET', KEYS[1], 'meta:user_id', 'meta:node')
if not meta[1] then
  return NOT_FOUND
end
local offset = ''
if tonumber(ARGV[4]) > 0 then
  local now = server_ms()
  offset = next_offset(KEYS[2], now, ARGV[5])
  keep_message(KEYS[3], offset, now, ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
  -- The history of a session lives no longer than the session.
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 and left < redis.call('PTTL', KEYS[3]) then
    redis.call('PEXPIRE', KEYS[3], left)
  end
end
if meta[2] then
  redis.call('PUBLISH', NODE_CHANNEL_PREFIX .. meta[2],
    ARGV[1] .. string.char(#offset) .. offset .. ARGV[2] .. ARGV[3])
end
return OK
