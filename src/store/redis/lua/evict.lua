-- On a cluster: evicts the histories `keep_message` named (see `lib/history.lua`), which a
-- call that keeps a message could not touch, not having declared them.
-- KEYS[1] KEPT_BYTES_KEY, KEYS[2] KEPT_AT_KEY, KEYS[3] KEPT_TOTAL_KEY, KEYS[4..] the named
--   histories, oldest first
-- ARGV[1] retention ms, ARGV[2] bytes kept in all
-- A named history that expired (nobody wrote to it for its whole life) leaves the count; then,
-- while the histories hold more than the bound in all, the named ones that are still the
-- least recently written are emptied, as on one server.
local now = server_ms()
local life = 2 * tonumber(ARGV[1]) + 1000
local total = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local named = {}
for i = 4, #KEYS do
  named[KEYS[i]] = true
  local at = redis.call('ZSCORE', KEYS[2], KEYS[i])
  if at and tonumber(at) < now - life - 1000 then
    total = total - uncount(KEYS[i])
    redis.call('DEL', KEYS[i])
  end
end
local total_bytes = tonumber(ARGV[2])
while total > total_bytes do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest or not named[oldest] then
    break
  end
  drop_all(oldest)
  total = total - uncount(oldest)
  named[oldest] = nil
end
if total < 0 then
  total = 0
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[3], total, 'KEEPTTL')
end
return OK
