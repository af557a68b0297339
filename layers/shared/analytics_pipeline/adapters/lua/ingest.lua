-- ingest.lua: check a budget, then dedupe and count a list of events of ONE shard, in one atomic step.
--
-- Every key is declared, and all of them carry the shard's hash tag (one cluster slot), except
-- KEYS[2] and the v1 marks, which are only passed on one primary (no slots there).
--
-- KEYS[1]   the shard's dirty zset (member: domain:type:id:day, score: ms when first marked dirty)
-- KEYS[2]   rate-limit counter of the caller for the current window; KEYS[1] again when ARGV[2] = 0
-- KEYS[3..] the dedupe mark strings (per bucket: generation gen, gen+1, gen-1, gen-2, in that
--           order; gen+1 catches a retry that a container whose clock is just behind receives at a
--           generation boundary), the counter hashes, and on one primary while v1 drains the v1
--           marks (<p>:v1:e:<event_id>)
-- ARGV[1]   now, in ms
-- ARGV[2]   budget: events allowed in the window (0 = no budget check: a cluster reserves the
--           budget in budget.lua first; spool replay)
-- ARGV[3]   ttl of the rate-limit key, in s
-- ARGV[4]   seconds until the window ends (the Retry-After when refused)
-- ARGV[5]   ttl of a mark string of the current generation, in s (until generation gen+2 ends)
-- ARGV[6]   number of events n
-- ARGV[7..] per event, six arguments: its 8-byte mark, the KEYS index of its bucket's current
--           generation, the KEYS index of its counter hash, its dirty member, its increments as
--           "field=n[,field=n]", the KEYS index of its v1 mark (0: none)
--
-- Returns {0, retry_after} when the budget cannot take all n events (nothing is written), otherwise
-- {1, c1, ..., cn} where ci = 1 if event i was counted and 0 if it was a duplicate.
--
-- A mark string holds 8-byte marks end to end; a mark is present when it occurs at an offset that
-- is a multiple of 8 (an unaligned match straddles two marks and does not count). A string that
-- grew is written back once, whole, by SET: its allocation fits it (APPEND leaves room to grow).
--
-- Invariant: an event is marked seen if and only if its increments and its dirty mark are written.
-- Redis does not roll back a script that fails half-way, so every check that could fail a write
-- (a key of the wrong type) runs before the first write: a failing script writes nothing.

local budget = tonumber(ARGV[2])
local n = tonumber(ARGV[6])

local function expect(key, wanted)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= wanted then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected ' .. wanted)
  end
  return nil
end

local err = expect(KEYS[1], 'zset')
if err then return err end
if budget > 0 then
  err = expect(KEYS[2], 'string')
  if err then return err end
end
-- the mark strings are read here, whole: a GET is their type check too
local strings = {}
local checked = {}
for i = 1, n do
  local a = 7 + 6 * (i - 1)
  local b, c, l = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 5])
  if not checked[b] then
    checked[b] = true
    for g = b, b + 3 do
      local text = redis.pcall('GET', KEYS[g])
      if type(text) == 'table' and text.err then
        return redis.error_reply('WRONGTYPE ' .. KEYS[g] .. ' is not a string of marks: ' .. text.err)
      end
      strings[g] = text or ''
    end
  end
  if not checked[c] then
    checked[c] = true
    err = expect(KEYS[c], 'hash')
    if err then return err end
  end
  if l > 0 and not checked[l] then
    checked[l] = true
    err = expect(KEYS[l], 'string')
    if err then return err end
  end
end

if budget > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used == nil then
    return redis.error_reply('rate-limit key ' .. KEYS[2] .. ' is not a number')
  end
  if used + n > budget then
    return {0, tonumber(ARGV[4])}
  end
  if redis.call('INCRBY', KEYS[2], n) == n then
    redis.call('EXPIRE', KEYS[2], ARGV[3])
  end
end

local function holds(index, mark)
  local text = strings[index]
  local from = 1
  while true do
    local at = string.find(text, mark, from, true)
    if not at then return false end
    if (at - 1) % 8 == 0 then return true end
    from = at + 1
  end
end

local now = ARGV[1]
local mark_ttl = ARGV[5]
local result = {1}
local grown = {}
local was_empty = {}
for index, text in pairs(strings) do
  was_empty[index] = text == ''
end
for i = 1, n do
  local a = 7 + 6 * (i - 1)
  local mark, b, c, l = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 5])
  local seen = holds(b, mark) or holds(b + 1, mark) or holds(b + 2, mark) or holds(b + 3, mark)
  if not seen and l > 0 then
    seen = redis.call('EXISTS', KEYS[l]) == 1
  end
  if seen then
    result[i + 1] = 0
  else
    strings[b] = strings[b] .. mark
    grown[b] = true
    for field, amount in string.gmatch(ARGV[a + 4], '([%w_]+)=(%d+)') do
      redis.call('HINCRBY', KEYS[c], field, amount)
    end
    redis.call('ZADD', KEYS[1], 'NX', now, ARGV[a + 3])
    result[i + 1] = 1
  end
end
-- one SET per grown string, sized exactly (APPEND would leave up to as much room again unused)
for index in pairs(grown) do
  if was_empty[index] then
    redis.call('SET', KEYS[index], strings[index], 'EX', mark_ttl)
  else
    redis.call('SET', KEYS[index], strings[index], 'KEEPTTL')
  end
end
return result
