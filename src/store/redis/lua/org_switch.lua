-- Makes a staged org version (its chunks all written) the org's newest, in one step: a
-- reader sees the old newest version or this one, never part of it.
-- KEYS: 1 current hash (org -> newest summary), 2 the org's versions hash, 3 staging zset.
-- ARGV: 1 org, 2 version, 3 summary JSON, 4 chunks, 5 staging member.
-- Returns 1 when it replaced a newest version, else 0.
local replaced = redis.call('HEXISTS', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4] .. '|' .. ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[5])
return replaced
