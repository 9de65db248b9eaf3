-- Registers a viewer with its sign-up fields; the first registration of a viewer wins
-- (needs events.lua: a new registration queues `registration.created`).
-- KEYS: 1 meta, 2 regs, 3 reg-order, 4 reg-data, 5 udelta (see apply.lua), 6 events, 7 event-regs,
--       8 outbox-state (6-8 absent: no webhook receivers).
-- ARGV: 1 viewer, 2 fields (one JSON object string), 3 registered_at (unix ms),
--       4 --webhook-queue-max, 5 the unit's code as shown (absent: the campaign has no
--       org), 6.. the unit's path (codes from the top; the last one counts, with its ancestors).
-- Returns 1 (added), 0 (known) or nil (no campaign).
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
-- The registration's number: regs never shrinks (an erasure swaps the viewer for a
-- placeholder), so its size after adding is unique and increasing.
redis.call('ZADD', KEYS[3], redis.call('SCARD', KEYS[2]), ARGV[1])
-- `at|fields`, or `at|unit|fields` with a unit (fields always begin with `{`).
local unit = ''
if ARGV[5] then
  unit = ',"unit":' .. cjson.encode(ARGV[5])
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[3] .. '|' .. ARGV[5] .. '|' .. ARGV[2])
  -- The unit delta (see apply.lua): one unit (its path's last code), one registration.
  if #ARGV >= 6 then
    redis.call('RPUSH', KEYS[5], '{"p":[' .. cjson.encode(ARGV[#ARGV]) .. '],"c":[[1,"r",1]]}')
  end
else
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[3] .. '|' .. ARGV[2])
end
ev_open(KEYS[1], KEYS[6], KEYS[7], KEYS[8], ARGV[4])
ev_emit('registration.created', '{"viewer":' .. cjson.encode(ARGV[1]) .. ',"fields":' .. ARGV[2] .. unit .. '}', ARGV[1])
return 1
