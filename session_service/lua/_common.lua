-- Prepended to every script. Time comes from the Redis primary's clock so that
-- every service replica agrees on expiry whatever its own clock says.
-- Session hash fields: d data blob, i id blob, v version, c created ms,
-- u updated ms, e idle expiry ms, m lifetime cap ms, t idle ttl ms,
-- f newest fencing token.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A fencing token is accepted only if it is the newest one issued: older ones
-- belong to a lease that was lost, newer ones were never issued.
local function stale(token, newest)
  return token ~= '' and tonumber(token) ~= tonumber(newest)
end
