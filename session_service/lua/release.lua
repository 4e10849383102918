-- KEYS: lock, signal.
-- ARGV: digest of the caller's lock token, signal lifetime ms.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
wake(KEYS[2], ARGV[2])
return 1
