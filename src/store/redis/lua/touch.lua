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
local extended = {}
for i, key in ipairs(KEYS) do
  local user = owners[i]
  if user or redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'meta:last_active', ARGV[3])
    redis.call('PEXPIRE', key, ARGV[2])
    -- A hash without an owner is kept alive, but has no user set.
    if user and not extended[user] then
      extended[user] = true
      outlive(ARGV[1] .. user, ARGV[2])
    end
  else
    missing[#missing + 1] = ARGV[3 + i]
  end
end
return missing
