-- KEYS[1] session hash
-- ARGV[1] now ms
local key = KEYS[1]
local user, rooms = owner_of(key, NOT_FOUND, NO_OWNER)
if not user then
  return rooms
end
local data = { key }
for _, field in ipairs(redis.call('HKEYS', key)) do
  if string.sub(field, 1, 5) == 'data:' then
    data[#data + 1] = field
  end
end
if #data > 1 then
  redis.call('HDEL', unpack(data))
end
redis.call('HSET', key, 'meta:last_active', ARGV[1])
redis.call('PEXPIRE', key, TTL_MS)
outlive(USER_SET_PREFIX .. user, SET_FLOOR_MS, SET_TTL_MS)
if rooms then
  keep_rooms(key, #SESSION_PREFIX, SESSION_ROOMS_PREFIX, ROOM_MEMBERS_PREFIX,
    TTL_MS, SET_FLOOR_MS, SET_TTL_MS)
end
return OK
