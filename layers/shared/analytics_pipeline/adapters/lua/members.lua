-- members.lua: what the flush's scripts share, put in place of their `--#include members.lua` line
-- by load_lua (redis_store.py): Redis runs each script on its own, with nothing to import.

-- One variadic call per kind of write or read, not a command per entity (a command per entity-day
-- was most of the flush's cost in Redis, and of the replication stream), at most CHUNK arguments a
-- call (even: field-value and score-member pairs stay whole; far below what unpack can hand a call).
local CHUNK = 1000

-- `command` [key] with the list's items as its arguments, CHUNK at a time
local function each_chunk(command, key, list)
  for i = 1, #list, CHUNK do
    local upto = math.min(i + CHUNK - 1, #list)
    if key then redis.call(command, key, unpack(list, i, upto))
    else redis.call(command, unpack(list, i, upto)) end
  end
end

-- the hash's values of `names`, in their order (false for a field it lacks)
local function hmget(key, names)
  local found = {}
  for i = 1, #names, CHUNK do
    local part = redis.call('HMGET', key, unpack(names, i, math.min(i + CHUNK - 1, #names)))
    for j = 1, #part do found[i + j - 1] = part[j] end
  end
  return found
end

-- a member's entity (domain:type:id of domain:type:id:day): a day is 10 characters, so its colon is
-- looked up where it must be (two plain searches, not a pattern over the whole member)
local function entity_of(member)
  local n = #member
  if n > 11 and string.byte(member, n - 10) == 58 and not string.find(member, ':', n - 9, true) then
    return string.sub(member, 1, n - 11)
  end
  return string.match(member, '^(.*):[^:]*$')
end
