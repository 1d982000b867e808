-- KEYS[1] the hub's clock, KEYS[2] the history of the topic, KEYS[3] (absent for everyone) the
--   set of the sessions the topic reaches: a room's members or a user's sessions. On a
--   cluster, KEYS[3] KEPT_BYTES_KEY, KEYS[4] KEPT_AT_KEY, KEYS[5] KEPT_TOTAL_KEY, KEYS[6] the
--   record of the publishing node's last send, KEYS[7] (absent for everyone and for a user,
--   whose set lives in another slot) a room's members.
-- ARGV[1] channel, ARGV[2] kind byte, ARGV[3] target (the session left out), ARGV[4] payload, ARGV[5] messages kept,
-- ARGV[6] retention ms, ARGV[7] bytes kept per history, ARGV[8] bytes kept in all; on a
--   cluster ARGV[9] the publishing node, ARGV[10] its sequence number for this send
-- Keeps the message under the next offset, unless nobody could ever get it from the history
-- (a room without members, a user without sessions), and publishes its envelope with that
-- offset. Answers how many subscribers got it; on a cluster {subscribers, {history, ...}}:
-- also the histories for the store to evict (see `keep_message`), and a send this call
-- already made (the client sent it again after a connection dropped) answers {-1, {}} and is
-- neither kept nor published twice.
local reached = KEYS[3]
if CLUSTER then
  if not first_send(KEYS[6], ARGV[10]) then
    return { -1, {} }
  end
  reached = KEYS[7]
end
local now = server_ms()
local offset = next_offset(KEYS[1], now, ARGV[6])
local evict = {}
if not reached or redis.call('EXISTS', reached) == 1 then
  -- A message that leaves a session out (a target longer than its two length bytes) keeps the
  -- target after its kind, so that a resume of that session skips it.
  local kind = ARGV[2]
  if #ARGV[3] > 2 then
    kind = kind .. ARGV[3]
  end
  evict = keep_message(KEYS[2], offset, now, kind, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
end
local envelope = ARGV[2] .. string.char(#offset) .. offset .. ARGV[3] .. ARGV[4]
if CLUSTER then
  return { redis.call('SPUBLISH', ARGV[1], envelope), evict }
end
return redis.call('PUBLISH', ARGV[1], envelope)
