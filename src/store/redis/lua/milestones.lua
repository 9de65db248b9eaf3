-- Replaces a campaign's stored JSON if it is still the one the caller read (compare and
-- set: the caller changed its milestones or share channels), and sets the meta fields
-- the scripts read beside it.
-- KEYS: 1 meta.
-- ARGV: 1 JSON read, 2 new JSON, then (field, value) pairs of meta to set with it.
-- Returns 1 (set), 0 (changed meanwhile: read again) or nil (unknown).
local c = redis.call('HGET', KEYS[1], 'campaign')
if not c then return false end
if c ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'campaign', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
