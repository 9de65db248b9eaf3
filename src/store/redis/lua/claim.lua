-- Takes a session over (needs prelude.lua): a new epoch from the campaign's counter fences
-- batches from the node that had it, and no epoch is ever handed out twice, so a session
-- that was forgotten and claimed again still fences the sockets that held it before.
-- Each session counts once: if a node with a live lease still counts the session's old
-- socket, that socket is marked moved (subtracted from the node's lease until it lets go).
-- KEYS: 1 meta, 2 sessions:0, 3 sessions:1, 4 epochs (v1), 5 sessions (v1),
--       6 presence-exp, 7 moved (old epoch -> region|node), 8 presence, 9 presence-sum,
--       10 presence-eff, 11 presence-nodes, 12 presence-due, 13 moved-n (presence.lua).
-- ARGV: 1 session, 2 this node's session TTL ms (used if the campaign has none yet),
--       3 '1' while v1 nodes may run (schema 1: keep the v1 session keys true too),
--       4 node, 5 region, 6 the node's lease ms,
--       7 the presence layout older nodes allow (presence.lua, pres_ready: '2', '3', '4').
-- Returns {epoch, acked seq}, or nil when the campaign is unknown.
local m = redis.call('HMGET', KEYS[1], 'state', 'session_ttl')
if not m[1] then return false end
local s, node = ARGV[1], ARGV[4]
local now = now_ms()
local P = {presence = KEYS[8], exp = KEYS[6], moved = KEYS[7], sum = KEYS[9], eff = KEYS[10],
  nodes = KEYS[11], due = KEYS[12], movedn = KEYS[13]}
local built = pres_ready(P, now, ARGV[7])
local sess = generation(KEYS[2], KEYS[3], session_ttl(KEYS[1], m[2], ARGV[2]), now)
local entry = gen_get(sess, {s}, 1, 1)[1]
local acked = '0'
if entry then
  local old, a, owner = entry_parts(entry)
  acked = a
  local counted_by = owner_node(owner)
  if counted_by ~= '' and tonumber(redis.call('HGET', KEYS[6], counted_by) or '0') > now then
    if redis.call('HSET', KEYS[7], old, owner) == 1 and built then
      pres_moved(P, counted_by, string.match(owner, '^([^|]*)|'), 1)
      pres_reshare(P, counted_by)
    end
  end
end
-- A node's lease starts with its first claim, before its first presence write: a session
-- claimed away from it meanwhile is still known to be counted there.
if tonumber(redis.call('HGET', KEYS[6], node) or '0') <= now then
  pres_lease(P, node, now + tonumber(ARGV[6]), built)
end
local e = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
-- The v1 layout: state a v1 node wrote (read while it may run, and once after).
local v1 = redis.call('HGET', KEYS[5], s)
if ARGV[3] == '1' then
  if v1 and tonumber(v1) > tonumber(acked) then acked = v1 end
  -- v1 nodes fence by the v1 epoch: move it past theirs, and the counter with it.
  local e1 = tonumber(redis.call('HGET', KEYS[4], s) or '0')
  if e1 >= e then
    e = e1 + 1
    redis.call('HSET', KEYS[1], 'epoch', string.format('%d', e))
  end
  redis.call('HSET', KEYS[4], s, string.format('%d', e))
else
  -- Migrated lazily: a session v2 never wrote resumes from its v1 state, once.
  if v1 and not entry then acked = v1 end
  if v1 then redis.call('HDEL', KEYS[5], s) end
  redis.call('HDEL', KEYS[4], s)
end
e = string.format('%d', e)
gen_put(sess, {s, e .. '|' .. acked .. '|' .. ARGV[5] .. '|' .. node})
return {e, acked}
