-- Erases one viewer's sign-up: its id, time and fields. The count stays: in regs a
-- placeholder `~<n>` takes the viewer's place (`~` is outside the viewer pattern, and n
-- counts the campaign's erasures, so placeholders never collide).
-- KEYS: 1 meta, 2 regs, 3 reg-order, 4 reg-data.
-- ARGV: 1 viewer.
-- Returns 1 (erased), 0 (not registered) or nil (no campaign).
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'regs_erased', 1)
redis.call('SADD', KEYS[2], '~' .. n)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
