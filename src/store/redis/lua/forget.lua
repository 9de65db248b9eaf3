-- Removes a person's queued registration.created (erasure), or every queued one of a
-- deleted campaign, from the webhook queue and from a v1.1 node's `outbox` list.
-- KEYS: 1 events, 2 event-regs, 3 outbox (v1.1).
-- ARGV: 1 viewer ('' = everyone).
-- Returns how many events went.
local gone = 0
local regs = ARGV[1] == '' and redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  or {ARGV[1], redis.call('ZSCORE', KEYS[2], ARGV[1])}
for i = 1, #regs - 1, 2 do
  if regs[i + 1] then
    gone = gone + redis.call('ZREMRANGEBYSCORE', KEYS[1], regs[i + 1], regs[i + 1])
    redis.call('ZREM', KEYS[2], regs[i])
  end
end
for _, b in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  if string.find(b, '"type":"registration.created"', 1, true) then
    local e = cjson.decode(b)
    if ARGV[1] == '' or (type(e.data) == 'table' and e.data.viewer == ARGV[1]) then
      gone = gone + redis.call('LREM', KEYS[3], 0, b)
    end
  end
end
return gone
