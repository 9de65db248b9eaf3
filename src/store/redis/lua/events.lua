-- Webhook events (see store/outbox.rs), prepended to apply, tick, end and register. Each
-- event is decided and queued in the script that changes what it reports, so it exists
-- exactly once however many nodes see the change, and is never lost in between.
-- ev_open(meta, events, regs, state, max): `events`, `regs` and `state` are the campaign's
-- queue keys (`events`, `event-regs`, `outbox-state`), or nil when the deployment has no
-- receiver (then nothing is queued); `max` is --webhook-queue-max.
-- Events are queued as their JSON body, scored by their number; ids are <campaign>-<n>
-- from `state`'s `seq`.
local EV = {queued = 0}
local function ev_open(meta, events, regs, state, max)
  EV.meta, EV.events, EV.regs, EV.state = meta, events, regs, state
  EV.max = tonumber(max or '0') or 0
  EV.campaign = string.match(meta, '^lt:{c:(.*)}:meta$')
end
local function ev_now()
  if not EV.now then
    local t = redis.call('TIME')
    EV.now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return EV.now
end
-- Past `max` events, the oldest registration.created goes first (the oldest event when
-- none is queued); each one dropped is counted in `dropped` for a node's metric.
local function ev_bound()
  if EV.max <= 0 then return end
  while redis.call('ZCARD', EV.events) > EV.max do
    local r = redis.call('ZRANGE', EV.regs, 0, 0, 'WITHSCORES')
    if #r > 0 then
      redis.call('ZREMRANGEBYSCORE', EV.events, r[2], r[2])
      redis.call('ZREM', EV.regs, r[1])
    else
      redis.call('ZPOPMIN', EV.events)
    end
    redis.call('HINCRBY', EV.state, 'dropped', 1)
  end
end
-- Queues one event; `viewer` names the person a registration.created is about.
local function ev_emit(kind, data, viewer)
  if not EV.events then return end
  local n = redis.call('HINCRBY', EV.state, 'seq', 1)
  local id = EV.campaign .. '-' .. string.format('%d', n)
  redis.call('ZADD', EV.events, n, '{"id":' .. cjson.encode(id) .. ',"type":' .. cjson.encode(kind)
    .. ',"campaign":' .. cjson.encode(EV.campaign) .. ',"at":' .. string.format('%d', ev_now())
    .. ',"data":' .. data .. '}')
  if viewer then redis.call('ZADD', EV.regs, n, viewer) end
  EV.queued = EV.queued + 1
  ev_bound()
end
-- A metric moved from `old` to `new`: its thresholds in (old, new] are reached now, first.
local function ev_reached(metric, old, new)
  if not EV.events or new <= old then return end
  if EV.milestones == nil then
    local c = cjson.decode(redis.call('HGET', EV.meta, 'campaign') or '{}')
    EV.milestones = type(c.milestones) == 'table' and c.milestones or {}
  end
  local ts = EV.milestones[metric]
  if type(ts) ~= 'table' then return end
  for _, t in ipairs(ts) do
    if t > old and t <= new then
      ev_emit('campaign.milestone', '{"metric":' .. cjson.encode(metric) .. ',"threshold":'
        .. string.format('%d', t) .. ',"value":' .. string.format('%d', new) .. '}')
    end
  end
end
-- The peak rose from `old` to `new` (at `at` ms): viewers and peak_viewers milestones, and
-- campaign.peak unless one was queued less than a minute ago.
local function ev_peak(old, new, at)
  if not EV.events or new <= old then return end
  ev_reached('viewers', old, new)
  ev_reached('peak_viewers', old, new)
  local last = redis.call('HGET', EV.state, 'peak_event_at')
  if last and ev_now() - tonumber(last) < 60000 then return end
  redis.call('HSET', EV.state, 'peak_event_at', string.format('%d', ev_now()))
  ev_emit('campaign.peak', '{"peak_viewers":' .. string.format('%d', new) .. ',"peak_at":'
    .. string.format('%d', tonumber(at)) .. '}')
end
