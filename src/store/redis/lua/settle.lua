-- Settles a node's lease of a campaign's head event (see store/outbox.rs). A settle for an
-- event that is no longer the head (delivered meanwhile by a node that found the lease
-- expired) changes nothing; a retry from a node whose lease was taken over neither.
-- KEYS: 1 outbox, 2 outbox-state.
-- ARGV: 1 event id, 2 node, 3 'done' | 'retry', 4 retry delay ms, 5 delivered URLs JSON.
-- Returns when to look at the queue again: -1 empty, else unix ms (0: now).
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return -1 end
if string.match(head, '^{"id":"([^"]*)"') ~= ARGV[1] then return 0 end
if ARGV[3] == 'retry' then
  local s = redis.call('HMGET', KEYS[2], 'id', 'node', 'until')
  if s[1] ~= ARGV[1] or s[2] ~= ARGV[2] then return tonumber(s[3] or '0') end
  local t = redis.call('TIME')
  local next = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[4])
  redis.call('HSET', KEYS[2], 'node', '', 'until', '0', 'next', string.format('%d', next), 'done', ARGV[5])
  return next
end
redis.call('LPOP', KEYS[1])
redis.call('HDEL', KEYS[2], 'id', 'node', 'until', 'attempts', 'first', 'next', 'done')
if redis.call('LLEN', KEYS[1]) == 0 then return -1 end
return 0
