-- Leases the head of a campaign's webhook queue (see store/outbox.rs).
-- KEYS: 1 outbox, 2 outbox-state.
-- ARGV: 1 node, 2 lease ms.
-- Returns six values (unused ones nil): {0} (empty), {1, due ms} (leased elsewhere or
-- waiting for its next try), or {2, body, attempts, first attempt ms, delivered URLs JSON,
-- lease end ms}.
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return {0, false, false, false, false, false} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = string.match(head, '^{"id":"([^"]*)"')
local s = redis.call('HMGET', KEYS[2], 'id', 'until', 'attempts', 'first', 'next', 'done')
if s[1] ~= id then s = {id, '0', '0', string.format('%d', now), '0', '[]'} end
local due = math.max(tonumber(s[2]), tonumber(s[5]))
if due > now then return {1, string.format('%d', due), false, false, false, false} end
local attempts = string.format('%d', tonumber(s[3]) + 1)
local lease_end = string.format('%d', now + tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], 'id', id, 'node', ARGV[1], 'until', lease_end, 'attempts', attempts,
  'first', s[4], 'next', s[5], 'done', s[6])
return {2, head, attempts, s[4], s[6], lease_end}
