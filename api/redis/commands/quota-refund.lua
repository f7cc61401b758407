--[[
  Gives one back to each counter that still holds it (a counter reset or expired since is left
  alone: DECR would create it below zero and without an expiry). A variable number of keys: the
  caller passes their count first.

  Input:
    KEYS[i] the counters a charge took from

  Output:
    the number of counters
]]
for i = 1, #KEYS do
  if (tonumber(redis.call('GET', KEYS[i])) or 0) > 0 then redis.call('DECR', KEYS[i]) end
end
return #KEYS
