-- The key of kind `head` (SESSION_PREFIX, USER_SET_PREFIX, ...) named `name`, for a session or
-- user whose slot tag session id `id` starts with: on a cluster the tag goes between the kind
-- and the name (see `keys.rs`); on one server the name follows the kind.
local function slotted(head, id, name)
  if CLUSTER then
    return head .. '{' .. string.sub(id, 1, TAG_LEN) .. '}:' .. name
  end
  return head .. name
end

-- On a cluster, whether every key of kind `head` for the session ids `ids` is one of the
-- script's KEYS; always true on one server, where scripts may name the keys they derive.
local function all_declared(head, ids)
  if not CLUSTER then
    return true
  end
  local declared = {}
  for _, key in ipairs(KEYS) do
    declared[key] = true
  end
  for _, id in ipairs(ids) do
    if not declared[slotted(head, id, id)] then
      return false
    end
  end
  return true
end
