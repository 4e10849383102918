-- KEYS: session, lock.
-- ARGV: '1' to slide the idle expiry, '0' for a pure read.
local r = redis.call('HMGET', KEYS[1], 'd', 'v', 'c', 'u', 'e', 'm', 't', 'f', 'b')
if not r[1] then
  return {'NOT_FOUND'}
end
local e = tonumber(r[5])
if ARGV[1] == '1' then
  -- A touch never shortens a session that ExtendSession pushed further out.
  local slid = math.min(now_ms() + tonumber(r[7]), tonumber(r[6]))
  if slid > e then
    e = slid
    redis.call('HSET', KEYS[1], 'e', e)
    redis.call('PEXPIREAT', KEYS[1], e)
  end
end
return {'OK', r[2], r[3], r[4], e, r[6], r[7], newest(r[9], r[8]), redis.call('EXISTS', KEYS[2]),
  r[1]}
