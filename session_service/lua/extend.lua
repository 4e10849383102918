-- KEYS: session, lock.
-- ARGV: extension ms, fencing token or ''.
local r = redis.call('HMGET', KEYS[1], 'v', 'c', 'u', 'e', 'm', 't', 'f', 'b')
if not r[1] then
  return {'NOT_FOUND'}
end
local fence = newest(r[8], r[7])
if stale(ARGV[2], fence) then
  return {'FENCING_TOKEN_STALE'}
end
local e = tonumber(r[4])
local cap = tonumber(r[5])
local wanted = e + tonumber(ARGV[1])
local granted = math.min(wanted, cap)
if granted ~= e then
  redis.call('HSET', KEYS[1], 'e', granted)
  redis.call('PEXPIREAT', KEYS[1], granted)
end
local clipped = 0
if wanted > cap then
  clipped = 1
end
return {'OK', r[1], r[2], r[3], granted, r[5], r[6], fence, redis.call('EXISTS', KEYS[2]),
  granted - e, clipped}
