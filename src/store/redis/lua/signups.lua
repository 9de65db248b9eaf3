-- One page of sign-ups in registration order (read only).
-- KEYS: 1 meta, 2 reg-order, 3 reg-data.
-- ARGV: 1 the last number already read (0: from the start), 2 page size.
-- Returns nil (no campaign) or {{number, viewer, '<registered_at>|<fields JSON>'}, ...}.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local page = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #page, 2 do
  local data = redis.call('HGET', KEYS[3], page[i])
  if data then out[#out + 1] = {tonumber(page[i + 1]), page[i], data} end
end
return out
