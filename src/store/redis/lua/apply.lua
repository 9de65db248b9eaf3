-- Applies one batch atomically (needs prelude.lua). Numbers travel as decimal strings:
-- epochs are compared as strings and nothing is formatted by Lua's `%.14g`.
-- KEYS: 1 meta, 2 epochs (v1), 3 sessions (v1), 4 counts, 5 iseries partition, 6 iparts,
--       7 uniq, 8 actors, 9 shares, 10 presence, 11 presence-exp, 12 applied:0,
--       13 applied:1 (origin -> number|fenced), 14 sessions:0, 15 sessions:1
--       (session -> epoch|acked|region|node), 16 moved (epoch -> region|node),
--       17 presence-sum, 18 presence-eff, 19 presence-nodes, 20 presence-due, 21 moved-n
--       (presence.lua), 22 udelta (packed unit deltas for `fold_units`), 23 sunits:0, 24 sunits:1
--       (sessions counted in a unit), 25 uuniq-codes (codes with a
--       sketch), 26 peak-sum (the totals at the peak), 27 events, 28 event-regs,
--       29 outbox-state (absent: no webhook receivers; needs events.lua).
-- ARGV: 1 batch JSON (see `LuaBatch`), 2 bucket_ms, 3 partition start, 4 lease ms,
--       5 origin, 6 batch number ('0': no retry check), 7 this node's session TTL ms,
--       8 '1' while v1 nodes may run (schema 1: keep the v1 session keys true too),
--       9 this node's name in presence ('' = none), 10 max share channels ('0': none; a
--       campaign's declared channels, meta `share_channels`, replace this bound),
--       11 the presence layout older nodes allow (presence.lua, pres_ready: '2', '3', '4'),
--       12 --webhook-queue-max, 13 the prefix of the upper units' unique sketches
--       (`lt:{c:<id>}:uuniq:`, then the code), 14 the batch's units, a JSON array of
--       codes ('' = none: the campaign has no org), 15 the batch's interactions and share
--       visits by unit, `[unit, metric, n]` entries comma-separated, for the delta.
-- The batch's `p` is [node, lease JSON {viewers, regions}, '1' when whole]: in layout 4
-- only its changes unless whole.
-- Returns {ended (0/1), {fenced 0-based session indices}, the campaign's session TTL ms,
-- {epochs of this node's sockets moved away}, webhook events queued, 1 when the lease's
-- changes found no lease to change (the node then writes it whole)}.
local m = redis.call('HMGET', KEYS[1], 'state', 'session_ttl', 'share_channels')
if m[1] ~= 'live' then return {1, {}, 0, {}, 0, 0} end
ev_open(KEYS[1], KEYS[27], KEYS[28], KEYS[29], ARGV[12])
local ttl = session_ttl(KEYS[1], m[2], ARGV[7])
local now = now_ms()
local mixed = ARGV[8] == '1'
local P = {presence = KEYS[10], exp = KEYS[11], moved = KEYS[16], sum = KEYS[17], eff = KEYS[18],
  nodes = KEYS[19], due = KEYS[20], movedn = KEYS[21]}
-- Writes the batch's lease `p` and renews it. Returns 1 when its changes found no lease
-- to change (pres_put; nothing written), else 0.
local function write_lease(p, built)
  local at, lost = string.format('%d', now), 0
  if P.hash then
    if not pres_put(P, p[1], at, cjson.decode(p[2]), p[3] == '1') then lost = 1 end
  else
    redis.call('HSET', KEYS[10], p[1], at .. '|' .. p[2])
    if built then pres_reshare(P, p[1]) end
  end
  pres_lease(P, p[1], now + tonumber(ARGV[4]), built)
  return lost
end
local retry = ARGV[6] ~= '0' and generation(KEYS[12], KEYS[13], ttl, now)
if retry then
  local prev = gen_get(retry, {ARGV[5]}, 1, 1)[1]
  if prev then
    local sep = string.find(prev, '|', 1, true)
    if tonumber(string.sub(prev, 1, sep - 1)) >= tonumber(ARGV[6]) then
      -- A batch applied before, sent again: nothing of it counts twice, but its lease is
      -- written (again): absolute numbers, and the node may have sent it whole this time.
      local b, lost = cjson.decode(ARGV[1]), 0
      if b.p then lost = write_lease(b.p, pres_ready(P, now, ARGV[11])) end
      return {0, cjson.decode(string.sub(prev, sep + 1)), ttl, {}, 0, lost}
    end
  end
end
local b = cjson.decode(ARGV[1])
local built = pres_ready(P, now, ARGV[11])
local sess = generation(KEYS[14], KEYS[15], ttl, now)
local sessions = b.s
local names = {}
for i = 1, #sessions do names[i] = sessions[i][1] end
-- live: the entries to write back (refreshed, acked raised, owner kept or cleared), by
-- session name: {epoch, acked number, acked string, owner}.
local fenced, actors, kinds, by_kind, live, live_names = {}, {}, {}, {}, {}, {}
local is_fenced = {}
local accepted = false
chunks(names, function(i0, i1)
  local entries = gen_get(sess, names, i0, i1)
  -- A v1 node's claim moves only the v1 epoch: while one may run, it fences too.
  local v1 = mixed and redis.call('HMGET', KEYS[2], unpack(names, i0, i1)) or {}
  for i = i0, i1 do
    local s = sessions[i]
    local e, a, owner
    if entries[i - i0 + 1] then e, a, owner = entry_parts(entries[i - i0 + 1]) end
    local v1e = v1[i - i0 + 1]
    if e ~= s[2] or (v1e and v1e ~= s[2]) then
      fenced[#fenced + 1] = i - 1
      is_fenced[i - 1] = true
    else
      accepted = true
      local l = live[s[1]]
      if l == nil then
        l = {e, tonumber(a), a, owner}
        live[s[1]] = l
        live_names[#live_names + 1] = s[1]
      end
      local seq = tonumber(s[3])
      if seq > l[2] then l[2] = seq; l[3] = s[3] end
      -- viewer '' : the socket has not qualified (--unique-after), its viewer not yet.
      if #s[5] > 0 and s[4] ~= '' then actors[#actors + 1] = s[4] end
      for _, kc in ipairs(s[5]) do
        local k = kc[1]
        if by_kind[k] == nil then by_kind[k] = 0; kinds[#kinds + 1] = k end
        by_kind[k] = by_kind[k] + tonumber(kc[2])
      end
    end
  end
end)
-- Open sockets that sent nothing: their sessions live on while the epoch is still theirs.
local touch, touched = b.t, {}
for i = 1, #touch do touched[i] = touch[i][1] end
chunks(touched, function(i0, i1)
  local entries = gen_get(sess, touched, i0, i1)
  for i = i0, i1 do
    local name = touched[i]
    if entries[i - i0 + 1] and live[name] == nil then
      local e, a, owner = entry_parts(entries[i - i0 + 1])
      if e == touch[i][2] then
        live[name] = {e, tonumber(a), a, owner}
        live_names[#live_names + 1] = name
      end
    end
  end
end)
-- Sockets this node closed: no longer counted by it, nor moved away from it.
local left, gone, gone_epochs = b.l, {}, {}
for i = 1, #left do
  gone_epochs[i] = left[i][2]
  if left[i][1] ~= '' then gone[#gone + 1] = i end
end
-- Nodes whose moved marks changed: their counted share is worked out again below.
local remarked = {}
chunks(gone_epochs, function(i0, i1)
  if built then
    local marks = redis.call('HMGET', KEYS[16], unpack(gone_epochs, i0, i1))
    for i = 1, i1 - i0 + 1 do
      if marks[i] then
        local region, node = string.match(marks[i], '^([^|]*)|(.*)$')
        pres_moved(P, node, region, -1)
        remarked[node] = true
      end
    end
  end
  redis.call('HDEL', KEYS[16], unpack(gone_epochs, i0, i1))
end)
chunks(gone, function(i0, i1)
  local names = {}
  for i = i0, i1 do names[#names + 1] = left[gone[i]][1] end
  local entries = gen_get(sess, names, 1, #names)
  for k = 1, #names do
    local name, epoch = names[k], left[gone[i0 + k - 1]][2]
    local l = live[name]
    if l and l[1] == epoch then
      l[4] = ''
    elseif l == nil and entries[k] then
      local e, a = entry_parts(entries[k])
      if e == epoch then
        live[name] = {e, tonumber(a), a, ''}
        live_names[#live_names + 1] = name
      end
    end
  end
end)
-- A session whose last socket closed without ever sending a seq has no resume state worth
-- keeping: forgotten now, so a connect loop leaves nothing behind (its epoch goes with it,
-- so a delta still holding that epoch is fenced). Not while v1 nodes may run: their epochs
-- live in the v1 hash.
local closed = {}
if not mixed then
  local kept = {}
  for _, name in ipairs(live_names) do
    local l = live[name]
    if l[4] == '' and l[2] == 0 then closed[#closed + 1] = name else kept[#kept + 1] = name end
  end
  live_names = kept
end
chunks(closed, function(i0, i1)
  redis.call('HDEL', sess.cur, unpack(closed, i0, i1))
  redis.call('HDEL', sess.prev, unpack(closed, i0, i1))
end)
-- After the upgrade (schema 2) the v1 acked seqs are only a fallback for sessions v2
-- never wrote; drop those ours supersede, so they never come back once ours are forgotten.
local v1_left = not mixed and #live_names > 0 and redis.call('EXISTS', KEYS[3]) == 1
chunks(live_names, function(i0, i1)
  local kv = {}
  for i = i0, i1 do
    local l = live[live_names[i]]
    kv[#kv + 1] = live_names[i]
    kv[#kv + 1] = l[1] .. '|' .. l[3] .. '|' .. l[4]
  end
  gen_put(sess, kv)
  if mixed then
    -- v1 nodes read the acked seq from the v1 hash: keep it as high as ours.
    local old = redis.call('HMGET', KEYS[3], unpack(live_names, i0, i1))
    local set = {}
    for i = i0, i1 do
      local l = live[live_names[i]]
      if l[2] > tonumber(old[i - i0 + 1] or '0') then
        set[#set + 1] = live_names[i]
        set[#set + 1] = l[3]
      end
    end
    if #set > 0 then redis.call('HSET', KEYS[3], unpack(set)) end
  elseif v1_left then
    redis.call('HDEL', KEYS[3], unpack(live_names, i0, i1))
  end
end)
if accepted then
  local total = 0
  for _, k in ipairs(kinds) do
    total = total + by_kind[k]
    local n = string.format('%d', by_kind[k])
    local v = redis.call('HINCRBY', KEYS[4], k, n)
    ev_reached(k, v - by_kind[k], v)
    redis.call('HINCRBY', KEYS[5], ARGV[2] .. ':' .. k, n)
  end
  redis.call('HINCRBY', KEYS[5], ARGV[2], string.format('%d', total))
  redis.call('ZADD', KEYS[6], ARGV[3], ARGV[3])
end
for _, v in ipairs(b.i or {}) do actors[#actors + 1] = v end
chunks(actors, function(i0, i1) redis.call('PFADD', KEYS[8], unpack(actors, i0, i1)) end)
chunks(b.v, function(i0, i1) redis.call('PFADD', KEYS[7], unpack(b.v, i0, i1)) end)
-- Per unit (campaigns with an org): what the batch counts per unit, for the sessions not
-- fenced, in this same step, so a fenced delta or a retried batch adds nothing here
-- either. One packed delta per batch, `{"p": <ARGV[14] as sent>, "c": [[unit, metric,
-- n], ...]}` (units by 1-based index), folded into the unit's and every ancestor's totals
-- outside this slot by the roller (`rollup.rs`): here it costs one RPUSH.
if ARGV[14] ~= '' then
  local add, keys = {}, {}
  local function count(p, metric, n)
    local k = p .. '|' .. metric
    if add[k] == nil then add[k] = 0; keys[#keys + 1] = {p, metric} end
    add[k] = add[k] + n
  end
  -- The node sent the batch's interactions and share visits by unit already summed
  -- (ARGV[15]), right unless a session was fenced: then they are summed here without it.
  local parts = {}
  if #fenced == 0 then
    if ARGV[15] ~= '' then parts[1] = ARGV[15] end
  else
    for i = 1, #sessions do
      local s = sessions[i]
      if s[6] > 0 and not is_fenced[i - 1] then
        for _, kc in ipairs(s[5]) do count(s[6], 'i|' .. kc[1], tonumber(kc[2])) end
      end
    end
    for _, h in ipairs(b.uh or {}) do count(h[1], 'h', tonumber(h[2])) end
  end
  local us, names = b.us or {}, {}
  for i = 1, #us do names[i] = us[i][1] end
  if #names > 0 then
    local su = generation(KEYS[23], KEYS[24], ttl, now)
    chunks(names, function(i0, i1)
      local had, kv = gen_get(su, names, i0, i1), {}
      for i = i0, i1 do
        -- A session counts in the unit it first qualified in, once: the top level's
        -- sessions (and `unassigned`) then add up to the campaign's.
        if not had[i - i0 + 1] then
          count(us[i][2], 's', 1)
          kv[#kv + 1] = names[i]
          kv[#kv + 1] = '1'
        end
      end
      gen_put(su, kv)
    end)
  end
  for _, pm in ipairs(keys) do
    local n = add[pm[1] .. '|' .. pm[2]]
    if n ~= 0 then
      parts[#parts + 1] = '[' .. pm[1] .. ',' .. cjson.encode(pm[2]) .. ',' .. string.format('%d', n) .. ']'
    end
  end
  if #parts > 0 then
    redis.call('RPUSH', KEYS[22], '{"p":' .. ARGV[14] .. ',"c":[' .. table.concat(parts, ',') .. ']}')
  end
end
-- The upper units' unique sketches (a batch may name no path and still bring viewers):
-- one PFADD per unit and batch.
local uv, ucodes = {}, {}
for _, cv in ipairs(b.uv or {}) do
  local l = uv[cv[1]]
  if l == nil then l = {}; uv[cv[1]] = l; ucodes[#ucodes + 1] = cv[1] end
  l[#l + 1] = cv[2]
end
for _, code in ipairs(ucodes) do
  local l = uv[code]
  chunks(l, function(i0, i1)
    if redis.call('PFADD', ARGV[13] .. code, unpack(l, i0, i1)) == 1 then redis.call('SADD', KEYS[25], code) end
  end)
end
-- Schema < 3 (v2 nodes may run): the live total by decoding every live lease.
local function legacy_total(moved_by, now)
  local exp = redis.call('HGETALL', KEYS[11])
  local alive = {}
  for i = 1, #exp, 2 do
    if tonumber(exp[i + 1]) > now then alive[#alive + 1] = exp[i] end
  end
  local total, regions = 0, {}
  chunks(alive, function(i0, i1)
    local vals = redis.call('HMGET', KEYS[10], unpack(alive, i0, i1))
    for i = 1, i1 - i0 + 1 do
      local v = vals[i]
      if v then
        local sep = string.find(v, '|', 1, true)
        local p = cjson.decode(string.sub(v, sep + 1))
        local mb = moved_by[alive[i0 + i - 1]] or {n = 0, r = {}}
        total = total + math.max(0, p.viewers - mb.n)
        for r, n in pairs(p.regions) do
          n = math.max(0, n - (mb.r[r] or 0))
          if n > 0 then regions[r] = (regions[r] or 0) + n end
        end
      end
    end
  end)
  return total, regions
end
-- THE place a flush raises the campaign's peak (tick.lua is the other writer): when the
-- live total exceeds it, the peak, its time and its regions are set together. With the
-- totals kept (`regions` nil) the regions are the totals themselves, copied server-side
-- into peak-sum (no walk in Lua over an org's hundreds of upper units, on the write
-- that a ramp makes every flush); `peak_regions` JSON otherwise (stats.lua reads either).
local function raise_peak(total, now, regions)
  local peak = tonumber(redis.call('HGET', KEYS[1], 'peak') or '0')
  ev_peak(peak, total, now)
  if total <= peak then return end
  local t, at = string.format('%d', total), string.format('%d', now)
  if regions then
    local parts = {}
    for r, n in pairs(regions) do
      parts[#parts + 1] = cjson.encode(r) .. ':' .. string.format('%d', n)
    end
    table.sort(parts)
    redis.call('HSET', KEYS[1], 'peak', t, 'peak_at', at, 'peak_regions', '{' .. table.concat(parts, ',') .. '}')
  else
    redis.call('COPY', P.sum, KEYS[26], 'REPLACE')
    redis.call('HSET', KEYS[1], 'peak', t, 'peak_at', at)
    redis.call('HDEL', KEYS[1], 'peak_regions')
  end
end
-- Sockets moved away from their node: subtracted from its lease below and in stats.lua;
-- this node's are returned so it closes them.
local moved, mine, moved_by = redis.call('HGETALL', KEYS[16]), {}, {}
for i = 1, #moved, 2 do
  local region, node = string.match(moved[i + 1], '^([^|]*)|(.*)$')
  if node == ARGV[9] then mine[#mine + 1] = moved[i] end
  local mb = moved_by[node] or {n = 0, r = {}}
  mb.n = mb.n + 1
  mb.r[region] = (mb.r[region] or 0) + 1
  moved_by[node] = mb
end
local ch, channels = {}, {}
for _, c in ipairs(b.h) do
  if ch[c[1]] == nil then ch[c[1]] = 0; channels[#channels + 1] = c[1] end
  ch[c[1]] = ch[c[1]] + tonumber(c[2])
end
-- Visits on a channel that is not counted by name go to 'other' (not one itself).
local function to_other(c, kept)
  if ch['other'] == nil then ch['other'] = 0; kept[#kept + 1] = 'other' end
  ch['other'] = ch['other'] + ch[c]
end
local max_channels = tonumber(ARGV[10])
if m[3] and m[3] ~= '' and #channels > 0 then
  -- Declared channels (meta `share_channels`): those by name, every other one under 'other'.
  local declared, kept = {}, {}
  for c in string.gmatch(m[3], '[^,]+') do declared[c] = true end
  for _, c in ipairs(channels) do
    if declared[c] or c == 'other' then kept[#kept + 1] = c else to_other(c, kept) end
  end
  channels = kept
elseif max_channels > 0 and #channels > 0 then
  -- Otherwise the campaign's first ARGV[10] distinct channels count by name.
  local distinct = redis.call('HLEN', KEYS[9]) - redis.call('HEXISTS', KEYS[9], 'other')
  local kept = {}
  chunks(channels, function(i0, i1)
    local known = redis.call('HMGET', KEYS[9], unpack(channels, i0, i1))
    for i = i0, i1 do
      local c = channels[i]
      if known[i - i0 + 1] or c == 'other' then
        kept[#kept + 1] = c
      elseif distinct < max_channels then
        distinct = distinct + 1
        kept[#kept + 1] = c
      else
        to_other(c, kept)
      end
    end
  end)
  channels = kept
end
for _, c in ipairs(channels) do
  redis.call('HINCRBY', KEYS[9], c, string.format('%d', ch[c]))
end
local lost = b.p and write_lease(b.p, built) or 0
for node in pairs(remarked) do pres_reshare(P, node) end
if b.p then
  -- The peak moves with presence: raised here (and by tick.lua) to the live total if higher.
  if built then
    raise_peak(tonumber(redis.call('HGET', P.sum, 'viewers') or '0'), now)
  else
    local total, regions = legacy_total(moved_by, now)
    raise_peak(total, now, regions)
  end
end
if retry then
  local parts = {}
  for i, f in ipairs(fenced) do parts[i] = string.format('%d', f) end
  gen_put(retry, {ARGV[5], ARGV[6] .. '|[' .. table.concat(parts, ',') .. ']'})
end
return {0, fenced, ttl, mine, EV.queued, lost}
