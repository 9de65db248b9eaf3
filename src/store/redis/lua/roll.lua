-- Plans the next fold of a campaign's unit deltas (see store/redis/rollup.rs): the
-- entries of `udelta` from its head up to the plan, the same entries for every roller
-- until one of them trims them (`rolled.lua`), so a roller that dies mid-fold is finished
-- by the next one with the same plan and the same entries.
-- KEYS: 1 udelta (list), 2 uroll (hash: `head` = entries trimmed so far, `plan` = the
--       fold under way, as entries ever appended), 3 uroll-lease.
-- ARGV: 1 lease ms ('0': fold now, whoever else is folding), 2 max entries per fold.
-- Returns false (another roller holds the lease), or {plan, entries} ({0, {}}: nothing).
if ARGV[1] ~= '0' and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return false end
local r = redis.call('HMGET', KEYS[2], 'head', 'plan')
local head, plan = tonumber(r[1] or '0'), tonumber(r[2] or '0')
if plan <= head then
  local n = math.min(redis.call('LLEN', KEYS[1]), tonumber(ARGV[2]))
  if n == 0 then return {0, {}} end
  plan = head + n
  redis.call('HSET', KEYS[2], 'plan', string.format('%d', plan))
end
return {string.format('%d', plan), redis.call('LRANGE', KEYS[1], 0, plan - head - 1)}
