-- A node leaves a campaign gracefully: its lease goes now rather than at expiry (needs
-- prelude.lua and presence.lua).
-- KEYS: 1 presence, 2 presence-exp, 3 moved, 4 presence-sum, 5 presence-eff,
--       6 presence-nodes, 7 presence-due, 8 moved-n.
-- ARGV: 1 node, 2 the presence layout older nodes allow (presence.lua, pres_ready: '2',
--       '3', '4').
-- Returns 1.
local P = {presence = KEYS[1], exp = KEYS[2], moved = KEYS[3], sum = KEYS[4], eff = KEYS[5],
  nodes = KEYS[6], due = KEYS[7], movedn = KEYS[8]}
-- Nothing to build for a campaign that keeps no presence (unknown or ended).
if redis.call('EXISTS', P.exp) == 0 and not pres_built(P) then return 1 end
if pres_ready(P, now_ms(), ARGV[2]) then
  pres_drop(P, {ARGV[1]})
else
  redis.call('HDEL', P.presence, ARGV[1])
  redis.call('HDEL', P.exp, ARGV[1])
end
return 1
