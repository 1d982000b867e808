-- On a cluster, whether send `seq` of a publishing node is new: the client sends a call again
-- after a connection dropped, and a message must not be kept or published twice. Each node's
-- publisher numbers its sends in the order it sends them, and `sent` (a string of the node's
-- own) records the last one; a number not above it was sent already (or given up: its caller
-- was told it failed). The record lives a day after the node's last send.
local function first_send(sent, seq)
  local last = tonumber(redis.call('GET', sent) or '0') or 0
  seq = tonumber(seq)
  if seq <= last then
    return false
  end
  redis.call('SET', sent, seq, 'PX', 86400000)
  return true
end
