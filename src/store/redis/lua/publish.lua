-- KEYS[1] the hub's clock, KEYS[2] the history of the topic
-- ARGV[1] channel, ARGV[2] kind byte, ARGV[3] target, ARGV[4] payload, ARGV[5] messages kept,
-- ARGV[6] retention ms
-- Keeps the message under the next offset and publishes its envelope with that offset.
local now = server_ms()
local offset = next_offset(KEYS[1], now, ARGV[6])
keep_message(KEYS[2], offset, now, ARGV[2], ARGV[4], ARGV[5], ARGV[6])
return redis.call('PUBLISH', ARGV[1],
  ARGV[2] .. string.char(#offset) .. offset .. ARGV[3] .. ARGV[4])
