-- Registers a viewer with its sign-up fields; the first registration of a viewer wins
-- (needs events.lua: a new registration queues `registration.created`).
-- KEYS: 1 meta, 2 regs, 3 reg-order, 4 reg-data, 5 events, 6 event-regs, 7 outbox-state
--       (absent: no webhook receivers).
-- ARGV: 1 viewer, 2 fields (one JSON object string), 3 registered_at (unix ms),
--       4 --webhook-queue-max.
-- Returns 1 (added), 0 (known) or nil (no campaign).
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
-- The registration's number: regs never shrinks (an erasure swaps the viewer for a
-- placeholder), so its size after adding is unique and increasing.
redis.call('ZADD', KEYS[3], redis.call('SCARD', KEYS[2]), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3] .. '|' .. ARGV[2])
ev_open(KEYS[1], KEYS[5], KEYS[6], KEYS[7], ARGV[4])
ev_emit('registration.created', '{"viewer":' .. cjson.encode(ARGV[1]) .. ',"fields":' .. ARGV[2] .. '}', ARGV[1])
return 1
