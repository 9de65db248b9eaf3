-- Writes a campaign's meta unless the id is taken.
-- KEYS: 1 meta.
-- ARGV: 1 campaign JSON, 2 state, 3 ended_at ('' = none), 4 session TTL ms,
--       5 declared share channels, comma-separated ('' = none).
-- Returns 1 (created) or 0 (taken).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'campaign', ARGV[1], 'state', ARGV[2], 'session_ttl', ARGV[4], 'epoch', '0')
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'ended_at', ARGV[3]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'share_channels', ARGV[5]) end
return 1
