#!lua flags=no-writes
-- candidates.lua: the dirty members of ONE shard a claim should take, oldest first. Reads only.
--
-- The claim declares every key it touches (claim.lua says why), so the caller first learns which
-- counters to declare: the members of the oldest dirty entities that no batch in flight owns, at
-- most ARGV[1] entities (all their days within the window). Without this step the caller would
-- declare the whole window (ARGV[2] members, most of them never claimed) and encode each twice.
-- Another flush may claim some of them before the claim runs: claim.lua checks every one again.
--
-- KEYS[1]  dirty zset (member: domain:type:id:day, score: ms first marked dirty)
-- KEYS[2]  owner hash (field: domain:type:id, value: sequence number of its batch in flight)
-- KEYS[3]  when ARGV[3] = 1 (one primary while a v1 layout drains): the other layout's owner hash
-- ARGV[1]  how many entities at most
-- ARGV[2]  how many of the oldest dirty members to look at
-- ARGV[3]  1 when the v1 and v2 layouts are linked, else 0
--
-- Returns the members, oldest first, as one string, a line each (a reply of one element, not one per
-- member, which the client parses one by one); as a list of members when one holds a newline (an
-- entity id never does: its formats allow none).

local linked = tonumber(ARGV[3]) == 1
local max_entities = tonumber(ARGV[1])
--#include members.lua (CHUNK, each_chunk, hmget, entity_of)
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
-- the members' entities, in order of first appearance
local order, index, ents = {}, {}, {}
for i, member in ipairs(members) do
  local entity = entity_of(member)
  ents[i] = entity
  if not index[entity] then
    order[#order + 1] = entity
    index[entity] = #order
  end
end
-- their owners, looked up as the walk below reaches them, as many at a time as the batch still
-- needs (one HMGET, not an HGET each; not the whole window's: an owner hash of few entries is a
-- flat list, each lookup a scan of it)
local owned, looked = {}, 0
local function look(upto)
  local names = {}
  for i = looked + 1, upto do names[#names + 1] = order[i] end
  for _, key in ipairs(linked and {KEYS[2], KEYS[3]} or {KEYS[2]}) do
    for j, owner in ipairs(hmget(key, names)) do
      if owner then owned[looked + j] = true end
    end
  end
  looked = upto
end
local decided = {}  -- entity -> true (taken) or false (busy, or over the limit)
local entities = 0
local out = {}
for i, member in ipairs(members) do
  local entity = ents[i]
  local take = decided[entity]
  if take == nil then
    local at = index[entity]
    if entities < max_entities and at > looked then
      look(math.min(#order, at + math.max(max_entities - entities, 16) - 1))
    end
    take = entities < max_entities and not owned[at]
    decided[entity] = take
    if take then entities = entities + 1 end
  end
  if take then out[#out + 1] = member end
end
for _, member in ipairs(out) do
  if string.find(member, '\n', 1, true) then return out end
end
return #out > 0 and table.concat(out, '\n') or out
