-- Test builds on a Redis Cluster: a script that calls Redis with a key it did not declare in
-- KEYS fails, naming the key, so that the tests catch what a resharding would break. (Redis
-- checks that declared keys share a slot, and that undeclared ones are in that slot; it
-- cannot tell an undeclared key of the same slot.) Keys are the first argument of every
-- command the scripts call, every argument of DEL and EXISTS, the second of XINFO, none of TIME and SPUBLISH.
local redis = (function(real)
  local declared = {}
  for _, key in ipairs(KEYS) do
    declared[key] = true
  end
  local function check(command, ...)
    local name = string.upper(command)
    if name == 'TIME' or name == 'SPUBLISH' then
      return
    end
    local args = { ... }
    local first, last = 1, 1
    if name == 'DEL' or name == 'EXISTS' then
      last = #args
    elseif name == 'XINFO' then
      first, last = 2, 2
    end
    for i = first, last do
      if not declared[args[i]] then
        error('undeclared key ' .. tostring(args[i]) .. ' in ' .. name)
      end
    end
  end
  return setmetatable({
    call = function(command, ...)
      check(command, ...)
      return real.call(command, ...)
    end,
    pcall = function(command, ...)
      check(command, ...)
      return real.pcall(command, ...)
    end,
  }, { __index = real })
end)(redis)
