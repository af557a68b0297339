#!lua flags=allow-oom
-- touch.lua: one write in a shard's slot, so that a WAIT sent after it on the same connection
-- confirms every write its primary took before it: a claim made by another connection (a run that
-- died, read back by the watchdog) included, since a primary has one replication stream. WAIT on a
-- connection that never wrote would answer at once, confirming nothing.
--
-- KEYS[1]  the shard's ack key (a string, kept 60 s); allow-oom: a full node must still confirm the
--          batches that drain it
redis.call('SET', KEYS[1], '1', 'PX', 60000)
return 1
