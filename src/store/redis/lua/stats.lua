-- Reads a campaign's stats and drops expired presence leases (needs prelude.lua and
-- presence.lua).
-- KEYS: 1 meta, 2 counts, 3 uniq, 4 actors, 5 regs, 6 shares, 7 presence, 8 presence-exp,
--       9 moved, 10 presence-sum, 11 presence-eff, 12 presence-nodes, 13 presence-due,
--       14 moved-n, 15 peak-sum (the totals at the peak, when `peak_regions` is absent).
-- ARGV: 1 the presence layout older nodes allow (presence.lua, pres_ready: '2', '3', '4'),
--       2 `<peak>|<peak_at>` of the peak whose regions the caller holds ('' = none).
-- Returns nil when unknown, else {counts (flat), uniques, interactors, registrations,
-- shares (flat), live leases, peak, peak_at ('' = none), the regions at the peak (below),
-- state, moved, totals}. With the totals kept (schema 3): live leases are flat
-- `node, <updated_at>|<counted viewers>`, moved is empty and totals is the flat
-- presence-sum hash as one string, its fields and values one per line. Before (schema < 3): live leases are flat `node, <updated_at>|<lease
-- JSON>`, moved the sockets moved away from live nodes (flat epoch, region|node; the marks
-- of nodes without a live lease are dropped) and totals is ''. The regions at the peak:
-- '=' when the peak is still the one of ARGV[2] (the caller keeps its regions); else the
-- meta's `peak_regions` JSON (starts with '{'); else (apply.lua's `raise_peak` with the
-- totals kept) peak-sum as one string like totals; '' when there is none.
local m = redis.call('HMGET', KEYS[1], 'state', 'peak', 'peak_at', 'peak_regions')
if not m[1] then return false end
local P = {presence = KEYS[7], exp = KEYS[8], moved = KEYS[9], sum = KEYS[10], eff = KEYS[11],
  nodes = KEYS[12], due = KEYS[13], movedn = KEYS[14]}
local function reply(live, moved, totals)
  local at_peak = m[4]
  if m[3] and (m[2] or '0') .. '|' .. m[3] == ARGV[2] then
    at_peak = '='
  elseif not at_peak then
    at_peak = table.concat(redis.call('HGETALL', KEYS[15]), '\n')
  end
  return {
    redis.call('HGETALL', KEYS[2]),
    redis.call('PFCOUNT', KEYS[3]),
    redis.call('PFCOUNT', KEYS[4]),
    redis.call('SCARD', KEYS[5]),
    redis.call('HGETALL', KEYS[6]),
    live,
    m[2] or '0',
    m[3] or '',
    at_peak,
    m[1],
    moved,
    totals,
  }
end
if pres_ready(P, now_ms(), ARGV[1]) then
  -- One string, not a reply of two values per field: with an org's upper units the sum
  -- holds hundreds of fields, read by every node every tick (no field holds a line break).
  return reply(redis.call('HGETALL', P.nodes), {}, table.concat(redis.call('HGETALL', P.sum), '\n'))
end
local live, is_alive = {}, {}
local exp = redis.call('HGETALL', KEYS[8])
if #exp > 0 then
  local now = now_ms()
  local dead, alive = {}, {}
  for i = 1, #exp, 2 do
    if tonumber(exp[i + 1]) > now then
      alive[#alive + 1] = exp[i]
      is_alive[exp[i]] = true
    else
      dead[#dead + 1] = exp[i]
    end
  end
  chunks(dead, function(i0, i1)
    redis.call('HDEL', KEYS[7], unpack(dead, i0, i1))
    redis.call('HDEL', KEYS[8], unpack(dead, i0, i1))
  end)
  chunks(alive, function(i0, i1)
    local vals = redis.call('HMGET', KEYS[7], unpack(alive, i0, i1))
    for i = i0, i1 do
      local v = vals[i - i0 + 1]
      if v then live[#live + 1] = alive[i]; live[#live + 1] = v end
    end
  end)
end
local moved, gone = {}, {}
local mv = redis.call('HGETALL', KEYS[9])
for i = 1, #mv, 2 do
  if is_alive[owner_node(mv[i + 1])] then
    moved[#moved + 1] = mv[i]
    moved[#moved + 1] = mv[i + 1]
  else
    gone[#gone + 1] = mv[i]
  end
end
chunks(gone, function(i0, i1) redis.call('HDEL', KEYS[9], unpack(gone, i0, i1)) end)
return reply(live, moved, '')
