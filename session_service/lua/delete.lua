-- KEYS: session, lock, signal.
-- ARGV: expected version or '', fencing token or ''.
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
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {'DELETED'}
