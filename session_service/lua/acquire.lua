-- KEYS: session, lock.
-- ARGV: digest of the new owner's lock token, lease ms.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'NOT_FOUND'}
end
local pttl = redis.call('PTTL', KEYS[2])
if pttl ~= -2 then
  return {'HELD', pttl}
end
local issued = redis.call('HINCRBY', KEYS[1], 'f', 1)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'OK', newest(redis.call('HGET', KEYS[1], 'b'), issued), now_ms() + tonumber(ARGV[2])}
