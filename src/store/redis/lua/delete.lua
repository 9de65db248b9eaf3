-- Deletes an ended campaign's keys (needs prelude.lua). The caller read the series hour
-- hashes from vparts/iparts while the campaign was already ended, and an ended campaign
-- gains no hour hash (apply.lua and tick.lua write only while live), so KEYS is all of it.
-- KEYS: 1 meta, then every other key of the campaign.
-- ARGV: none.
-- Returns 1 (deleted), 0 (unknown) or -1 (not ended: nothing deleted).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if state ~= 'ended' then return -1 end
chunks(KEYS, function(i0, i1) redis.call('DEL', unpack(KEYS, i0, i1)) end)
return 1
