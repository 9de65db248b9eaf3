-- Ends a fold once every shard took it (see roll.lua): its entries leave `udelta`.
-- KEYS: 1 udelta, 2 uroll, 3 meta.
-- ARGV: 1 the plan folded, 2 its generation.
-- Returns 1 (trimmed), 0 (another roller ended this plan first), or -1: the campaign
-- the fold was for is gone (deleted, maybe created again), and the shards of that
-- generation are left for the roller to remove.
if redis.call('HGET', KEYS[3], 'ugen') ~= ARGV[2] then return -1 end
local r = redis.call('HMGET', KEYS[2], 'head', 'plan')
if r[2] ~= ARGV[1] then return 0 end
local head, plan = tonumber(r[1] or '0'), tonumber(r[2])
redis.call('LTRIM', KEYS[1], plan - head, -1)
redis.call('HSET', KEYS[2], 'head', r[2])
redis.call('HDEL', KEYS[2], 'plan')
return 1
