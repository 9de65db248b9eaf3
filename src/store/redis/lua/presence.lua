-- Presence totals kept incrementally (schema 3; keys.rs, "Presence totals"), prepended
-- after prelude.lua to apply, claim, stats and leave. A reader then costs O(regions +
-- nodes' short values) and a writer O(its own lease), instead of decoding every node's
-- lease on every write.
-- P (built by the script from its KEYS): presence, exp (the v2 lease hashes, still
-- written so v2 nodes read them during a rolling upgrade), moved, sum (`viewers`,
-- `r:<region>`, `_v`), eff (node -> its counted share as JSON {v, r}), nodes (node ->
-- `<updated_at>|<counted viewers>`), due (zset node by lease expiry), movedn (node ->
-- JSON {n, r}: its sockets marked moved, by region).
-- A node's counted share is its lease minus its moved marks, each number floored at 0;
-- `sum` is the sum of the shares of the live leases, adjusted by each share's change.
local function pres_built(P)
  return redis.call('HEXISTS', P.sum, '_v') == 1
end
-- The share node should count now, from its lease and its moved marks; nil without a lease.
local function pres_share(P, node)
  local v = redis.call('HGET', P.presence, node)
  if not v then return nil end
  local sep = string.find(v, '|', 1, true)
  local p = cjson.decode(string.sub(v, sep + 1))
  local mv = redis.call('HGET', P.movedn, node)
  mv = mv and cjson.decode(mv) or {n = 0, r = {}}
  local share = {at = string.sub(v, 1, sep - 1), v = math.max(0, p.viewers - mv.n), r = {}}
  for r, n in pairs(p.regions or {}) do
    n = math.max(0, n - (mv.r[r] or 0))
    if n > 0 then share.r[r] = n end
  end
  return share
end
-- Makes `share` (nil: none) node's counted share, moving the totals by the difference.
local function pres_set(P, node, share)
  local old = redis.call('HGET', P.eff, node)
  local o = old and cjson.decode(old) or {v = 0, r = {}}
  local n = share or {v = 0, r = {}}
  if n.v ~= o.v then redis.call('HINCRBY', P.sum, 'viewers', string.format('%d', n.v - o.v)) end
  for r, x in pairs(n.r) do
    local d = x - (o.r[r] or 0)
    if d ~= 0 then redis.call('HINCRBY', P.sum, 'r:' .. r, string.format('%d', d)) end
  end
  for r, x in pairs(o.r) do
    if n.r[r] == nil then redis.call('HINCRBY', P.sum, 'r:' .. r, string.format('%d', -x)) end
  end
  if share then
    -- `r` as an array-free object: cjson writes an empty table as {}.
    redis.call('HSET', P.eff, node, cjson.encode({v = share.v, r = share.r}))
    redis.call('HSET', P.nodes, node, share.at .. '|' .. string.format('%d', share.v))
  elseif old then
    redis.call('HDEL', P.eff, node)
    redis.call('HDEL', P.nodes, node)
  end
end
-- Counts one more (d = 1) or one fewer (d = -1) moved mark of node in `counted`: the
-- socket's region and its upper units' `u:<code>` keys, `;`-separated (Owner::counted_in).
local function pres_moved(P, node, counted, d)
  local mv = redis.call('HGET', P.movedn, node)
  mv = mv and cjson.decode(mv) or {n = 0, r = {}}
  mv.n = mv.n + d
  for key in string.gmatch(counted, '[^;]+') do
    mv.r[key] = (mv.r[key] or 0) + d
    if mv.r[key] <= 0 then mv.r[key] = nil end
  end
  if mv.n <= 0 then
    redis.call('HDEL', P.movedn, node)
  else
    redis.call('HSET', P.movedn, node, cjson.encode(mv))
  end
end
-- Drops the leases of `gone` (a list of nodes), each exactly once: its share leaves the
-- totals, its lease and its moved marks go.
local function pres_drop(P, gone)
  if #gone == 0 then return end
  local is_gone = {}
  for _, node in ipairs(gone) do
    is_gone[node] = true
    pres_set(P, node, nil)
    redis.call('HDEL', P.presence, node)
    redis.call('HDEL', P.exp, node)
    redis.call('HDEL', P.movedn, node)
  end
  chunks(gone, function(i0, i1) redis.call('ZREM', P.due, unpack(gone, i0, i1)) end)
  -- Moved marks exist only for nodes with a live lease: those of the gone go with them.
  local mv, marks = redis.call('HGETALL', P.moved), {}
  for i = 1, #mv, 2 do
    if is_gone[owner_node(mv[i + 1])] then marks[#marks + 1] = mv[i] end
  end
  chunks(marks, function(i0, i1) redis.call('HDEL', P.moved, unpack(marks, i0, i1)) end)
end
-- Drops every lease expired at `now` (Redis clock: alive while expiry > now).
local function pres_expire(P, now)
  pres_drop(P, redis.call('ZRANGEBYSCORE', P.due, '-inf', string.format('%d', now)))
end
-- Starts or renews node's lease until `exp` ms (Redis clock), in both layouts.
local function pres_lease(P, node, exp, built)
  local e = string.format('%d', exp)
  redis.call('HSET', P.exp, node, e)
  if built then redis.call('ZADD', P.due, e, node) end
end
-- Builds the totals from the leases (once, when the store is first used at schema 3).
local function pres_build(P, now)
  redis.call('DEL', P.sum, P.eff, P.nodes, P.due, P.movedn)
  redis.call('HSET', P.sum, '_v', '3', 'viewers', '0')
  local exp, alive, dead = redis.call('HGETALL', P.exp), {}, {}
  for i = 1, #exp, 2 do
    if tonumber(exp[i + 1]) > now then
      alive[exp[i]] = true
      redis.call('ZADD', P.due, exp[i + 1], exp[i])
    else
      dead[#dead + 1] = exp[i]
    end
  end
  local mv, marks = redis.call('HGETALL', P.moved), {}
  for i = 1, #mv, 2 do
    local region, node = string.match(mv[i + 1], '^([^|]*)|(.*)$')
    if alive[node] then pres_moved(P, node, region, 1) else marks[#marks + 1] = mv[i] end
  end
  chunks(marks, function(i0, i1) redis.call('HDEL', P.moved, unpack(marks, i0, i1)) end)
  chunks(dead, function(i0, i1)
    redis.call('HDEL', P.exp, unpack(dead, i0, i1))
    redis.call('HDEL', P.presence, unpack(dead, i0, i1))
  end)
  for node in pairs(alive) do pres_set(P, node, pres_share(P, node)) end
end
-- Ready to use the totals: built if `legacy` is not set (no v2 node may run) and they are
-- not yet; expired leases dropped. Returns true when the totals are kept.
local function pres_ready(P, now, legacy)
  local built = pres_built(P)
  if not built and not legacy then
    pres_build(P, now)
    built = true
  end
  if built then pres_expire(P, now) end
  return built
end
-- The totals: viewers and {region = n} (regions with 0 left out).
local function pres_totals(P)
  local flat = redis.call('HGETALL', P.sum)
  local total, regions = 0, {}
  for i = 1, #flat, 2 do
    local f, n = flat[i], tonumber(flat[i + 1])
    if f == 'viewers' then
      total = n
    elseif string.sub(f, 1, 2) == 'r:' and n > 0 then
      regions[string.sub(f, 3)] = n
    end
  end
  return total, regions
end
