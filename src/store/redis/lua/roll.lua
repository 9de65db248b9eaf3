-- Plans the next fold of a campaign's unit deltas (see store/redis/rollup.rs): the
-- entries of `udelta` from its head up to the plan, the same entries for every roller
-- until one of them trims them (`rolled.lua`), so a roller that dies mid-fold is finished
-- by the next one with the same plan and the same entries.
-- The totals shards are named by the campaign's totals generation (meta `ugen`, set by
-- the first fold), so a roller still folding for a deleted campaign writes nothing a
-- campaign created again under the same id reads.
-- KEYS: 1 udelta (list), 2 uroll (hash: `head` = entries trimmed so far, `plan` = the
--       fold under way, as entries ever appended), 3 uroll-lease, 4 meta.
-- ARGV: 1 lease ms ('0': fold now, whoever else is folding), 2 max entries per fold,
--       3 a new generation, taken if the campaign has none yet.
-- Returns false (another roller holds the lease), or {plan, entries, generation}
-- ({0, {}, ''}: nothing, or no such campaign).
if ARGV[1] ~= '0' and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return false end
local r = redis.call('HMGET', KEYS[2], 'head', 'plan')
local head, plan = tonumber(r[1] or '0'), tonumber(r[2] or '0')
if plan <= head then
  local n = math.min(redis.call('LLEN', KEYS[1]), tonumber(ARGV[2]))
  if n == 0 then return {0, {}, ''} end
  plan = head + n
end
local gen = redis.call('HGET', KEYS[4], 'ugen')
if not gen then
  if redis.call('EXISTS', KEYS[4]) == 0 then return {0, {}, ''} end
  gen = ARGV[3]
  redis.call('HSET', KEYS[4], 'ugen', gen)
end
redis.call('HSET', KEYS[2], 'plan', string.format('%d', plan))
return {string.format('%d', plan), redis.call('LRANGE', KEYS[1], 0, plan - head - 1), gen}
