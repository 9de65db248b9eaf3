-- Records a viewer series point and raises the peak, while the campaign is live.
-- KEYS: 1 meta, 2 vseries partition, 3 vparts, 4 events, 5 event-regs, 6 outbox-state
--       (absent: no webhook receivers; needs events.lua).
-- ARGV: 1 bucket, 2 at, 3 viewers, 4 regions JSON, 5 partition start, 6 --webhook-queue-max.
-- Returns {peak, peak_at ('' = none), webhook events queued}, or nil when unknown.
local m = redis.call('HMGET', KEYS[1], 'state', 'peak', 'peak_at')
if not m[1] then return false end
ev_open(KEYS[1], KEYS[4], KEYS[5], KEYS[6], ARGV[6])
local peak, peak_at = m[2] or '0', m[3] or ''
if m[1] == 'live' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[5])
  ev_peak(tonumber(peak), tonumber(ARGV[3]), ARGV[2])
  if tonumber(ARGV[3]) > tonumber(peak) then
    redis.call('HSET', KEYS[1], 'peak', ARGV[3], 'peak_at', ARGV[2], 'peak_regions', ARGV[4])
    peak, peak_at = ARGV[3], ARGV[2]
  end
end
return {peak, peak_at, EV.queued}
