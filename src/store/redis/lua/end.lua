-- Ends a live campaign and drops what only a live one needs; ending twice keeps the
-- first ended_at.
-- KEYS: 1 meta, 2 presence, 3 presence-exp, 4 epochs (v1), 5 sessions (v1), 6 sessions:0,
--       7 sessions:1, 8 applied:0, 9 applied:1, 10 applied (v1), 11 moved,
--       12 presence-sum, 13 presence-eff, 14 presence-nodes, 15 presence-due, 16 moved-n,
--       17 events, 18 event-regs, 19 outbox-state (absent: no webhook receivers; needs
--       events.lua).
-- ARGV: 1 at_ms, 2 --webhook-queue-max.
-- Returns {campaign JSON, state, ended_at}, or nil when unknown.
local m = redis.call('HMGET', KEYS[1], 'campaign', 'state', 'ended_at')
if not m[1] then return false end
ev_open(KEYS[1], KEYS[17], KEYS[18], KEYS[19], ARGV[2])
if m[2] == 'live' then
  redis.call('HSET', KEYS[1], 'state', 'ended', 'ended_at', ARGV[1])
  -- Each lease hash (presence.lua, layout 4) belongs to a node with an expiry in KEYS[3].
  for _, node in ipairs(redis.call('HKEYS', KEYS[3])) do redis.call('DEL', KEYS[2] .. ':' .. node) end
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11],
    KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[16])
  ev_emit('campaign.ended', 'null')
  return {m[1], 'ended', ARGV[1]}
end
return {m[1], m[2], m[3]}
