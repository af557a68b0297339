-- ids.lua: which entity each event id of ONE shard (by id) belongs to, recorded the first time.
--
-- Used only when the layout has several shards: ingest.lua dedupes in the shard of the event's
-- entity, so an event id reused for another entity (another shard) would escape it. This script,
-- in the shard of the event id, runs first and answers "duplicate" for such a reuse. A retry of the
-- same event (same entity) goes on to ingest.lua, whose marks tell whether it was counted: a crash
-- between the two calls is repaired by the retry, never counted twice.
--
-- KEYS[1..] the id strings (one per bucket, every generation's records in it), and while the earlier
--           format expires, its strings (i:<gen>:<bucket>, four consecutive keys per bucket)
-- ARGV[1]   ttl of a string written now, in s (until generation gen+2 ends)
-- ARGV[2]   the current generation mod 256
-- ARGV[3]   "o" when each record carries the earlier format's lookup, else ""
-- ARGV[4]   the events, packed end to end (big-endian integers): the id's 7-byte mark, the 4-byte
--           digest of its entity, the KEYS index of its bucket's string (2 bytes); with "o", its
--           unkeyed 8-byte mark and the KEYS index of its bucket's first i: string (2 bytes)
--
-- Returns one character per event: "1" when the id is new or was seen for the same entity (go on
-- and count it, or find it counted), "0" when it was seen for another entity (a duplicate).
--
-- A string holds 12-byte records end to end (generation, mark, entity digest); a record is found at
-- an offset that is a multiple of 12, of generation gen-2 .. gen+1. Every string is read (and so
-- type-checked) before the first write: a failing call writes nothing.

local MAX_STRING = 393216 -- bytes an id string may reach (MAX_MARK_STRING * 12 / 8)
local gen = tonumber(ARGV[2])
local has_old = ARGV[3] == 'o'
local packed = ARGV[4]
local size = has_old and 23 or 13
local n = #packed / size
local byte, sub, find = string.byte, string.sub, string.find

local function u16(at)
  local a, b = byte(packed, at, at + 1)
  return a * 256 + b
end

local function live(g)
  local d = (g - gen) % 256
  return d <= 1 or d >= 254
end

local strings = {}
local adding = {}
local function read_string(index)
  if strings[index] == nil then
    local text = redis.pcall('GET', KEYS[index])
    if type(text) == 'table' and text.err then
      return redis.error_reply('WRONGTYPE ' .. KEYS[index] .. ' is not a string of ids: ' .. text.err)
    end
    strings[index] = text or ''
  end
  return nil
end
for i = 0, n - 1 do
  local at = i * size + 1
  local b = u16(at + 11)
  local err = read_string(b)
  if err then return err end
  adding[b] = (adding[b] or 0) + 1
  if has_old then
    local base = u16(at + 21)
    for g = base, base + 3 do
      err = read_string(g)
      if err then return err end
    end
  end
end
local head = {}
for index, count in pairs(adding) do
  local text = strings[index]
  local from = 1
  while from <= #text and not live(byte(text, from)) do
    from = from + 12
  end
  head[index] = from
  if #text - from + 1 + 12 * count > MAX_STRING then
    return redis.error_reply('id string ' .. KEYS[index] .. ' is full (' .. #text .. ' bytes): raise BUCKETS_TOTAL')
  end
end

local function owner_in(text, mark, offset, width, check)
  local from = offset + 1
  while true do
    local at = find(text, mark, from, true)
    if not at then return nil end
    local start = at - offset
    if (start - 1) % width == 0 and (not check or live(byte(text, start))) then
      return sub(text, at + #mark, at + #mark + 3)
    end
    from = at + 1
  end
end

local gen_byte = string.char(gen)
local added = {}
local grown = {}
local flags = {}
for i = 0, n - 1 do
  local at = i * size + 1
  local mark, entity, b = sub(packed, at, at + 6), sub(packed, at + 7, at + 10), u16(at + 11)
  local owner = added[b] and added[b][mark] or owner_in(strings[b], mark, 1, 12, true)
  if owner == nil and has_old then
    local old, base = sub(packed, at + 13, at + 20), u16(at + 21)
    for g = base, base + 3 do
      owner = owner or owner_in(strings[g], old, 0, 12, false)
    end
  end
  if owner == nil then
    if added[b] == nil then added[b] = {} end
    added[b][mark] = entity
    local list = grown[b]
    if list == nil then
      list = {}
      grown[b] = list
    end
    list[#list + 1] = gen_byte .. mark .. entity
    flags[i + 1] = '1'
  elseif owner == entity then
    flags[i + 1] = '1'
  else
    flags[i + 1] = '0'
  end
end
for index, list in pairs(grown) do
  redis.call('SET', KEYS[index], sub(strings[index], head[index]) .. table.concat(list), 'EX', ARGV[1])
end
return table.concat(flags)
