-- Registers a viewer (needs events.lua).
-- KEYS: 1 meta, 2 regs, 3 outbox, 4 outbox-state (absent: no webhooks).
-- ARGV: 1 viewer, 2 its fields (a JSON object).
-- Returns 1 (added), 0 (known) or nil (no campaign).
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local added = redis.call('SADD', KEYS[2], ARGV[1])
ev_open(KEYS[1], KEYS[3], KEYS[4])
if added == 1 then ev_emit('registration.created', '{"viewer":' .. cjson.encode(ARGV[1]) .. ',"fields":' .. ARGV[2] .. '}') end
return added
