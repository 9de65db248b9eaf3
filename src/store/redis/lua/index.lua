-- Puts a campaign in the index once, numbered in creation order. Idempotent, so a create
-- cut short after it is finished by a retry.
-- KEYS: 1 index zset, 2 order hash, 3 next counter.
-- ARGV: 1 id, 2 created_at.
-- Returns 1.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  local n = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[2], ARGV[1], n)
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
return 1
