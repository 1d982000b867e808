-- On a cluster, after a script gave the session hash at `key` its TTL: 1 when its user's set
-- may not outlive it (`meta:set_until` is less than SET_FLOOR_MS away, or unknown), so that
-- the store keeps the set alive (`keep_index.lua`); else 0.
local function needs_look(key)
  local set_until = tonumber(redis.call('HGET', key, 'meta:set_until'))
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if set_until and set_until - now >= SET_FLOOR_MS then
    return 0
  end
  return 1
end
