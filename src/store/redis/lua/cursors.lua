-- Receivers' cursors in a campaign's webhook queue (see store/outbox.rs), prepended to
-- lease, settle and retarget. A cursor is `passed|head|until|attempts|first|next|node`:
-- the last event the receiver passed, and the delivery of its next one (`head`).
local function oq_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function oq_get(cursors, r)
  local v = redis.call('HGET', cursors, r)
  if not v then return {p = 0, h = 0, u = 0, a = 0, f = 0, x = 0, n = ''} end
  local p, h, u, a, f, x, n = string.match(v, '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(.*)$')
  return {p = tonumber(p), h = tonumber(h), u = tonumber(u), a = tonumber(a), f = tonumber(f),
    x = tonumber(x), n = n}
end
local function oq_put(cursors, r, c)
  redis.call('HSET', cursors, r, string.format('%d|%d|%d|%d|%d|%d|', c.p, c.h, c.u, c.a, c.f, c.x) .. c.n)
end
-- A receiver's next event: body and number, or nil.
local function oq_head(events, c)
  local h = redis.call('ZRANGEBYSCORE', events, '(' .. string.format('%d', c.p), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #h == 0 then return nil, nil end
  return h[1], tonumber(h[2])
end
-- When event `seq` may be leased: now (0) unless a lease or a retry wait is on it.
local function oq_due_at(c, seq)
  if c.h == seq then return math.max(c.u, c.x) end
  return 0
end
-- The earliest time one of `receivers` has an event due, -1 when none has one left.
local function oq_next_due(events, cursors, receivers)
  local best = -1
  for _, r in ipairs(receivers) do
    local c = oq_get(cursors, r)
    local _, seq = oq_head(events, c)
    if seq then
      local t = oq_due_at(c, seq)
      if best < 0 or t < best then best = t end
    end
  end
  return best
end
-- Events every one of `receivers` has passed leave the queue (with their event-regs entry).
local function oq_trim(events, regs, cursors, receivers)
  if #receivers == 0 then return end
  local min
  for _, r in ipairs(receivers) do
    local p = oq_get(cursors, r).p
    if not min or p < min then min = p end
  end
  if min > 0 then
    redis.call('ZREMRANGEBYSCORE', events, '-inf', min)
    redis.call('ZREMRANGEBYSCORE', regs, '-inf', min)
  end
end
local function oq_split(s)
  local t = {}
  for w in string.gmatch(s, '%S+') do t[#t + 1] = w end
  return t
end
