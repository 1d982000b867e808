-- How many data fields the session hash at `key` holds.
local function data_fields(key)
  return redis.call('HLEN', key) - 1
    - redis.call('HEXISTS', key, 'meta:created_at')
    - redis.call('HEXISTS', key, 'meta:last_active')
    - redis.call('HEXISTS', key, 'meta:node')
    - redis.call('HEXISTS', key, 'meta:rooms')
end
