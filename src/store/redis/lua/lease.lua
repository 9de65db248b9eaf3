-- Leases a receiver's next event of a campaign (see store/outbox.rs; needs cursors.lua).
-- KEYS: 1 events, 2 cursors.
-- ARGV: 1 receiver id, 2 node, 3 lease ms, 4 every receiver id (space-separated).
-- Returns {0, next due} (nothing for it), {1, next due} (leased elsewhere or waiting for
-- its next try) or {2, next due, body, attempts, first attempt ms}; `next due` is when any
-- receiver has an event due (unix ms, 0: now, -1: none), for the `due` index.
local receivers = oq_split(ARGV[4])
local c = oq_get(KEYS[2], ARGV[1])
local body, seq = oq_head(KEYS[1], c)
if not seq then return {0, oq_next_due(KEYS[1], KEYS[2], receivers), false, false, false} end
local now = oq_now()
if c.h ~= seq then c = {p = c.p, h = seq, u = 0, a = 0, f = now, x = 0, n = ''} end
if oq_due_at(c, seq) > now then
  return {1, oq_next_due(KEYS[1], KEYS[2], receivers), false, false, false}
end
c.a, c.n, c.u = c.a + 1, ARGV[2], now + tonumber(ARGV[3])
oq_put(KEYS[2], ARGV[1], c)
return {2, oq_next_due(KEYS[1], KEYS[2], receivers), body, c.a, c.f}
