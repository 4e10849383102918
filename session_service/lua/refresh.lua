-- KEYS: session, lock.
-- ARGV: digest of the caller's lock token, lease ms.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return {'LOCK_LOST'}
end
local f = redis.call('HGET', KEYS[1], 'f')
if not f then
  redis.call('DEL', KEYS[2])
  return {'LOCK_LOST'}
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {'OK', f, now_ms() + tonumber(ARGV[2])}
