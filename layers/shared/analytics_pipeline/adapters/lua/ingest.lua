-- ingest.lua: check a budget, then each event's cap, then dedupe and count the events of ONE shard,
-- in one atomic step.
--
-- Every key is declared, and all of them carry the shard's hash tag (one cluster slot), except
-- KEYS[2] and the v1 marks, which are only passed on one primary (no slots there).
--
-- KEYS[1]   the shard's dirty zset (member: domain:type:id:day, score: ms when first marked dirty)
-- KEYS[2]   rate-limit counter of the caller for the current window; KEYS[1] again when ARGV[2] = 0
-- KEYS[3..] named by index from ARGV: the caller's cap strings, the mark strings (one per bucket,
--           every generation's marks in it), the counter hashes (<shard root>:c:<dirty member>),
--           and while an earlier format expires, its marks (v1: <p>:v1:e:<event_id>; the unkeyed
--           strings d:<gen>:<bucket>, four consecutive keys per bucket: gen, gen+1, gen-1, gen-2)
-- ARGV[1]   now, in ms
-- ARGV[2]   budget: events allowed in the window (0 = no budget check: a cluster reserves the
--           budget in budget.lua first; spool replay)
-- ARGV[3]   ttl of the rate-limit key, in s
-- ARGV[4]   seconds until the window ends (the Retry-After when refused)
-- ARGV[5]   ttl of a mark string written now, in s (until generation gen+2 ends)
-- ARGV[6]   the current generation mod 256
-- ARGV[7]   caps, 6 bytes per action code 1..5 (view, download, favorite, watchlist, rating): the
--           cap (2 bytes, 0 = none), the KEYS index of the caller's cap string for its window (1 byte),
--           the hash's ttl in s (3 bytes); empty: no caps (a trusted backend, a spool replay)
-- ARGV[8]   what each event's record carries besides its fixed part: letters of "cplo" (below)
-- ARGV[9]   length of "<shard root>:c:", the prefix of every counter hash's name
-- ARGV[10]  the events, packed end to end, one record each (big-endian integers):
--             7 bytes  the id's mark (its keyed digest)
--             2 bytes  KEYS index of its bucket's mark string
--             2 bytes  KEYS index of its counter hash
--             1 byte   action code * 8 + value (the rating; 1 otherwise)
--           c 4 bytes  its entity's CRC-32 (and the action code: its cap record)
--           p 9 bytes  its mark and mark string's KEYS index under the previous dedupe key
--           l 2 bytes  KEYS index of its v1 mark
--           o 10 bytes its unkeyed 8-byte mark and the KEYS index of its bucket's first d: string
--
-- Returns {0, retry_after} when the budget cannot take all the events (nothing is written),
-- otherwise {1, flags}: one character per event, "1" counted, "0" a duplicate, "2" over its cap
-- (neither counted nor marked).
--
-- A mark string holds 8-byte records end to end: the generation (mod 256), then the 7-byte mark. A
-- mark is found at an offset that is a multiple of 8 (an unaligned match straddles two records),
-- in a record of generation gen-2 .. gen+1. A string that grew is written back once, whole, by SET
-- (its allocation fits it, APPEND would leave room to grow), without the stale records at its head.
--
-- Invariant: an event is marked seen if and only if its increments and its dirty mark are written.
-- Redis does not roll back a script that fails half-way, so every check that could fail a write
-- (a key of the wrong type, a mark string at its bound) runs before the first write, except one:
-- a counter hash's type is not read ahead (a TYPE per hash was a fifth of the script's commands).
-- Its HINCRBY is called under pcall, before any mark or cap is written; one that fails (a key of
-- the wrong type, a field that is no integer) has changed nothing, and this call's increments,
-- dirty marks and budget are taken back, newest first, before the error returns. Only the first
-- write of a script can meet maxmemory (Redis checks no later one), so the undo cannot be refused.
--
-- A counter hash and its dirty member live and go together: this script writes the member with
-- the hash's first field, and a claim (claim.lua) deletes the hash and removes the member in one
-- step. So when an increment finds its field already there (HINCRBY answers more than it added),
-- the member is there too and its ZADD is not sent (a fifth of an event's commands).

local MAX_STRING = 262144 -- bytes a mark string may reach (redis_keys.MAX_MARK_STRING)
local COUNTER = {'views', 'downloads', 'favorites', 'watchlists'}
local CODE_CHAR = {'\1', '\2', '\3', '\4', '\5'}

local budget = tonumber(ARGV[2])
local gen = tonumber(ARGV[6])
local options = ARGV[8]
local root_len = tonumber(ARGV[9])
local packed = ARGV[10]
local has_cap = string.find(options, 'c', 1, true) ~= nil
local has_prev = string.find(options, 'p', 1, true) ~= nil
local has_v1 = string.find(options, 'l', 1, true) ~= nil
local has_old = string.find(options, 'o', 1, true) ~= nil
local size = 12 + (has_cap and 4 or 0) + (has_prev and 9 or 0) + (has_v1 and 2 or 0) + (has_old and 10 or 0)
local n = #packed / size
local byte, sub, find = string.byte, string.sub, string.find

local function u16(at)
  local a, b = byte(packed, at, at + 1)
  return a * 256 + b
end

local function expect(key, wanted)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= wanted then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected ' .. wanted)
  end
  return t
end

-- the caps: action code -> {cap, KEYS index, ttl}
local caps = {}
local spec = ARGV[7]
for code = 1, #spec / 6 do
  local at = (code - 1) * 6 + 1
  local a, b, k, t1, t2, t3 = byte(spec, at, at + 5)
  if a * 256 + b > 0 then
    caps[code] = {a * 256 + b, k, (t1 * 256 + t2) * 256 + t3}
  end
end

-- generation byte of a record -> whether a lookup made now accepts it
local function live(g)
  local d = (g - gen) % 256
  return d <= 1 or d >= 254
end

-- every check before the first write; the strings are read whole (a GET is their type check too)
local err = expect(KEYS[1], 'zset')
if type(err) == 'table' then return err end
if budget > 0 then
  err = expect(KEYS[2], 'string')
  if type(err) == 'table' then return err end
end
-- a source's caps in a window: a string of 5-byte records (CRC-32, action code), one per counted
-- event (the earlier format's hash, record -> count, is read as records)
local cap_of, ceiling = {}, 0 -- KEYS index -> {text, added, added per record, type, ttl}
for _, c in pairs(caps) do ceiling = math.max(ceiling, c[1]) end
for _, c in pairs(caps) do
  local key = KEYS[c[2]]
  if not cap_of[c[2]] then
    local t, text = redis.call('TYPE', key)['ok'], ''
    if t == 'string' then text = redis.call('GET', key) end
    if t == 'hash' then
      local flat, parts = redis.call('HGETALL', key), {}
      for j = 1, #flat, 2 do
        if #flat[j] ~= 5 or not find(flat[j + 1], '^%d+$') then t = 'not counts' break end
        parts[#parts + 1] = string.rep(flat[j], math.min(tonumber(flat[j + 1]), ceiling))
      end
      text = table.concat(parts)
    end
    if not (t == 'none' or t == 'string' or t == 'hash') or #text % 5 ~= 0 then
      return redis.error_reply('cap key ' .. key .. ' (' .. t .. ') holds no records')
    end
    cap_of[c[2]] = {text, {}, {}, t, c[3]}
  end
  c[4] = cap_of[c[2]]
end
-- `field`'s records in `text` (5-byte aligned), up to `limit`
local function cap_count(text, field, limit)
  local k, from = 0, 1
  while k < limit do
    local at = find(text, field, from, true)
    if not at then break end
    if (at - 1) % 5 == 0 then k, from = k + 1, at + 5 else from = at + 1 end
  end
  return k
end

local strings = {}
local adding = {}
local checked = {}
local function read_string(index, what)
  if strings[index] == nil then
    local text = redis.pcall('GET', KEYS[index])
    if type(text) == 'table' and text.err then
      return redis.error_reply('WRONGTYPE ' .. KEYS[index] .. ' is not a string of ' .. what .. ': ' .. text.err)
    end
    strings[index] = text or ''
  end
  return nil
end

-- each record read once: its mark, mark string, counter hash and action code
local marks, ms, cs, actions = {}, {}, {}, {}
for i = 1, n do
  local at = (i - 1) * size + 1
  local m1, m2, c1, c2, action = byte(packed, at + 7, at + 11)
  local m, c = m1 * 256 + m2, c1 * 256 + c2
  marks[i], ms[i], cs[i], actions[i] = sub(packed, at, at + 6), m, c, action
  err = read_string(m, 'marks')
  if err then return err end
  adding[m] = (adding[m] or 0) + 1
  local extra = at + 12 + (has_cap and 4 or 0)
  if has_prev then
    err = read_string(u16(extra + 7), 'marks')
    if err then return err end
    extra = extra + 9
  end
  if has_v1 then
    local l = u16(extra)
    if not checked[l] then
      checked[l] = true
      err = expect(KEYS[l], 'string')
      if type(err) == 'table' then return err end
    end
    extra = extra + 2
  end
  if has_old then
    local base = u16(extra + 8)
    for g = base, base + 3 do
      err = read_string(g, 'marks')
      if err then return err end
    end
  end
end

-- the stale records at a string's head go when it is written back; its bound is checked now
local head = {}
for index, count in pairs(adding) do
  local text = strings[index]
  local from = 1
  while from <= #text and not live(byte(text, from)) do
    from = from + 8
  end
  head[index] = from
  if #text - from + 1 + 8 * count > MAX_STRING then
    return redis.error_reply('mark string ' .. KEYS[index] .. ' is full (' .. #text .. ' bytes): raise BUCKETS_TOTAL')
  end
end

local budget_made = false -- the rate-limit key was made by this call
if budget > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used == nil then
    return redis.error_reply('rate-limit key ' .. KEYS[2] .. ' is not a number')
  end
  if used + n > budget then
    return {0, tonumber(ARGV[4])}
  end
  if redis.call('INCRBY', KEYS[2], n) == n then
    budget_made = true
    redis.call('EXPIRE', KEYS[2], ARGV[3])
  end
end

local function holds(index, mark)
  local text = strings[index]
  local from = 2
  while true do
    local at = find(text, mark, from, true)
    if not at then return false end
    if (at - 2) % 8 == 0 and live(byte(text, at - 1)) then return true end
    from = at + 1
  end
end

local function holds_old(base, mark)
  for g = base, base + 3 do
    local text = strings[g]
    local from = 1
    while true do
      local at = find(text, mark, from, true)
      if not at then break end
      if (at - 1) % 8 == 0 then return true end
      from = at + 1
    end
  end
  return false
end

-- this call's writes to counters and the dirty zset, in order: {key, field or false, amount, reply}
local done = {}
local fresh -- the last increment made its field: the hash may be new, and its dirty member too
local function increment(key, field, amount)
  local r = redis.pcall('HINCRBY', key, field, amount)
  if type(r) == 'table' then return r end
  done[#done + 1] = {key, field, amount, r}
  fresh = r == amount
  return nil
end
-- take back every write this call made, newest first, and fail with the counter hash's error (an
-- OOM refusal, met only by the first write, as it is: there is nothing to take back)
local function undo(key, failure)
  local reason = failure.err or '?'
  if find(reason, '^OOM') then return failure end
  for j = #done, 1, -1 do
    local w = done[j]
    if not w[2] then
      redis.call('ZREM', KEYS[1], w[1])
    elseif w[4] == w[3] then
      redis.call('HDEL', w[1], w[2]) -- a field this call made (ingest only adds; a claim takes the hash)
    else
      redis.call('HINCRBY', w[1], w[2], -w[3])
    end
  end
  if budget_made then redis.call('DEL', KEYS[2])
  elseif budget > 0 then redis.call('DECRBY', KEYS[2], n) end
  return redis.error_reply('WRONGTYPE ' .. key .. ' is not a hash of counters: ' .. reason)
end

local now = ARGV[1]
local gen_byte = string.char(gen)
local new = {} -- per grown mark string, the records this call adds
local flags = {}
for i = 1, n do
  local mark, m, c, action = marks[i], ms[i], cs[i], actions[i]
  local code = math.floor(action / 8)
  local flag = '1'
  local cap = caps[code]
  local field, state, used
  if cap then
    local at = (i - 1) * size + 13
    field, state = sub(packed, at, at + 3) .. CODE_CHAR[code], cap[4]
    used = state[3][field] or 0
    if state[1] ~= '' then used = used + cap_count(state[1], field, cap[1] - used) end
    if used >= cap[1] then flag = '2' end
  end
  if flag == '1' then
    local record = gen_byte .. mark
    local added = new[m]
    local seen = holds(m, mark)
    if not seen and added then
      for at = 1, #added, 8 do
        if sub(added, at, at + 7) == record then seen = true break end
      end
    end
    if not seen and (has_prev or has_v1 or has_old) then
      local extra = (i - 1) * size + 13 + (has_cap and 4 or 0)
      if has_prev then
        seen = holds(u16(extra + 7), sub(packed, extra, extra + 6))
        extra = extra + 9
      end
      if has_v1 then
        seen = seen or redis.call('EXISTS', KEYS[u16(extra)]) == 1
        extra = extra + 2
      end
      if has_old then
        seen = seen or holds_old(u16(extra + 8), sub(packed, extra, extra + 7))
      end
    end
    if seen then
      flag = '0'
    else
      new[m] = added and (added .. record) or record
      local key = KEYS[c]
      local failure
      if code == 5 then
        failure = increment(key, 'ratings_count', 1) or increment(key, 'ratings_sum', action % 8)
      else
        failure = increment(key, COUNTER[code], 1)
      end
      if failure then return undo(key, failure) end
      if fresh then
        local dirty = sub(key, root_len + 1)
        if redis.call('ZADD', KEYS[1], 'NX', now, dirty) == 1 then done[#done + 1] = {dirty, false} end
      end
      if cap then
        local added = state[2]
        added[#added + 1] = field
        state[3][field] = (state[3][field] or 0) + 1
      end
    end
  end
  flags[i] = flag
end
-- one SET per grown string, sized exactly (APPEND would leave up to as much room again unused)
for index, records in pairs(new) do
  local text, from = strings[index], head[index]
  if from > 1 then text = sub(text, from) end
  redis.call('SET', KEYS[index], text .. records, 'EX', ARGV[5])
end
-- one SET per cap string that grew; a new one (or a hash's) lives until its window ends
for index, state in pairs(cap_of) do
  if #state[2] > 0 then
    local text = state[1] .. table.concat(state[2])
    if state[4] == 'string' then redis.call('SET', KEYS[index], text, 'KEEPTTL')
    else redis.call('SET', KEYS[index], text, 'EX', state[5]) end
  end
end
return {1, table.concat(flags)}
