-- Presence totals kept incrementally (schema 3; keys.rs, "Presence totals"), prepended
-- after prelude.lua to apply, claim, stats and leave. A reader then costs O(regions +
-- nodes' short values) and a writer O(what it changes), instead of decoding every node's
-- lease on every write.
-- P (built by the script from its KEYS): presence, exp (the v2 lease hashes: `exp` is
-- still written, `presence` while v1.1 nodes may run), moved, sum (`viewers`,
-- `r:<region>`, `_v`), eff (layout 3: node -> its counted share as JSON {v, r}), nodes
-- (node -> `<updated_at>|<counted viewers>`), due (zset node by lease expiry), movedn
-- (node -> JSON {n, r}: its sockets marked moved, by region); P.hash is set by pres_ready.
-- A node's counted share is its lease minus its moved marks, each number floored at 0;
-- `sum` is the sum of the shares of the live leases, adjusted by each share's change.
-- Two layouts, named by the sum's `_v`:
--   '3' (schema 3): a lease is one JSON value in `presence`, its share another in
--       `eff`; a write decodes, diffs and re-encodes the whole lease.
--   '4' (schema 4): a lease is its node's own hash `presence:<node>` (`_at`, `viewers`,
--       `r:<region>`, the sum's own field names), written from the node's changes, and a
--       share is worked out field by field: a write costs O(the fields it changes), however
--       many upper units an org adds to every lease.
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
-- Layout 4: node's lease hash.
local function pres_key(P, node)
  return P.presence .. ':' .. node
end
-- node's moved marks: {n = sockets, r = {key = sockets}}.
local function pres_marks(P, node)
  local mv = redis.call('HGET', P.movedn, node)
  return mv and cjson.decode(mv) or {n = 0, r = {}}
end
-- Layout 4: the marks against a lease field (`viewers` or `r:<key>`).
local function pres_mark_of(mv, f)
  if f == 'viewers' then return mv.n end
  return mv.r[string.sub(f, 3)] or 0
end
-- Layout 4: moves the totals' field f by the change of one share field, from lease count
-- l0 less m0 marks to l1 less m1 (each share floored at 0).
local function pres_move(P, f, l0, m0, l1, m1)
  local d = math.max(0, l1 - m1) - math.max(0, l0 - m0)
  if d ~= 0 then redis.call('HINCRBY', P.sum, f, string.format('%d', d)) end
end
-- Counts one more (d = 1) or one fewer (d = -1) moved mark of node in `counted`: the
-- socket's region and its upper units' `u:<code>` keys, `;`-separated (Owner::counted_in).
-- Layout 4 moves the totals here; layout 3 leaves that to pres_reshare.
local function pres_moved(P, node, counted, d)
  local mv = pres_marks(P, node)
  local fields = {'viewers'}
  for key in string.gmatch(counted, '[^;]+') do fields[#fields + 1] = 'r:' .. key end
  local before = {}
  for i, f in ipairs(fields) do before[i] = pres_mark_of(mv, f) end
  mv.n = mv.n + d
  for i = 2, #fields do
    local key = string.sub(fields[i], 3)
    mv.r[key] = (mv.r[key] or 0) + d
    if mv.r[key] <= 0 then mv.r[key] = nil end
  end
  if P.hash then
    local lease = redis.call('HMGET', pres_key(P, node), '_at', unpack(fields))
    if lease[1] then
      for i, f in ipairs(fields) do
        local l = tonumber(lease[i + 1] or '0')
        pres_move(P, f, l, before[i], l, math.max(0, pres_mark_of(mv, f)))
      end
      local v = math.max(0, tonumber(lease[2] or '0') - math.max(0, mv.n))
      redis.call('HSET', P.nodes, node, lease[1] .. '|' .. string.format('%d', v))
    end
  end
  if mv.n <= 0 then
    redis.call('HDEL', P.movedn, node)
  else
    redis.call('HSET', P.movedn, node, cjson.encode(mv))
  end
end
-- Layout 3: works node's counted share out again after its lease or marks changed.
local function pres_reshare(P, node)
  if not P.hash then pres_set(P, node, pres_share(P, node)) end
end
-- Layout 4: writes node's lease `p` ({viewers, regions}) stamped `at`: the whole lease, or
-- only its changes (a region at 0 leaves). Returns false, writing nothing, for changes to
-- a lease that is not there (dropped when it expired): the node then writes it whole.
local function pres_put(P, node, at, p, whole)
  local key = pres_key(P, node)
  local new, fields = {viewers = p.viewers}, {'viewers'}
  for r, n in pairs(p.regions or {}) do
    new['r:' .. r] = n
    fields[#fields + 1] = 'r:' .. r
  end
  local old = {}
  if whole then
    local flat = redis.call('HGETALL', key)
    for i = 1, #flat, 2 do
      local f = flat[i]
      if f ~= '_at' then
        old[f] = tonumber(flat[i + 1])
        if new[f] == nil then new[f] = 0; fields[#fields + 1] = f end
      end
    end
    redis.call('DEL', key)
  else
    if redis.call('HEXISTS', key, '_at') == 0 then return false end
    chunks(fields, function(i0, i1)
      local vals = redis.call('HMGET', key, unpack(fields, i0, i1))
      for i = i0, i1 do old[fields[i]] = tonumber(vals[i - i0 + 1] or '0') end
    end)
  end
  local mv = pres_marks(P, node)
  local set, gone = {}, {}
  for _, f in ipairs(fields) do
    local m, n = pres_mark_of(mv, f), new[f]
    pres_move(P, f, old[f] or 0, m, n, m)
    if n > 0 or f == 'viewers' then
      set[#set + 1] = f
      set[#set + 1] = string.format('%d', n)
    elseif not whole then
      gone[#gone + 1] = f
    end
  end
  redis.call('HSET', key, '_at', at)
  chunks(set, function(i0, i1) redis.call('HSET', key, unpack(set, i0, i1)) end)
  chunks(gone, function(i0, i1) redis.call('HDEL', key, unpack(gone, i0, i1)) end)
  redis.call('HSET', P.nodes, node, at .. '|' .. string.format('%d', math.max(0, new.viewers - mv.n)))
  return true
end
-- Drops the leases of `gone` (a list of nodes), each exactly once: its share leaves the
-- totals, its lease and its moved marks go.
local function pres_drop(P, gone)
  if #gone == 0 then return end
  local is_gone = {}
  for _, node in ipairs(gone) do
    is_gone[node] = true
    if P.hash then
      local key, mv = pres_key(P, node), pres_marks(P, node)
      local flat = redis.call('HGETALL', key)
      for i = 1, #flat, 2 do
        local f = flat[i]
        if f ~= '_at' then pres_move(P, f, tonumber(flat[i + 1]), pres_mark_of(mv, f), 0, 0) end
      end
      redis.call('DEL', key)
      redis.call('HDEL', P.nodes, node)
    else
      pres_set(P, node, nil)
    end
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
-- Starts or renews node's lease until `exp` ms (Redis clock).
local function pres_lease(P, node, exp, built)
  local e = string.format('%d', exp)
  redis.call('HSET', P.exp, node, e)
  if built then redis.call('ZADD', P.due, e, node) end
end
-- Builds the totals in `layout` ('3' or '4') from the leases in `presence` (v2's, or
-- layout 3's): once, when a campaign is first used at schema 3, and again when first used
-- at schema 4.
local function pres_build(P, now, layout)
  local leases = redis.call('HGETALL', P.presence)
  redis.call('DEL', P.sum, P.eff, P.nodes, P.due, P.movedn)
  redis.call('HSET', P.sum, '_v', layout, 'viewers', '0')
  P.hash = layout == '4'
  local exp, alive, dead = redis.call('HGETALL', P.exp), {}, {}
  for i = 1, #exp, 2 do
    -- No lease hash can be left from before (end.lua drops them with the sum): made sure.
    if P.hash then redis.call('DEL', pres_key(P, exp[i])) end
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
  if P.hash then
    redis.call('DEL', P.presence)
    for i = 1, #leases, 2 do
      local node, v = leases[i], leases[i + 1]
      if alive[node] then
        local sep = string.find(v, '|', 1, true)
        pres_put(P, node, string.sub(v, 1, sep - 1), cjson.decode(string.sub(v, sep + 1)), true)
      end
    end
  else
    for node in pairs(alive) do pres_set(P, node, pres_share(P, node)) end
  end
end
-- Ready to use the totals: built in the layout of `mode` unless '2' (v2 nodes may run: no
-- totals) when there are none or they are in layout 3 and mode is '4' (no v1.1 node may
-- run); expired leases dropped. Returns true when the totals are kept.
local function pres_ready(P, now, mode)
  local v = redis.call('HGET', P.sum, '_v')
  if mode ~= '2' and (not v or (v == '3' and mode == '4')) then
    pres_build(P, now, mode)
    v = mode
  end
  if not v then return false end
  P.hash = v == '4'
  pres_expire(P, now)
  return true
end
