-- Ends a fold once every shard took it (see roll.lua): its entries leave `udelta`.
-- KEYS: 1 udelta, 2 uroll.
-- ARGV: 1 the plan folded.
-- Returns 1 (trimmed) or 0 (another roller ended this plan first).
local r = redis.call('HMGET', KEYS[2], 'head', 'plan')
if r[2] ~= ARGV[1] then return 0 end
local head, plan = tonumber(r[1] or '0'), tonumber(r[2])
redis.call('LTRIM', KEYS[1], plan - head, -1)
redis.call('HSET', KEYS[2], 'head', r[2])
redis.call('HDEL', KEYS[2], 'plan')
return 1
