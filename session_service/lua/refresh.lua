-- KEYS: session, lock, signal.
-- ARGV: digest of the caller's lock token, lease ms, signal lifetime ms.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return {'LOCK_LOST'}
end
local r = redis.call('HMGET', KEYS[1], 'f', 'b')
if not r[1] then
  redis.call('DEL', KEYS[2])
  return {'LOCK_LOST'}
end
-- Waiters sleep until the lease's old expiry at the latest: a lease cut shorter
-- wakes one of them to sleep on the new expiry instead, so it is handed over when
-- it runs out rather than when the old one would have.
if redis.call('PTTL', KEYS[2]) > tonumber(ARGV[2]) then
  wake(KEYS[3], ARGV[3])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {'OK', newest(r[2], r[1]), now_ms() + tonumber(ARGV[2])}
