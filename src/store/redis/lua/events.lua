-- Webhook events (see store/outbox.rs), prepended to apply, tick, end and register. Each
-- event is decided and queued in the script that changes what it reports, so it exists
-- exactly once however many nodes see the change, and is never lost in between.
-- ev_open(meta, outbox, state): `outbox` and `state` are the campaign's queue keys, or nil
-- when this node has no webhooks configured (then nothing is queued).
-- Events are queued as their JSON body; ids are <campaign>-<n> from `state`'s `seq`.
local EV = {queued = 0}
local function ev_open(meta, outbox, state)
  EV.meta, EV.outbox, EV.state = meta, outbox, state
  EV.campaign = string.match(meta, '^lt:{c:(.*)}:meta$')
end
local function ev_now()
  if not EV.now then
    local t = redis.call('TIME')
    EV.now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return EV.now
end
local function ev_emit(kind, data)
  if not EV.outbox then return end
  local id = EV.campaign .. '-' .. string.format('%d', redis.call('HINCRBY', EV.state, 'seq', 1))
  redis.call('RPUSH', EV.outbox, '{"id":' .. cjson.encode(id) .. ',"type":' .. cjson.encode(kind)
    .. ',"campaign":' .. cjson.encode(EV.campaign) .. ',"at":' .. string.format('%d', ev_now())
    .. ',"data":' .. data .. '}')
  EV.queued = EV.queued + 1
end
-- A metric moved from `old` to `new`: its thresholds in (old, new] are reached now, first.
local function ev_reached(metric, old, new)
  if not EV.outbox or new <= old then return end
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
  if not EV.outbox or new <= old then return end
  ev_reached('viewers', old, new)
  ev_reached('peak_viewers', old, new)
  local last = redis.call('HGET', EV.state, 'peak_event_at')
  if last and ev_now() - tonumber(last) < 60000 then return end
  redis.call('HSET', EV.state, 'peak_event_at', string.format('%d', ev_now()))
  ev_emit('campaign.peak', '{"peak_viewers":' .. string.format('%d', new) .. ',"peak_at":'
    .. string.format('%d', tonumber(at)) .. '}')
end
