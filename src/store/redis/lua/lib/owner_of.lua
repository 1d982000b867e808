-- The owner of the session hash at `key` and whether it is in rooms, or nil and the status
-- that stops a write: `missing` (NOT_FOUND) when there is no such key, `ownerless`
-- (NO_OWNER) when it exists without `meta:user_id`.
local function owner_of(key, missing, ownerless)
  local meta = redis.call('HMGET', key, 'meta:user_id', 'meta:rooms')
  if meta[1] then
    return meta[1], meta[2]
  end
  if redis.call('EXISTS', key) == 1 then
    return nil, ownerless
  end
  return nil, missing
end
