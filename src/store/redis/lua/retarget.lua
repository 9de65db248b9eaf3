-- The receivers changed (see store/outbox.rs; needs cursors.lua): new ones start at the
-- tail of this campaign's queue, removed ones' cursors go, and events every remaining one
-- passed leave the queue (all of them when none is left).
-- KEYS: 1 events, 2 event-regs, 3 cursors, 4 outbox-state.
-- ARGV: 1 the new receivers' ids, 2 every receiver id (both space-separated).
-- Returns when any receiver has an event due: -1 none, else unix ms (0: now).
local seq = tonumber(redis.call('HGET', KEYS[4], 'seq') or '0')
for _, r in ipairs(oq_split(ARGV[1])) do
  if redis.call('HEXISTS', KEYS[3], r) == 0 then
    oq_put(KEYS[3], r, {p = seq, h = 0, u = 0, a = 0, f = 0, x = 0, n = ''})
  end
end
local receivers = oq_split(ARGV[2])
local listed = {}
for _, r in ipairs(receivers) do listed[r] = true end
for _, r in ipairs(redis.call('HKEYS', KEYS[3])) do
  if not listed[r] then redis.call('HDEL', KEYS[3], r) end
end
if #receivers == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return -1
end
oq_trim(KEYS[1], KEYS[2], KEYS[3], receivers)
return oq_next_due(KEYS[1], KEYS[3], receivers)
