-- The owner of the session hash at `key`, or nil and the status that stops a write:
-- `missing` (NOT_FOUND) when there is no such key, `ownerless` (NO_OWNER) when it exists
-- without `meta:user_id`.
local function owner_of(key, missing, ownerless)
  local user = redis.call('HGET', key, 'meta:user_id')
  if user then
    return user
  end
  if redis.call('EXISTS', key) == 1 then
    return nil, ownerless
  end
  return nil, missing
end
