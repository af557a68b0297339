#!lua flags=allow-oom
-- finish.lua: forget a batch that reached every store, and release its entities.
--
-- All keys are the batch's shard's (one hash tag, one cluster slot).
-- KEYS[1]  in-flight zset
-- KEYS[2]  owner hash
-- KEYS[3]  the batch hash (<root>:b:<seq>)
-- KEYS[4]  time of the shard's last finished batch, in ms (string)
-- KEYS[5]  recently flushed entities (zset, score: ms), sampled by the watchdog's checks
-- ARGV[1]  sequence number
-- ARGV[2]  now, in ms
-- ARGV[3]  how many recently flushed entities to keep
--
-- Returns 1 when the batch was finished now, 0 when it was finished before (finishing is idempotent).
--
-- Runs at the memory limit (shebang flags, Redis 7+): with `maxmemory-policy noeviction` a full node
-- refuses ingest.lua, and only the claim and finish give memory back (the counters, then the batch).
-- Without allow-oom Redis refuses the first write that can grow memory, so a full node would never
-- drain. The first line must stay the shebang.
--
-- Consequence: the only write that can grow memory is one member of the recent zset per entity,
-- trimmed to ARGV[3] members in the same call; the batch hash it deletes is larger.

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
-- the batch's entities, then one call per kind of write (not three commands an entity)
--#include members.lua (CHUNK, each_chunk, hmget, entity_of)
local seen, entities = {}, {}
for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
  -- field: member|counter, neither holding a '|' but by hand (then the last one counts)
  local bar = string.find(field, '|', 1, true)
  local member
  if bar and not string.find(field, '|', bar + 1, true) then member = string.sub(field, 1, bar - 1)
  else member = string.match(field, '^(.*)|[^|]*$') end
  local entity = entity_of(member)
  if not seen[entity] then
    seen[entity] = true
    entities[#entities + 1] = entity
  end
end
local mine, recent = {}, {}
for j, owner in ipairs(hmget(KEYS[2], entities)) do
  if owner == ARGV[1] then mine[#mine + 1] = entities[j] end -- a later batch may own it already
  recent[#recent + 1] = ARGV[2]
  recent[#recent + 1] = entities[j]
end
each_chunk('HDEL', KEYS[2], mine)
each_chunk('ZADD', KEYS[5], recent)
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[4], ARGV[2])
local keep = tonumber(ARGV[3])
local size = redis.call('ZCARD', KEYS[5])
if size > keep then
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, size - keep - 1)
end
return 1
