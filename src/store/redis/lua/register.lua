-- Registers a viewer.
-- KEYS: 1 meta, 2 regs.
-- ARGV: 1 viewer.
-- Returns 1 (added), 0 (known) or nil (no campaign).
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('SADD', KEYS[2], ARGV[1])
