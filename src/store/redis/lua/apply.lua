-- Applies one batch atomically (needs prelude.lua). Numbers travel as decimal strings:
-- epochs are compared as strings and nothing is formatted by Lua's `%.14g`.
-- KEYS: 1 meta, 2 epochs, 3 sessions, 4 counts, 5 iseries partition, 6 iparts, 7 uniq,
--       8 actors, 9 shares, 10 presence, 11 presence-exp, 12 applied (origin -> number|fenced).
-- ARGV: 1 batch JSON (see `LuaBatch`), 2 bucket_ms, 3 partition start, 4 lease ms,
--       5 origin, 6 batch number ('0': no retry check), 7 max share channels ('0': none).
-- Returns {ended (0/1), {fenced 0-based session indices}}.
if redis.call('HGET', KEYS[1], 'state') ~= 'live' then return {1, {}} end
if ARGV[6] ~= '0' then
  local prev = redis.call('HGET', KEYS[12], ARGV[5])
  if prev then
    local sep = string.find(prev, '|', 1, true)
    if tonumber(string.sub(prev, 1, sep - 1)) >= tonumber(ARGV[6]) then
      return {0, cjson.decode(string.sub(prev, sep + 1))}
    end
  end
end
local b = cjson.decode(ARGV[1])
local sessions = b.s
local names = {}
for i = 1, #sessions do names[i] = sessions[i][1] end
local fenced, actors, kinds, by_kind, acked, acked_names = {}, {}, {}, {}, {}, {}
local accepted = false
chunks(names, function(i0, i1)
  local epochs = redis.call('HMGET', KEYS[2], unpack(names, i0, i1))
  for i = i0, i1 do
    local s = sessions[i]
    if (epochs[i - i0 + 1] or '0') ~= s[2] then
      fenced[#fenced + 1] = i - 1
    else
      accepted = true
      local seq = tonumber(s[3])
      if seq > 0 then
        local prev = acked[s[1]]
        if prev == nil then acked_names[#acked_names + 1] = s[1] end
        if prev == nil or seq > prev[1] then acked[s[1]] = {seq, s[3]} end
      end
      if #s[5] > 0 then actors[#actors + 1] = s[4] end
      for _, kc in ipairs(s[5]) do
        local k = kc[1]
        if by_kind[k] == nil then by_kind[k] = 0; kinds[#kinds + 1] = k end
        by_kind[k] = by_kind[k] + tonumber(kc[2])
      end
    end
  end
end)
chunks(acked_names, function(i0, i1)
  local old = redis.call('HMGET', KEYS[3], unpack(acked_names, i0, i1))
  local set = {}
  for i = i0, i1 do
    local a = acked[acked_names[i]]
    if a[1] > tonumber(old[i - i0 + 1] or '0') then
      set[#set + 1] = acked_names[i]
      set[#set + 1] = a[2]
    end
  end
  if #set > 0 then redis.call('HSET', KEYS[3], unpack(set)) end
end)
if accepted then
  local total = 0
  for _, k in ipairs(kinds) do
    total = total + by_kind[k]
    local n = string.format('%d', by_kind[k])
    redis.call('HINCRBY', KEYS[4], k, n)
    redis.call('HINCRBY', KEYS[5], ARGV[2] .. ':' .. k, n)
  end
  redis.call('HINCRBY', KEYS[5], ARGV[2], string.format('%d', total))
  redis.call('ZADD', KEYS[6], ARGV[3], ARGV[3])
end
chunks(actors, function(i0, i1) redis.call('PFADD', KEYS[8], unpack(actors, i0, i1)) end)
chunks(b.v, function(i0, i1) redis.call('PFADD', KEYS[7], unpack(b.v, i0, i1)) end)
local ch, channels = {}, {}
for _, c in ipairs(b.h) do
  if ch[c[1]] == nil then ch[c[1]] = 0; channels[#channels + 1] = c[1] end
  ch[c[1]] = ch[c[1]] + tonumber(c[2])
end
-- Channels beyond the campaign's first ARGV[7] distinct ones count under 'other' (not one).
local max_channels = tonumber(ARGV[7])
if max_channels > 0 and #channels > 0 then
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
        if ch['other'] == nil then ch['other'] = 0; kept[#kept + 1] = 'other' end
        ch['other'] = ch['other'] + ch[c]
      end
    end
  end)
  channels = kept
end
for _, c in ipairs(channels) do
  redis.call('HINCRBY', KEYS[9], c, string.format('%d', ch[c]))
end
if b.p then
  local now = now_ms()
  redis.call('HSET', KEYS[10], b.p[1], string.format('%d', now) .. '|' .. b.p[2])
  redis.call('HSET', KEYS[11], b.p[1], string.format('%d', now + tonumber(ARGV[4])))
  -- The peak moves with presence: sum the live leases and raise it if higher.
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
        total = total + p.viewers
        for r, n in pairs(p.regions) do regions[r] = (regions[r] or 0) + n end
      end
    end
  end)
  local peak = tonumber(redis.call('HGET', KEYS[1], 'peak') or '0')
  if total > peak then
    local parts = {}
    for r, n in pairs(regions) do
      parts[#parts + 1] = cjson.encode(r) .. ':' .. string.format('%d', n)
    end
    table.sort(parts)
    redis.call('HSET', KEYS[1], 'peak', string.format('%d', total), 'peak_at', string.format('%d', now),
      'peak_regions', '{' .. table.concat(parts, ',') .. '}')
  end
end
if ARGV[6] ~= '0' then
  local parts = {}
  for i, f in ipairs(fenced) do parts[i] = string.format('%d', f) end
  redis.call('HSET', KEYS[12], ARGV[5], ARGV[6] .. '|[' .. table.concat(parts, ',') .. ']')
end
return {0, fenced}
