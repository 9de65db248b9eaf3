-- Settles a node's lease of a receiver's next event (see store/outbox.rs; needs
-- cursors.lua). A settle for an event that is no longer the receiver's head (passed
-- meanwhile by a node that found the lease expired) changes nothing; a retry from a node
-- whose lease was taken over neither.
-- KEYS: 1 events, 2 event-regs, 3 cursors.
-- ARGV: 1 receiver id, 2 event number, 3 node, 4 'done' | 'retry', 5 retry delay ms,
--       6 every receiver id (space-separated).
-- Returns when any receiver has an event due: -1 none, else unix ms (0: now).
local receivers = oq_split(ARGV[6])
local c = oq_get(KEYS[3], ARGV[1])
local seq = tonumber(ARGV[2])
if c.h == seq then
  if ARGV[4] == 'retry' then
    if c.n == ARGV[3] then
      c.n, c.u, c.x = '', 0, oq_now() + tonumber(ARGV[5])
      oq_put(KEYS[3], ARGV[1], c)
    end
  else
    oq_put(KEYS[3], ARGV[1], {p = math.max(c.p, seq), h = 0, u = 0, a = 0, f = 0, x = 0, n = ''})
    oq_trim(KEYS[1], KEYS[2], KEYS[3], receivers)
  end
end
return oq_next_due(KEYS[1], KEYS[3], receivers)
