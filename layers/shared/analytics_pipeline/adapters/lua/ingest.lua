-- ingest.lua: check a budget, then dedupe and count a list of events, all in one atomic step.
--
-- KEYS[1]   dirty zset (member: domain:type:id:day, score: ms when first marked dirty)
-- KEYS[2]   rate-limit counter of the caller for the current window
-- ARGV[1]   now, in ms
-- ARGV[2]   budget: events allowed in the window (0 = no budget check, e.g. spool replay)
-- ARGV[3]   ttl of the rate-limit key, in s
-- ARGV[4]   seconds until the window ends (the Retry-After when refused)
-- ARGV[5]   dedupe ttl, in s
-- ARGV[6]   key root ("<prefix>:v1"); per event the script derives <root>:e:<event_id> (dedupe mark)
--           and <root>:c:<member> (counter hash). Keys derived here instead of passed in KEYS keep a
--           100-event call to a third of the arguments the client must encode; it ties the script
--           to one primary, as the claim does (docs/scaling.md says what sharding would change).
-- ARGV[7..] per event, three arguments: event_id, dirty member, increments as "field=n[,field=n]"
--
-- Returns {0, retry_after} when the budget cannot take all n events (nothing is written), otherwise
-- {1, c1, ..., cn} where ci = 1 if event i was counted and 0 if it was a duplicate.
--
-- Invariant: an event is marked seen if and only if its increments and its dirty mark are written.
-- Redis does not roll back a script that fails half-way, so every check that could fail a write
-- (a key of the wrong type) runs before the first write: a failing script writes nothing.

local root = ARGV[6]
local n = (#ARGV - 6) / 3
local budget = tonumber(ARGV[2])

local function expect(key, wanted)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= wanted then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected ' .. wanted)
  end
  return nil
end

local marks, counters = {}, {}
local err = expect(KEYS[1], 'zset')
if err then return err end
if budget > 0 then
  err = expect(KEYS[2], 'string')
  if err then return err end
end
for i = 1, n do
  local a = 7 + 3 * (i - 1)
  marks[i] = root .. ':e:' .. ARGV[a]
  counters[i] = root .. ':c:' .. ARGV[a + 1]
  err = expect(marks[i], 'string') or expect(counters[i], 'hash')
  if err then return err end
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

local now = ARGV[1]
local dedupe_ttl = ARGV[5]
local result = {1}
for i = 1, n do
  local a = 7 + 3 * (i - 1)
  if redis.call('SET', marks[i], '1', 'NX', 'EX', dedupe_ttl) then
    for field, amount in string.gmatch(ARGV[a + 2], '([%w_]+)=(%d+)') do
      redis.call('HINCRBY', counters[i], field, amount)
    end
    redis.call('ZADD', KEYS[1], 'NX', now, ARGV[a + 1])
    result[i + 1] = 1
  else
    result[i + 1] = 0
  end
end
return result
