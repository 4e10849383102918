-- KEYS: lock, signal.
-- ARGV: digest of the caller's lock token, signal lifetime ms.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
-- One pending signal wakes exactly one waiter (BLPOP serves the longest
-- blocked client first); clearing older ones keeps stale wake-ups to one.
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('RPUSH', KEYS[2], '1')
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
