-- Takes a session over: a new ownership epoch fences batches from the node that had it.
-- KEYS: 1 meta, 2 epochs, 3 sessions.
-- ARGV: 1 session.
-- Returns {epoch, acked seq}, or nil when the campaign is unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local e = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return {e, redis.call('HGET', KEYS[3], ARGV[1]) or '0'}
