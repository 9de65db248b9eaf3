-- Helpers shared by apply.lua, stats.lua and delete.lua, prepended to them (no KEYS or ARGV of its own).
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
