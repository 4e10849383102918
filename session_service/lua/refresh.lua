-- KEYS: session, lock.
-- ARGV: digest of the caller's lock token, lease ms.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return {'LOCK_LOST'}
end
local r = redis.call('HMGET', KEYS[1], 'f', 'b')
if not r[1] then
  redis.call('DEL', KEYS[2])
  return {'LOCK_LOST'}
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {'OK', newest(r[2], r[1]), now_ms() + tonumber(ARGV[2])}
