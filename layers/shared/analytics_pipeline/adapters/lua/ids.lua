-- ids.lua: which entity each event id of ONE shard (by id) belongs to, recorded the first time.
--
-- Used only when the layout has several shards: ingest.lua dedupes in the shard of the event's
-- entity, so an event id reused for another entity (another shard) would escape it. This script,
-- in the shard of the event id, runs first and answers "duplicate" for such a reuse. A retry of the
-- same event (same entity) goes on to ingest.lua, whose marks tell whether it was counted: a crash
-- between the two calls is repaired by the retry, never counted twice.
--
-- KEYS[1..] per bucket, the id strings of generation gen, gen+1, gen-1 and gen-2, in that order
--           (all of one shard: one hash tag, one cluster slot)
-- ARGV[1]   ttl of a string of the current generation, in s (until generation gen+2 ends)
-- ARGV[2..] per event, three arguments: its 8-byte mark, the 4-byte digest of its entity, the KEYS
--           index of its bucket's current generation
--
-- Returns one flag per event: 1 when the id is new or was seen for the same entity (go on and
-- count it, or find it counted), 0 when it was seen for another entity (a duplicate).
--
-- A string holds 12-byte records end to end (mark, then entity digest); a record is found at an
-- offset that is a multiple of 12. Every string is read (and so type-checked) before the first
-- write: a failing call writes nothing.

local n = (#ARGV - 1) / 3
local strings = {}
for i = 1, n do
  local b = tonumber(ARGV[2 + 3 * (i - 1) + 2])
  if strings[b] == nil then
    for g = b, b + 3 do
      local text = redis.pcall('GET', KEYS[g])
      if type(text) == 'table' and text.err then
        return redis.error_reply('WRONGTYPE ' .. KEYS[g] .. ' is not a string of ids: ' .. text.err)
      end
      strings[g] = text or ''
    end
  end
end

local function owner_in(index, mark)
  local text = strings[index]
  local from = 1
  while true do
    local at = string.find(text, mark, from, true)
    if not at then return nil end
    if (at - 1) % 12 == 0 then return string.sub(text, at + 8, at + 11) end
    from = at + 1
  end
end

local result = {}
local grown = {}
local was_empty = {}
for index, text in pairs(strings) do
  was_empty[index] = text == ''
end
for i = 1, n do
  local a = 2 + 3 * (i - 1)
  local mark, entity, b = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local owner = owner_in(b, mark) or owner_in(b + 1, mark) or owner_in(b + 2, mark) or owner_in(b + 3, mark)
  if owner == nil then
    strings[b] = strings[b] .. mark .. entity
    grown[b] = true
    result[i] = 1
  elseif owner == entity then
    result[i] = 1
  else
    result[i] = 0
  end
end
-- one SET per grown string, sized exactly (APPEND would leave up to as much room again unused)
for index in pairs(grown) do
  if was_empty[index] then
    redis.call('SET', KEYS[index], strings[index], 'EX', ARGV[1])
  else
    redis.call('SET', KEYS[index], strings[index], 'KEEPTTL')
  end
end
return result
