-- Helpers shared by apply.lua, claim.lua, stats.lua and delete.lua, prepended to them (no
-- KEYS or ARGV of its own).
-- At most CHUNK fields per variadic command keeps `unpack` far below Lua's C-stack limit
-- (8,000) while a 100,000-session batch stays ~100 commands.
local CHUNK = 1000
local function chunks(list, f)
  for i0 = 1, #list, CHUNK do
    f(i0, math.min(i0 + CHUNK - 1, #list))
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Generations (see keys.rs): state that must outlive its last write by at least `ttl` ms
-- and at most 2·ttl, with no timer per entry. Generation g = floor(now / ttl) lives in
-- pair[g % 2 + 1], whose field `_g` says which generation it holds (no client id is that
-- short) and which expires at the end of generation g + 1. Reads look in g, then g - 1;
-- writes go to g. A hash still holding g - 2 (not yet expired to the millisecond) is
-- ignored, and emptied before its first write in g.
local function generation(k0, k1, ttl, now)
  local g = math.floor(now / ttl)
  local cur, prev = k0, k1
  if g % 2 == 1 then cur, prev = k1, k0 end
  local gs = string.format('%d', g)
  return {
    g = gs, cur = cur, prev = prev, g_prev = string.format('%d', g - 1),
    cur_ok = redis.call('HGET', cur, '_g') == gs,
    prev_ok = nil, -- looked up on the first read that misses in cur
    expires = string.format('%d', (g + 2) * ttl),
  }
end
-- The values of fields[i0..i1] (false where absent), current generation first.
local function gen_get(gen, fields, i0, i1)
  local out, missing = {}, false
  if gen.cur_ok then out = redis.call('HMGET', gen.cur, unpack(fields, i0, i1)) end
  for i = 1, i1 - i0 + 1 do
    if not out[i] then out[i] = false; missing = true end
  end
  if missing and gen.prev_ok == nil then
    gen.prev_ok = redis.call('HGET', gen.prev, '_g') == gen.g_prev
  end
  if missing and gen.prev_ok then
    local old = redis.call('HMGET', gen.prev, unpack(fields, i0, i1))
    for i = 1, i1 - i0 + 1 do
      if not out[i] then out[i] = old[i] end
    end
  end
  return out
end
-- Writes a flat {field, value, ...} list (at most 2·CHUNK long) into the current generation.
local function gen_put(gen, kv)
  if #kv == 0 then return end
  if not gen.cur_ok then
    redis.call('DEL', gen.cur)
    redis.call('HSET', gen.cur, '_g', gen.g)
    redis.call('PEXPIREAT', gen.cur, gen.expires)
    gen.cur_ok = true
  end
  redis.call('HSET', gen.cur, unpack(kv))
end
-- The campaign's session TTL in ms: the first node that writes one fixes it for all, so
-- nodes started with different --session-ttl flags still agree on the generations.
local function session_ttl(meta, stored, mine)
  if stored then return tonumber(stored) end
  redis.call('HSET', meta, 'session_ttl', mine)
  return tonumber(mine)
end
-- A session entry is `<epoch>|<acked seq>|<owner>`, the owner being `<region>|<node>` of
-- the socket that counts the session, or empty once it left. Returns epoch, acked, owner.
local function entry_parts(entry)
  return string.match(entry, '^(%d+)|(%d+)|?(.*)$')
end
-- The node of an owner (or of a `moved` value), '' when none.
local function owner_node(owner)
  return string.match(owner, '^[^|]*|(.*)$') or ''
end
