-- KEYS[1] user set; on a cluster KEYS[2..] the hashes of the set's sessions, as the caller
--   read them (a session added since makes the script answer NEED_KEYS, writing nothing)
-- ARGV[1] user id
-- Returns a flat array: session id, HGETALL of that session, session id, ...
local function owner(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'meta:user_id' then
      return fields[i + 1]
    end
  end
  return nil
end

local ids = redis.call('SMEMBERS', KEYS[1])
if not all_declared(SESSION_PREFIX, ids) then
  return NEED_KEYS
end
local live = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', slotted(SESSION_PREFIX, id, id))
  if #fields == 0 then
    -- expired or removed
    redis.call('SREM', KEYS[1], id)
  else
    local user = owner(fields)
    if user and user ~= ARGV[1] then
      -- the id was taken again by another user's session after this one expired
      redis.call('SREM', KEYS[1], id)
    else
      live[#live + 1] = id
      live[#live + 1] = fields
    end
  end
end
return live
