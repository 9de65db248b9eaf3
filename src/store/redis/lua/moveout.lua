-- `livetally upgrade-store`: moves a v1.1 node's `outbox` list of a campaign into the
-- schema 4 queue with its ids, for the receivers the flags seeded (every one starts
-- before them). The old head's delivery state goes: that event is delivered again (at
-- least once).
-- KEYS: 1 outbox (v1.1), 2 events, 3 event-regs, 4 outbox-state.
-- Returns how many events moved.
local moved = 0
for _, b in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local n = tonumber(string.match(b, '^{"id":"[^"]*%-(%d+)"'))
  if n then
    redis.call('ZADD', KEYS[2], n, b)
    if string.find(b, '"type":"registration.created"', 1, true) then
      local e = cjson.decode(b)
      if type(e.data) == 'table' and type(e.data.viewer) == 'string' then
        redis.call('ZADD', KEYS[3], n, e.data.viewer)
      end
    end
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[4], 'id', 'node', 'until', 'attempts', 'first', 'next', 'done')
return moved
