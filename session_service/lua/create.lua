-- KEYS: session, lock, signal.
-- ARGV: data blob, id blob, idle ttl ms, lifetime cap ms.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'ALREADY_EXISTS'}
end
local now = now_ms()
local ttl = tonumber(ARGV[3])
local cap = now + tonumber(ARGV[4])
local e = math.min(now + ttl, cap)
-- A lease or wake-up signal left by an expired namesake must not leak into
-- the new session.
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'i', ARGV[2], 'v', 1, 'c', now, 'u', now,
  'e', e, 'm', cap, 't', ttl, 'b', fencing_base(), 'f', 0)
redis.call('PEXPIREAT', KEYS[1], e)
return {'OK', 1, now, now, e, cap, ttl, 0, 0}
