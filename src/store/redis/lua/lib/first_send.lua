-- On a cluster, whether send `seq` of publishing node `node` is new: the client sends a call
-- again after a connection dropped, and a message must not be kept or published twice. Each
-- node's publisher numbers its sends in the order it sends them, so `sent` (a hash: node ->
-- last number) records the last one; a number not above it was sent already (or given up:
-- its caller was told it failed). The record lives a day after its last send.
local function first_send(sent, node, seq)
  local last = tonumber(redis.call('HGET', sent, node) or '0')
  seq = tonumber(seq)
  if seq <= last then
    return false
  end
  redis.call('HSET', sent, node, seq)
  redis.call('PEXPIRE', sent, 86400000)
  return true
end
