-- budget.lua: reserve n events of a caller's budget for the current window, or refuse them all.
--
-- KEYS[1]  rate-limit counter of the caller for the current window (its own slot)
-- ARGV[1]  n, the events of the request
-- ARGV[2]  budget: events allowed in the window
-- ARGV[3]  ttl of the rate-limit key, in s
-- ARGV[4]  seconds until the window ends (the Retry-After when refused)
--
-- Returns {1} when reserved, {0, retry_after} when refused (nothing written).
--
-- Used when a request's events span shards (a cluster): the budget is reserved before any shard
-- counts, and never given back. A request that fails after the reservation (a shard down, a crash)
-- was charged for events it may not have counted: the client's retry is charged again. The budget
-- errs towards refusing; a count is never affected.

local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used == nil then
  return redis.error_reply('rate-limit key ' .. KEYS[1] .. ' is not a number')
end
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then
  return {0, tonumber(ARGV[4])}
end
if redis.call('INCRBY', KEYS[1], n) == n then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {1}
