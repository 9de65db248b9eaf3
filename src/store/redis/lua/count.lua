-- A campaign's webhook backlog: events queued, and those the bound dropped since the last
-- count (taken, so each is counted once in some node's metric).
-- KEYS: 1 events, 2 outbox-state, 3 outbox (v1.1).
-- Returns {queued, queued by v1.1 nodes, dropped}.
local d = tonumber(redis.call('HGET', KEYS[2], 'dropped') or '0')
if d > 0 then redis.call('HINCRBY', KEYS[2], 'dropped', -d) end
return {redis.call('ZCARD', KEYS[1]), redis.call('LLEN', KEYS[3]), d}
