-- KEYS: session, lock, signal.
-- ARGV: digest of the new owner's lock token, lease ms, '1' if the caller was
-- just woken by a signal, signal lifetime ms.
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[3] == '1' then
    -- Woken to find the session gone: pass the wake-up on, so every waiter learns
    -- it now rather than when the lease it slept on would have run out.
    wake(KEYS[3], ARGV[4])
  end
  return {'NOT_FOUND'}
end
local pttl = redis.call('PTTL', KEYS[2])
if pttl ~= -2 then
  return {'HELD', pttl}
end
local issued = redis.call('HINCRBY', KEYS[1], 'f', 1)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'OK', newest(redis.call('HGET', KEYS[1], 'b'), issued), now_ms() + tonumber(ARGV[2])}
