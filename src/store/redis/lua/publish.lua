-- KEYS[1] the hub's clock, KEYS[2] the history of the topic, KEYS[3] (absent for everyone) the
-- set of the sessions the topic reaches: a room's members or a user's sessions
-- ARGV[1] channel, ARGV[2] kind byte, ARGV[3] target (the session left out), ARGV[4] payload, ARGV[5] messages kept,
-- ARGV[6] retention ms, ARGV[7] bytes kept per history, ARGV[8] bytes kept in all
-- Keeps the message under the next offset, unless nobody could ever get it from the history
-- (a room without members, a user without sessions), and publishes its envelope with that
-- offset.
local now = server_ms()
local offset = next_offset(KEYS[1], now, ARGV[6])
if not KEYS[3] or redis.call('EXISTS', KEYS[3]) == 1 then
  -- A message that leaves a session out (a target longer than its two length bytes) keeps the
  -- target after its kind, so that a resume of that session skips it.
  local kind = ARGV[2]
  if #ARGV[3] > 2 then
    kind = kind .. ARGV[3]
  end
  keep_message(KEYS[2], offset, now, kind, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
end
return redis.call('PUBLISH', ARGV[1],
  ARGV[2] .. string.char(#offset) .. offset .. ARGV[3] .. ARGV[4])
