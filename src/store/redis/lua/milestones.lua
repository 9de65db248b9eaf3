-- Replaces a campaign's stored JSON if it is still the one the caller read (compare and
-- set: the caller changed its milestones).
-- KEYS: 1 meta.
-- ARGV: 1 JSON read, 2 new JSON.
-- Returns 1 (set), 0 (changed meanwhile: read again) or nil (unknown).
local c = redis.call('HGET', KEYS[1], 'campaign')
if not c then return false end
if c ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'campaign', ARGV[2])
return 1
