#!lua flags=allow-oom,allow-cross-slot-keys
-- claim.lua: move dirty entity-day counters into a new batch, atomically.
--
-- KEYS[1]  dirty zset (member: domain:type:id:day, score: ms first marked dirty)
-- KEYS[2]  last batch sequence number (string)
-- KEYS[3]  in-flight zset (member: sequence number, score: ms claimed)
-- KEYS[4]  owner hash (field: domain:type:id, value: sequence number of its batch in flight)
-- ARGV[1]  now, in ms
-- ARGV[2]  how many entities to claim at most
-- ARGV[3]  key root ("<prefix>:v1"); the batch hash is <root>:b:<seq> and the counter hashes
--          <root>:c:<member> (derived here: the sequence number is only known inside the script)
-- ARGV[4]  sequence floor: the caller's clock in µs. A failover that loses the last sequence
--          number must not hand out an old one again, or documents that remember it would refuse
--          the new batch.
-- ARGV[5]  how many dirty members to look at at most
--
-- Returns {} when nothing could be claimed, else {seq, claimed_at_ms, member, field, value, ...}.
--
-- Invariants: every increment is in exactly one place: a counter hash or a batch hash. An entity
-- owned by a batch in flight is not claimed again until that batch is finished, so batches of one
-- entity are applied in sequence order.
--
-- Runs at the memory limit (shebang flags, Redis 7+): with `maxmemory-policy noeviction` a full node
-- refuses ingest.lua, and only the claim and finish give memory back (the counters, then the batch).
-- Without allow-oom Redis refuses the first write that can grow memory, so a full node would never
-- drain. allow-cross-slot-keys keeps what a script without a shebang may do: it derives key names
-- from the root rather than declaring them all. The first line must stay the shebang; the embedded
-- emulation, which cannot parse it, gets the script without it (load_lua).
--
-- Consequence: a claim at the limit writes each batch field (and an owner entry, an in-flight entry,
-- the sequence number) before it deletes the counter hash it copies, so the keys can pass maxmemory
-- by at most one batch hash and its owner entries (about 15 KB for 200 one-day entities), and end
-- smaller than they started: the batch holds the numbers of the counter hashes it replaces.
-- docs/redis.md gives the measurement.

local root = ARGV[3]
local max_entities = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = last + 1
local floor = tonumber(ARGV[4])
if floor > seq then seq = floor end
local seq_s = string.format('%.0f', seq)
local batch_key = root .. ':b:' .. seq_s

local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)
local taken = {}
local entities = 0
local out = {}
for _, member in ipairs(members) do
  local entity = string.match(member, '^(.*):[^:]*$')
  local mine = taken[entity]
  -- a full batch takes only more days of the entities it holds: skip the rest before any call
  if mine or entities < max_entities then
    if mine or not redis.call('HGET', KEYS[4], entity) then
      local counter = root .. ':c:' .. member
      local values = redis.call('HGETALL', counter)
      if #values == 0 then
        redis.call('ZREM', KEYS[1], member)  -- nothing to flush (cannot happen through ingest.lua)
      else
        if not mine then
          taken[entity] = true
          entities = entities + 1
          redis.call('HSET', KEYS[4], entity, seq_s)
        end
        for i = 1, #values, 2 do
          redis.call('HSET', batch_key, member .. '|' .. values[i], values[i + 1])
          out[#out + 1] = member
          out[#out + 1] = values[i]
          out[#out + 1] = values[i + 1]
        end
        redis.call('DEL', counter)
        redis.call('ZREM', KEYS[1], member)
      end
    end
  end
end

if entities == 0 then
  return {}
end
redis.call('SET', KEYS[2], seq_s)
redis.call('ZADD', KEYS[3], ARGV[1], seq_s)
local result = {seq_s, ARGV[1]}
for i = 1, #out do result[#result + 1] = out[i] end
return result
