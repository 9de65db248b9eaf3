-- Records a viewer series point and raises the peak, while the campaign is live.
-- KEYS: 1 meta, 2 vseries partition, 3 vparts, 4 upeak (upper unit code -> `<peak>|<at>`),
--       5 upeak-bucket (the bucket whose upper peaks were raised), 6 events, 7 event-regs,
--       8 outbox-state (absent: no webhook receivers; needs events.lua).
-- ARGV: 1 bucket, 2 at, 3 viewers, 4 regions JSON (upper units as `u:<code>` keys),
--       5 partition start, 6 --webhook-queue-max.
-- Returns {peak, peak_at ('' = none), webhook events queued}, or nil when unknown.
local m = redis.call('HMGET', KEYS[1], 'state', 'peak', 'peak_at')
if not m[1] then return false end
ev_open(KEYS[1], KEYS[6], KEYS[7], KEYS[8], ARGV[6])
local peak, peak_at = m[2] or '0', m[3] or ''
if m[1] == 'live' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[5])
  ev_peak(tonumber(peak), tonumber(ARGV[3]), ARGV[2])
  -- The upper units' peaks, from the same tick's numbers: by the first node to tick in
  -- each bucket (every node reads the same kept sums), not by all of them.
  if string.find(ARGV[4], '"u:', 1, true) and redis.call('GETSET', KEYS[5], ARGV[1]) ~= ARGV[1] then
    local codes, ns = {}, {}
    for k, n in pairs(cjson.decode(ARGV[4])) do
      if string.sub(k, 1, 2) == 'u:' then codes[#codes + 1] = string.sub(k, 3); ns[#ns + 1] = n end
    end
    local old = redis.call('HMGET', KEYS[4], unpack(codes))
    for i, code in ipairs(codes) do
      local was = old[i] and tonumber(string.match(old[i], '^(%d+)|')) or 0
      if ns[i] > was then
        redis.call('HSET', KEYS[4], code, string.format('%d', ns[i]) .. '|' .. ARGV[2])
      end
    end
  end
  if tonumber(ARGV[3]) > tonumber(peak) then
    redis.call('HSET', KEYS[1], 'peak', ARGV[3], 'peak_at', ARGV[2], 'peak_regions', ARGV[4])
    peak, peak_at = ARGV[3], ARGV[2]
  end
end
return {peak, peak_at, EV.queued}
