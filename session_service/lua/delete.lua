-- KEYS: session, lock, signal.
-- ARGV: expected version or '', fencing token or '', signal lifetime ms.
local r = redis.call('HMGET', KEYS[1], 'v', 'f', 'b')
if not r[1] then
  return {'ABSENT'}
end
if stale(ARGV[2], newest(r[3], r[2])) then
  return {'FENCING_TOKEN_STALE'}
end
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= tonumber(r[1]) then
  return {'VERSION_MISMATCH', r[1]}
end
local locked = redis.call('EXISTS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if locked == 1 then
  -- The lease goes with the session: a waiter wakes to find it gone and passes
  -- the wake-up on (acquire.lua), instead of sleeping out the lease.
  wake(KEYS[3], ARGV[3])
end
return {'DELETED'}
