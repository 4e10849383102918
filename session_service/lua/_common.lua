-- Prepended to every script. Time comes from the Redis primary's clock so that
-- every service replica agrees on expiry whatever its own clock says.
-- Session hash fields: d data blob, i id blob, v version, c created ms,
-- u updated ms, e idle expiry ms, m lifetime cap ms, t idle ttl ms,
-- b fencing base, f leases issued.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Fencing tokens are base + leases issued, the base being the creation time in
-- microseconds: a session re-created under the same id starts above every token
-- its predecessor issued (that would take more than one lease per microsecond),
-- so a holder of an old lease cannot fence its way into the new session. The
-- base is kept as a string: Lua would print a 16-digit number inexactly.
local function fencing_base()
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end

-- The newest token issued, or 0 while no lease has been.
local function newest(base, issued)
  if tonumber(issued) == 0 then
    return 0
  end
  return tonumber(base) + tonumber(issued)
end

-- A fencing token is accepted only if it is the newest one issued: older ones
-- belong to a lease that was lost, newer ones were never issued.
local function stale(token, newest_token)
  return token ~= '' and tonumber(token) ~= newest_token
end

-- Wakes one lock waiter (BLPOP serves the longest blocked client first).
-- Clearing older signals keeps stale wake-ups to one.
local function wake(signal, lifetime_ms)
  redis.call('DEL', signal)
  redis.call('RPUSH', signal, '1')
  redis.call('PEXPIRE', signal, lifetime_ms)
end
