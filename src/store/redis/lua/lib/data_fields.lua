-- How many data fields the session hash at `key` holds: its length less its metadata fields.
local function data_fields(key)
  local meta = redis.call('HMGET', key, 'meta:user_id', 'meta:created_at', 'meta:last_active',
    'meta:node', 'meta:rooms', 'meta:token', 'meta:epoch', 'meta:since', 'meta:detached',
    'meta:set_until', 'meta:lives_until', 'meta:bytes', 'meta:create')
  local count = redis.call('HLEN', key)
  for i = 1, 13 do
    if meta[i] then
      count = count - 1
    end
  end
  return count
end
