-- Reads a campaign's stats and drops expired presence leases (needs prelude.lua).
-- KEYS: 1 meta, 2 counts, 3 uniq, 4 actors, 5 regs, 6 shares, 7 presence, 8 presence-exp,
--       9 moved.
-- ARGV: none.
-- Returns nil when unknown, else {counts (flat), uniques, interactors, registrations,
-- shares (flat), live leases (flat node, value), peak, peak_at ('' = none),
-- peak_regions JSON ('' = none), state, sockets moved away from live nodes (flat epoch,
-- region|node)}; the moved marks of nodes without a live lease are dropped.
local m = redis.call('HMGET', KEYS[1], 'state', 'peak', 'peak_at', 'peak_regions')
if not m[1] then return false end
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
return {
  redis.call('HGETALL', KEYS[2]),
  redis.call('PFCOUNT', KEYS[3]),
  redis.call('PFCOUNT', KEYS[4]),
  redis.call('SCARD', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
  live,
  m[2] or '0',
  m[3] or '',
  m[4] or '',
  m[1],
  moved,
}
