-- members.lua: what the flush's scripts share, put in place of their `--#include members.lua` line
-- by load_lua (redis_store.py): Redis runs each script on its own, with nothing to import.

-- a member's entity (domain:type:id of domain:type:id:day): a day is 10 characters, so its colon is
-- looked up where it must be (two plain searches, not a pattern over the whole member)
local function entity_of(member)
  local n = #member
  if n > 11 and string.byte(member, n - 10) == 58 and not string.find(member, ':', n - 9, true) then
    return string.sub(member, 1, n - 11)
  end
  return string.match(member, '^(.*):[^:]*$')
end
