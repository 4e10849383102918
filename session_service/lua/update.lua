-- KEYS: session, lock.
-- ARGV: data blob, id blob (used only when creating), allow_missing '1'/'0',
-- expected version or '', fencing token or '', new idle ttl ms or '',
-- idle ttl ms and lifetime cap ms for creation.
local r = redis.call('HMGET', KEYS[1], 'v', 'c', 'u', 'e', 'm', 't', 'f', 'b')
local now = now_ms()
if not r[1] then
  if ARGV[3] ~= '1' then
    return {'NOT_FOUND'}
  end
  if ARGV[4] ~= '' and ARGV[4] ~= '0' then
    return {'VERSION_MISMATCH', 0}
  end
  if stale(ARGV[5], 0) then
    return {'FENCING_TOKEN_STALE'}
  end
  local ttl = tonumber(ARGV[7])
  local cap = now + tonumber(ARGV[8])
  local e = math.min(now + ttl, cap)
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'd', ARGV[1], 'i', ARGV[2], 'v', 1, 'c', now, 'u', now,
    'e', e, 'm', cap, 't', ttl, 'b', fencing_base(), 'f', 0)
  redis.call('PEXPIREAT', KEYS[1], e)
  return {'CREATED', 1, now, now, e, cap, ttl, 0, 0}
end
local fence = newest(r[8], r[7])
if stale(ARGV[5], fence) then
  return {'FENCING_TOKEN_STALE'}
end
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= tonumber(r[1]) then
  return {'VERSION_MISMATCH', r[1]}
end
local v = tonumber(r[1]) + 1
local ttl = tonumber(r[6])
local e = tonumber(r[4])
if ARGV[6] ~= '' then
  ttl = tonumber(ARGV[6])
  e = math.min(now + ttl, tonumber(r[5]))
  redis.call('PEXPIREAT', KEYS[1], e)
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'v', v, 'u', now, 'e', e, 't', ttl)
return {'OK', v, r[2], now, e, r[5], ttl, fence, redis.call('EXISTS', KEYS[2])}
