-- KEYS[i] session hash of ARGV[3 + i]
-- ARGV[1] user set prefix, ARGV[2] ttl ms, ARGV[3] now ms, ARGV[4..] session ids
-- Returns the ids whose session no longer exists.
--
-- Every session is read before any is written, so a key of the wrong type fails the script
-- before it has refreshed anything.
local owners = {}
for i, key in ipairs(KEYS) do
  owners[i] = redis.call('HGET', key, 'meta:user_id')
end
local missing = {}
for i, key in ipairs(KEYS) do
  local id = ARGV[3 + i]
  local user = owners[i]
  if user then
    local user_set = ARGV[1] .. user
    join(user_set, id)
    refresh(key, ARGV[2], ARGV[3])
    outlive(user_set, key)
  elseif redis.call('EXISTS', key) == 1 then
    -- a hash without an owner: keep it alive, but it has no user set to join
    refresh(key, ARGV[2], ARGV[3])
  else
    missing[#missing + 1] = id
  end
end
return missing
