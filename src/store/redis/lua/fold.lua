-- Adds one planned fold (roll.lua) to one shard of a campaign's unit totals, once: the
-- shard remembers the last plan it took (`#plan`; no counter field lacks a `|`), and
-- plans only grow, so a fold repeated by a second roller adds nothing.
-- KEYS: 1 the shard (`lt:{ct:<id>:<generation>:<s>}:totals`: `<code>|<metric>` -> count).
-- ARGV: 1 plan, then field, count pairs.
-- Returns 1 (added) or 0 (this plan was already in).
local done = redis.call('HGET', KEYS[1], '#plan')
if done and tonumber(done) >= tonumber(ARGV[1]) then return 0 end
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], '#plan', ARGV[1])
return 1
