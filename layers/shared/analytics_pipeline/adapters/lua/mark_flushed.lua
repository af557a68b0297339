#!lua flags=allow-oom
-- mark_flushed.lua: record that a flush run completed (the lag's last_flush_age_s).
--
-- KEYS[1]  time of the last completed flush run, in ms (string)
-- ARGV[1]  now, in ms
--
-- Returns 1.
--
-- A script for its flags only (see claim.lua): Redis refuses a plain SET at the memory limit, so a
-- flush that drained a full node would report an error for a write that cannot grow memory: it
-- replaces a number with another.

redis.call('SET', KEYS[1], ARGV[1])
return 1
