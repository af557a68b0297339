#!lua flags=allow-oom
-- claim.lua: move dirty entity-day counters of ONE shard into a new batch, atomically.
--
-- Every key is declared and carries the shard's hash tag (one cluster slot): a cluster checks the
-- declared keys before the script runs, so a slot that is migrating answers ASK or TRYAGAIN
-- instead of running a script whose keys are half on another node.
--
-- KEYS[1]   dirty zset (member: domain:type:id:day, score: ms first marked dirty)
-- KEYS[2]   last batch sequence number of the shard (string)
-- KEYS[3]   in-flight zset (member: sequence number, score: ms claimed)
-- KEYS[4]   owner hash (field: domain:type:id, value: sequence number of its batch in flight)
-- KEYS[5]   the batch hash <root>:b:<ARGV[3]>
-- KEYS[6]   when ARGV[4] = 1 (one primary while a v1 layout drains): the OTHER layout's owner hash
-- KEYS[7]   when ARGV[4] = 1: the other layout's last sequence number
-- KEYS[6 + 2 * ARGV[4]..] the counter hashes of the candidate members (<root>:c:<member>), oldest
--           first (candidates.lua picks them; another flush may have claimed some since: they are
--           skipped)
-- ARGV[1]   now, in ms
-- ARGV[2]   how many entities to claim at most
-- ARGV[3]   the sequence number proposed: the caller's clock in us, or one more than the last
--           number when a claim answered {-1, last}. A failover that loses the last sequence number
--           must not hand out an old one again, or documents that remember it would refuse the
--           new batch; the clock floor keeps numbers rising.
-- ARGV[4]   1 when the v1 and v2 layouts are linked (KEYS[6], KEYS[7]), else 0
-- ARGV[5]   the length of the counter hashes' prefix (<root>:c:): each member is its key's rest,
--           so the members are not sent a second time
--
-- Returns {-1, last} when ARGV[3] is not above the last sequence number (of either linked layout;
-- nothing written), {} when nothing could be claimed, else {seq, claimed_at_ms, claimed}: claimed is
-- one string, a line per entity-day, 'member field value field value ...' (three elements for the
-- client to parse, not one or two per entity-day); when a member holds a space or a newline (an
-- entity id never does: its formats allow none), {seq, claimed_at_ms, member, 'field value ...',
-- member, ...} instead.
--
-- Invariants: every increment is in exactly one place: a counter hash or a batch hash. An entity
-- owned by a batch in flight is not claimed again until that batch is finished, so batches of one
-- entity are applied in sequence order. While a v1 layout drains, both layouts' owner hashes and
-- sequence numbers count: an entity is never in flight in both, and a batch's number passes both.
--
-- Runs at the memory limit (shebang flags, Redis 7+): with `maxmemory-policy noeviction` a full node
-- refuses ingest.lua, and only the claim and finish give memory back (the counters, then the batch).
-- Without allow-oom Redis refuses the first write that can grow memory, so a full node would never
-- drain. The first line must stay the shebang.
--
-- Consequence: a claim at the limit writes the batch's fields (and its owner entries) before it
-- deletes the counter hashes they copy, then the in-flight entry and the sequence number, so the
-- keys can pass maxmemory by at most one batch hash and its owner entries (about 15 KB for 200
-- one-day entities), and end smaller than they started: the batch holds the numbers of the counter
-- hashes it replaces.
-- docs/redis.md gives the measurement.

local linked = tonumber(ARGV[4]) == 1
local first_counter = linked and 8 or 6
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if linked then
  local other = tonumber(redis.call('GET', KEYS[7]) or '0')
  if other > last then last = other end
end
local seq = tonumber(ARGV[3])
if seq <= last then
  return {-1, string.format('%.0f', last)}
end
local seq_s = string.format('%.0f', seq)
local max_entities = tonumber(ARGV[2])

-- every read first, then one variadic call per kind of write
--#include members.lua (CHUNK, each_chunk, hmget, entity_of)

local prefix = tonumber(ARGV[5])
local members, entities_of, names, busy = {}, {}, {}, {}
for i = first_counter, #KEYS do
  local member = string.sub(KEYS[i], prefix + 1)
  local entity = entity_of(member)
  members[i], entities_of[i] = member, entity
  if busy[entity] == nil then
    busy[entity] = false
    names[#names + 1] = entity
  end
end
if #names > 0 then
  local owned = hmget(KEYS[4], names)
  local other = linked and hmget(KEYS[6], names) or {}
  for j, entity in ipairs(names) do busy[entity] = (owned[j] or other[j]) and true or false end
end

local taken = {}
local entities = 0
local out = {}
local owners, fields, counters, gone = {}, {}, {}, {}
for i = first_counter, #KEYS do
  local counter, member, entity = KEYS[i], members[i], entities_of[i]
  local mine = taken[entity]
  -- a full batch takes only more days of the entities it holds: skip the rest before any call
  if mine or (entities < max_entities and not busy[entity]) then
    local values = redis.call('HGETALL', counter)
    gone[#gone + 1] = member -- claimed by another flush since the caller read it, or by this one
    if #values > 0 then
      if not mine then
        taken[entity] = true
        entities = entities + 1
        owners[#owners + 1] = entity
        owners[#owners + 1] = seq_s
      end
      for j = 1, #values, 2 do
        fields[#fields + 1] = member .. '|' .. values[j]
        fields[#fields + 1] = values[j + 1]
      end
      out[#out + 1] = member
      out[#out + 1] = table.concat(values, ' ')
      counters[#counters + 1] = counter
    end
  end
end
-- the batch and its owners are written before the counters they copy are deleted
each_chunk('HSET', KEYS[4], owners)
each_chunk('HSET', KEYS[5], fields)
each_chunk('DEL', false, counters)
each_chunk('ZREM', KEYS[1], gone)

if entities == 0 then
  return {}
end
redis.call('SET', KEYS[2], seq_s)
redis.call('ZADD', KEYS[3], ARGV[1], seq_s)
local lines, plain = {}, true
for i = 1, #out, 2 do
  if string.find(out[i], '[ \n]') then plain = false break end
  lines[#lines + 1] = out[i] .. ' ' .. out[i + 1]
end
if plain then return {seq_s, ARGV[1], table.concat(lines, '\n')} end
local result = {seq_s, ARGV[1]}
for i = 1, #out do result[#result + 1] = out[i] end
return result
