-- KEYS: session, lock, signal.
-- ARGV: expected version or '', fencing token or '', signal lifetime ms.
local r = redis.call('HMGET', KEYS[1], 'd', 'v', 'c', 'u', 'e', 'm', 't', 'f', 'b')
if not r[1] then
  return {'NOT_FOUND'}
end
local fence = newest(r[9], r[8])
if stale(ARGV[2], fence) then
  return {'FENCING_TOKEN_STALE'}
end
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= tonumber(r[2]) then
  return {'VERSION_MISMATCH', r[2]}
end
local locked = redis.call('EXISTS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if locked == 1 then
  -- As in delete.lua: waiters must not sleep out a lease that went with the session.
  wake(KEYS[3], ARGV[3])
end
return {'OK', r[2], r[3], r[4], r[5], r[6], r[7], fence, locked, r[1]}
